"""The capacity finder's search, against a CRM model whose capacity is known."""

from __future__ import annotations

import pytest

from crmpulse.loadtests.capacity import CapacityFinder, Step


def search(capacity: float, start: float = 10, cap: float = 1000,
           reach: float = float("inf")) -> CapacityFinder:
    finder = CapacityFinder(start=start, cap=cap)
    while finder.rate is not None:
        rate = finder.rate
        finder.steps.append(Step(rate=rate))
        finder.judge(held=min(rate, reach) <= capacity, achieved=min(rate, reach))
    return finder


@pytest.mark.parametrize("capacity", [7, 150, 400, 999])
def test_the_search_lands_within_five_percent_below_the_capacity(capacity: float) -> None:
    finder = search(capacity)
    assert finder.highest_held is not None
    assert 0.95 * capacity <= finder.highest_held <= capacity
    assert finder.lowest_broken is not None and finder.lowest_broken > capacity
    assert len(finder.steps) <= finder.max_steps
    assert all(s.rate <= 1000 for s in finder.steps)  # never past the safety cap


def test_a_crm_that_holds_up_to_the_cap_is_reported_as_such() -> None:
    finder = search(5000, cap=300)
    assert finder.highest_held == 300 and finder.lowest_broken is None
    assert "held up to the safety cap" in finder.stopped


def test_a_generator_that_cannot_reach_the_rate_stops_the_search_and_says_so() -> None:
    finder = search(400, reach=120)
    assert finder.highest_held is not None and finder.highest_held <= 120
    assert finder.stopped.startswith("the generator reached")


def test_the_result_names_the_gates_of_the_step_that_broke_even_at_a_rate_tried_before() -> None:
    finder = CapacityFinder(start=400, cap=1000)
    finder.steps.append(Step(rate=400, held=True))
    finder.judge(held=True, achieved=380)  # held, short of its rate: proves 380
    finder.steps.append(Step(rate=800, held=False, broken=["p95"]))
    finder.judge(held=False, achieved=700)
    finder.rate = 400.0  # the bisection lands on 400 again
    finder.steps.append(Step(rate=400, held=False, broken=["FAILED global p95"]))
    finder.judge(held=False, achieved=390)
    assert finder.result()["broken_by"] == ["FAILED global p95"]
