"""The after-complete watch's bookkeeping: one watch per upload, a bound per caller,
credentials read at each attempt, and a crash that still frees the watch's slot."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from signer import Bucket, Credentials
from signer.service import completion
from signer.service.errors import Refused
from signer.service.rules import Rules

BUCKET = Bucket("uploads-bucket", endpoint_url="http://127.0.0.1:9")


@pytest.fixture
def timers(monkeypatch) -> list[tuple[float, Callable[[int], None], int]]:
    """Fresh bookkeeping, and timers that run only when the test says so."""
    due: list[tuple[float, Callable[[int], None], int]] = []
    monkeypatch.setattr(completion, "_pending", [0])
    monkeypatch.setattr(completion, "_watched", set())
    monkeypatch.setattr(completion, "_per_caller", {})
    monkeypatch.setattr(completion, "_timer", lambda delay, function, index: due.append((delay, function, index)))
    return due


def credentials() -> Credentials:
    return Credentials("AKIDEXAMPLE12345", "secret-for-the-watch-test")


def test_one_watch_per_upload(timers) -> None:
    caller = Rules().for_caller("alice")
    outcomes: list[str] = []
    for _ in range(3):
        completion.schedule_object_check(credentials, BUCKET, caller, "uploads/alice/a", "u1", done=outcomes.append)
    assert len(timers) == 1 and outcomes == ["watched", "watched"]


@pytest.mark.usefixtures("timers")  # the bookkeeping fresh, no real timers
def test_one_caller_cannot_fill_the_process_bound() -> None:
    alice, bob = Rules().for_caller("alice"), Rules().for_caller("bob")
    for number in range(completion.MAX_CHECKS_PER_CALLER):
        completion.schedule_object_check(credentials, BUCKET, alice, "uploads/alice/a", f"u{number}")
    with pytest.raises(Refused):
        completion.schedule_object_check(credentials, BUCKET, alice, "uploads/alice/a", "one-more")
    completion.schedule_object_check(credentials, BUCKET, bob, "uploads/bob/a", "u0")  # others still can


def test_credentials_are_read_at_each_attempt_and_a_crash_frees_the_slot(timers, monkeypatch) -> None:
    caller = Rules().for_caller("alice")
    seen: list[str] = []

    def rotating() -> Credentials:
        seen.append("read")
        return credentials()

    def broken_list_parts(*args: object, **kwargs: object) -> None:  # noqa: ARG001 - list_parts's stand-in
        raise RuntimeError("a bug in the store client")

    monkeypatch.setattr(completion, "list_parts", broken_list_parts)
    outcomes: list[str] = []
    completion.schedule_object_check(rotating, BUCKET, caller, "uploads/alice/a", "u1", done=outcomes.append)
    assert seen == []  # nothing read at scheduling time
    _, attempt, index = timers.pop()
    attempt(index)
    assert seen == ["read"] and outcomes == ["error"]
    assert completion._pending == [0] and completion._per_caller == {} and completion._watched == set()
