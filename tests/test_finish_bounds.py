"""The finish step's bounds in isolation (no store): a failed look's backoff and how long it goes on,
the store clock's offset, one caller's share (issues #25 and #31). The same against SeaweedFS are in
tests/e2e/test_finish_cases.py and tests/e2e/test_faults.py."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest

from signer.service.errors import StoreFailed, Throttled
from signer.service.finish import (
    FAILURE_BACKOFF_CAP,
    GIVE_UP,
    Expectation,
    Marker,
    PendingLedger,
    StoreClock,
    _after_failure,
)
from signer.service.notify import Event

FAILED = StoreFailed("storage_error", "S3 HEAD answered 400")
EXPECTED = Expectation("uploads/alice/a.png", "alice", "uploads/alice/", None, ())


def test_a_failed_look_backs_off_doubling_up_to_its_cap() -> None:
    marker: Marker = Marker("m", "check", expect=EXPECTED, deadline=10_000)
    dues = []
    for _ in range(12):
        marker, due = _after_failure(marker, 1000, FAILED)
        dues.append(due)
    assert dues[:4] == [1002, 1004, 1008, 1016]
    assert max(due - 1000 for due in dues if due is not None) == FAILURE_BACKOFF_CAP
    assert marker.failures == 12


def test_a_failed_look_goes_on_past_the_signatures_deadline_and_ends_after_three_days() -> None:
    """The deadline only ends the wait for an absent upload: a look that failed has not seen the
    object, so dropping it then would leave a rule-breaking object unchecked."""
    marker = Marker("m", "check", expect=EXPECTED, deadline=1000)
    assert _after_failure(marker, 1000, FAILED)[1] == 1002
    assert _after_failure(marker, 1000 + GIVE_UP, FAILED)[1] is None


def test_an_event_whose_delivery_step_fails_ends_three_days_after_its_time() -> None:
    event = Event("e", "upload.verified", "2026-12-01T00:00:00Z", "uploads/alice/a.png", "alice", 1, None, None)
    marker = Marker("m", "notify", event=event)
    start = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())
    assert _after_failure(marker, start + 10, FAILED)[1] == start + 12
    assert _after_failure(marker, start + GIVE_UP, FAILED)[1] is None


def test_the_store_clock_moves_by_two_seconds_or_more_only() -> None:
    clock, here = StoreClock(), datetime(2026, 12, 6, 12, tzinfo=UTC)
    clock.observe(here - timedelta(seconds=120), here)
    assert clock.offset == -120 and clock.store_now(here) == here - timedelta(seconds=120)
    clock.observe(here - timedelta(seconds=121), here)
    assert clock.offset == -120  # a second's jitter: names computed a moment apart agree
    clock.observe(here, here)
    assert clock.offset == 0


def test_a_caller_at_its_share_is_refused_until_its_oldest_minute_leaves() -> None:
    ledger, base = PendingLedger(3), 60 * 16_667  # the start of a minute
    for second in (0, 10, 70):  # two in the first minute, one in the next
        ledger.admit("alice", base + second)
    with pytest.raises(Throttled):
        ledger.admit("alice", base + 80)
    ledger.admit("bob", base + 80)  # another caller is not held up
    ledger.admit("alice", base + 15 * 60)  # 15 minutes on: the first minute (two uploads) has left
    ledger.admit("alice", base + 15 * 60 + 1)
    with pytest.raises(Throttled):
        ledger.admit("alice", base + 15 * 60 + 2)


def test_many_callers_cost_bounded_memory() -> None:
    ledger = PendingLedger(200, callers=1000)
    tracemalloc.start()
    try:
        for number in range(20_000):
            for second in range(0, 900, 60):  # a count in each of the 15 minutes
                ledger.admit(f"caller-{number}", 1_000_000 + second)
        used = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(ledger._minutes) == 1000
    assert used < 4 * 1024 * 1024
