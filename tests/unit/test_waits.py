import pytest

from storage_core.errors import Timeout
from storage_core.fakes import FakeClock
from storage_core.waits import Backoff, wait_until


def test_polls_fast_first_then_backs_off_to_the_cap():
    clock = FakeClock()
    with pytest.raises(Timeout, match="gave up after 20 s waiting for the thing"):
        wait_until(lambda: None, 20, "the thing", clock)
    first = clock.sleeps[:50]  # the first second: 20 ms polls
    assert first == [pytest.approx(0.02)] * 50
    fast = clock.sleeps[50:90]  # up to 3 s: 50 ms polls
    assert fast == [pytest.approx(0.05)] * 40
    slower = clock.sleeps[91:-1]
    assert slower == sorted(slower) and slower[0] > 0.05 and max(slower) == 1.0
    assert clock.now == pytest.approx(20.0)  # bounded: never sleeps past the timeout


def test_a_backoff_without_a_first_stage():
    clock = FakeClock()
    with pytest.raises(Timeout):
        wait_until(lambda: None, 5, "x", clock, Backoff(0.05, 3.0, 1.5, 1.0, first_period=0.0))
    assert clock.sleeps[:60] == [pytest.approx(0.05)] * 60


def test_returns_the_first_truthy_answer():
    clock = FakeClock()
    answers = iter([None, None, "done"])
    assert wait_until(lambda: next(answers), 5, "x", clock) == "done"
    assert clock.sleeps == [0.02, 0.02]


def test_a_check_that_raises_aborts_the_wait():
    def check():
        raise ValueError("went to error")

    with pytest.raises(ValueError):
        wait_until(check, 5, "x", FakeClock())


def test_check_first_false_waits_one_interval_before_looking():
    clock = FakeClock()
    seen = []
    assert wait_until(lambda: seen.append(clock.now) or "ok", 5, "x", clock, check_first=False) == "ok"
    assert seen == [pytest.approx(0.02)]
