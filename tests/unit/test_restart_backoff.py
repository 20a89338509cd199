"""`make up` spaces restarts of a process that keeps ending, as Compose does."""

from __future__ import annotations

from devstack.processes import RestartBackoff


def test_the_delay_doubles_up_to_the_cap_while_the_process_keeps_failing() -> None:
    backoff = RestartBackoff(initial=0.5, maximum=4.0, reset_after=10.0)
    assert [backoff.next_delay(ran_for=1.0) for _ in range(6)] == [0.5, 1, 2, 4, 4, 4]


def test_the_delay_is_back_to_the_start_once_a_run_lasted() -> None:
    backoff = RestartBackoff(initial=0.5, maximum=60.0, reset_after=10.0)
    backoff.next_delay(ran_for=0.0)
    backoff.next_delay(ran_for=0.0)
    assert backoff.next_delay(ran_for=11.0) == 0.5
