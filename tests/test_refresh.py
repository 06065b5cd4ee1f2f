"""RefreshingCredentials with an injected clock: ahead of expiry, one refresher at a time,
serving through a provider outage until the credentials really expire, then failing closed."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from signer.credentials import Credentials
from signer.errors import CredentialsUnavailable
from signer.refresh import RefreshingCredentials

START = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.moment = START

    def __call__(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


class Provider:
    """Issues ``key-N`` living ``lifetime`` seconds from the clock's time; ``down`` fails."""

    name = "fake"

    def __init__(self, clock: Clock, lifetime: float) -> None:
        self.clock, self.lifetime = clock, lifetime
        self.calls = 0
        self.down = False
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def fetch(self, now: datetime) -> Credentials:
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.down:
            raise CredentialsUnavailable("fake: endpoint answered 500")
        return Credentials(f"KEY{self.calls:04d}", f"secret-{self.calls}", f"token-{self.calls}",
                           now + timedelta(seconds=self.lifetime))


def holder(lifetime: float) -> tuple[Clock, Provider, RefreshingCredentials]:
    clock = Clock()
    provider = Provider(clock, lifetime)
    return clock, provider, RefreshingCredentials(provider, now=clock, jitter=lambda: 0.0)


def test_long_lived_credentials_refresh_five_minutes_before_expiry() -> None:
    clock, provider, source = holder(3600)
    assert source.get().access_key == "KEY0001"
    clock.advance(3600 - 301.5 - 0.01)
    assert source.get().access_key == "KEY0001" and provider.calls == 1
    clock.advance(0.01)
    assert source.get().access_key == "KEY0002" and provider.calls == 2


def test_short_lifetimes_refresh_at_half_life_and_jitter_only_brings_it_earlier() -> None:
    clock, _, source = holder(2)
    source.get()
    clock.advance(0.24)  # half of the half second that is not needed for a 1-second URL
    assert source.get().access_key == "KEY0001"
    clock.advance(0.01)
    assert source.get().access_key == "KEY0002"
    jittery = RefreshingCredentials(Provider(clock, 100), now=clock, jitter=lambda: 1.0)
    jittery.get()
    clock.advance(45)  # at 100 - 1.5 - 49.25 - 4.925 s
    assert jittery.get().access_key == "KEY0002"


def test_static_credentials_are_fetched_once() -> None:
    class Static:
        name = "environment"
        calls = 0

        def fetch(self, now: datetime) -> Credentials:  # noqa: ARG002 - the Provider protocol
            self.calls += 1
            return Credentials("AKIDSTATIC", "static-secret")

    clock, static = Clock(), Static()
    source = RefreshingCredentials(static, now=clock)
    for _ in range(3):
        clock.advance(10**6)
        assert source.get().access_key == "AKIDSTATIC"
    assert static.calls == 1


def test_one_thread_refreshes_while_the_others_keep_signing() -> None:
    clock, provider, source = holder(600)
    source.get()
    clock.advance(301)  # past half-life: due
    provider.gate = threading.Event()
    provider.entered.clear()
    refresher = threading.Thread(target=source.get)
    refresher.start()
    assert provider.entered.wait(5)
    # The refresh is in flight and blocked: everyone else gets the still-valid credentials at once.
    seen = []
    others = [threading.Thread(target=lambda: seen.append(source.get().access_key)) for _ in range(20)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(5)
    assert seen == ["KEY0001"] * 20 and provider.calls == 2
    provider.gate.set()
    refresher.join(5)
    assert source.get().access_key == "KEY0002" and provider.calls == 2


def test_expired_credentials_wait_for_the_refresh_in_flight() -> None:
    clock, provider, source = holder(10)
    source.get()
    clock.advance(10)  # expired: nobody may sign with KEY0001 any more
    provider.gate = threading.Event()
    provider.entered.clear()
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(source.get().access_key)) for _ in range(5)]
    for thread in threads:
        thread.start()
    assert provider.entered.wait(5)
    provider.gate.set()
    for thread in threads:
        thread.join(5)
    assert results == ["KEY0002"] * 5 and provider.calls == 2


def test_an_outage_serves_until_expiry_then_fails_closed_then_recovers(caplog) -> None:
    clock, provider, source = holder(100)
    source.get()
    provider.down = True
    calls_before = provider.calls
    moments = 0
    while clock.moment < START + timedelta(seconds=98.5):  # until 1.5 s before expiry
        clock.advance(0.5)
        moments += 1
        assert source.get().access_key == "KEY0001"
    # Retried with backoff, not on every call.
    assert 1 <= provider.calls - calls_before < moments / 4
    clock.advance(0.5)  # less than 1.5 s left: too little to sign a 1-second URL and serve it
    with pytest.raises(CredentialsUnavailable) as caught:
        source.get()
    assert "fake: endpoint answered 500" in caught.value.message
    assert "secret" not in caught.value.message
    status = source.status()
    assert not status.usable and status.provider == "fake" and status.error
    provider.down = False
    clock.advance(61)  # past the longest backoff
    assert source.get().access_key.startswith("KEY")
    assert source.status().usable
    assert any("credentials refresh from fake failed" in r.getMessage() for r in caplog.records)


def test_failing_closed_does_not_hammer_the_provider() -> None:
    clock, provider, source = holder(10)
    provider.down = True
    for _ in range(50):
        with pytest.raises(CredentialsUnavailable):
            source.get()
    assert provider.calls == 1
    clock.advance(1.01)
    with pytest.raises(CredentialsUnavailable):
        source.get()
    assert provider.calls == 2


def test_refresh_is_logged_without_secret_or_token(caplog) -> None:
    caplog.set_level(logging.INFO, logger="signer.credentials")
    _, _, source = holder(2)
    source.get()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "credentials refreshed from fake: access key KEY0001" in text
    assert "secret-1" not in text and "token-1" not in text
    assert "secret" not in repr(source) and "secret-1" not in repr(source.get())
