from __future__ import annotations

import pytest

from crmpulse.units import format_duration, parse_bytes, parse_duration, parse_percent


@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("30s", 30), ("5m", 300), ("1h30m", 5400), ("30d", 2_592_000),
    ("1.5s", 1.5), ("2w", 1_209_600), (" 10s ", 10),
])
def test_durations_as_people_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["fast", "", "10", "10 s", "s10", "1h-5m", "1y"])
def test_bad_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match='expected a duration like "30s"'):
        parse_duration(text)


def test_bare_numbers_are_not_durations() -> None:
    with pytest.raises(ValueError, match="got 5 \\(int\\)"):
        parse_duration(5)


@pytest.mark.parametrize(("value", "percent"), [(99.9, 99.9), ("99.9", 99.9), ("99.95%", 99.95), (1, 1.0)])
def test_percentages(value: object, percent: float) -> None:
    assert parse_percent(value) == percent


@pytest.mark.parametrize("value", [0, 100, 100.5, -1, "abc", True, None])
def test_percentages_outside_0_100_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match="percentage"):
        parse_percent(value)


def test_sizes() -> None:
    assert parse_bytes("1MiB") == 1024 * 1024
    assert parse_bytes("10MB") == 10_000_000
    assert parse_bytes(512) == 512
    with pytest.raises(ValueError):
        parse_bytes("lots")


def test_format_duration_round_trips() -> None:
    for text in ("250ms", "30s", "1m30s", "2h", "30d"):
        assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
