"""The QuotaBook: latest reading per quota, thread-safe, limits operations read at most every `every`."""

from __future__ import annotations

import threading

from crmpulse.loadtests.quota import spent
from crmpulse.profile import QuotaSpec
from crmpulse.quota import Quota, QuotaBook, parse_reset

HEADER = QuotaSpec.model_validate({"name": "daily", "window": "24h", "used": "header:X-Used",
                                   "limit": "header:X-Limit"})
DOCUMENT = QuotaSpec.model_validate({"name": "usage", "window": "1h", "operation": "limits",
                                     "used": "$.used", "limit": "$.max", "every": "30s"})


def test_the_latest_reading_wins_and_the_limits_body_is_read_only_from_its_operation() -> None:
    book = QuotaBook([HEADER, DOCUMENT], clock=lambda: 1000.0)
    book.observe("list_accounts", 200, {"x-used": "5", "x-limit": "100"}, b'{"used": 1, "max": 9}')
    book.observe("list_accounts", 200, {"X-Used": "7", "X-Limit": "100"})
    assert [(q.name, q.used, q.limit, q.remaining) for q in book.readings()] == [("daily", 7.0, 100.0, 93.0)]
    book.observe("limits", 500, {}, b'{"used": 1, "max": 9}')  # an error answer is not a reading
    assert book.get("usage") is None
    book.observe("limits", 200, {}, b'{"used": 1, "max": 9}')
    assert book.get("usage") == Quota("usage", "1h", 1.0, 9.0, None, 1000.0, True, 3600.0)


def test_a_limits_operation_is_due_at_start_then_at_most_every_its_interval() -> None:
    now = [0.0]
    book = QuotaBook([HEADER, DOCUMENT], clock=lambda: now[0])
    assert book.due() == ["limits"]
    now[0] = 29.9
    assert book.due() == []
    assert book.due(force=True) == ["limits"]
    now[0] = 59.9
    assert book.due() == ["limits"]


def test_readings_from_many_threads_at_once_leave_one_consistent_reading() -> None:
    book = QuotaBook([HEADER])
    errors: list[BaseException] = []

    def report(n: int) -> None:
        try:
            for i in range(300):
                book.observe("x", 200, {"X-Used": str(n * 1000 + i), "X-Limit": "1000000"})
                assert book.get("daily") is not None
        except BaseException as exc:  # the test reports whatever a thread hit
            errors.append(exc)

    threads = [threading.Thread(target=report, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    (reading,) = book.readings()
    assert reading.used % 1000 == 299 and reading.limit == 1000000.0  # some thread's last


def test_a_workers_newer_reading_replaces_the_masters_and_an_older_one_does_not() -> None:
    book = QuotaBook([HEADER], clock=lambda: 50.0)
    book.observe("x", 200, {"X-Used": "5", "X-Limit": "100"})
    book.put(Quota("daily", "1d", 9.0, 100.0, None, 40.0))
    assert book.get("daily").used == 5.0  # type: ignore[union-attr]
    book.put(Quota("daily", "1d", 9.0, 100.0, None, 60.0))
    assert book.get("daily").used == 9.0  # type: ignore[union-attr]


def test_reset_times_read_as_iso_unix_seconds_or_milliseconds() -> None:
    from datetime import UTC, datetime

    moment = datetime(2027, 1, 15, 8, tzinfo=UTC).timestamp()
    now = moment - 3600
    assert parse_reset("2027-01-15T08:00:00Z", now) == moment
    assert parse_reset("2027-01-15T09:00:00+01:00", now) == moment
    assert parse_reset(now + 60, now) == now + 60
    assert parse_reset(str(int((now + 60) * 1000)), now) == now + 60
    assert parse_reset("1e400", now) is None
    assert parse_reset(now - 2 * 86400, now) is None


def test_what_a_run_spent_is_the_difference_of_the_crms_counts_when_comparable() -> None:
    before = [Quota("daily", "1d", 100.0, 1000.0, None, 0.0, True, 86400.0),
              Quota("burst", "10s", 5.0, 190.0, None, 0.0, True, 10.0)]
    after = [Quota("daily", "1d", 160.0, 1000.0, None, 60.0, True, 86400.0),
             Quota("burst", "10s", 2.0, 190.0, None, 60.0, True, 10.0)]
    rows = spent(before, after, duration=60.0)
    assert rows["daily"] == {"window": "1d", "limit": 1000.0, "used_after": 160.0, "remaining_after": 840.0,
                             "used_before": 100.0, "spent": 60.0}
    assert rows["burst"]["spent"] is None  # a ten-second window says nothing about a minute's run
