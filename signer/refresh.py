"""Temporary credentials kept fresh without a dropped request.

:class:`RefreshingCredentials` asks its provider again ahead of expiry: 5 minutes before
the credentials become unusable, or half the time until then when that is shorter, minus up
to 10 % jitter (so the workers of one
host do not all call the provider at once). Only one thread refreshes at a time; the others
keep signing with the current credentials as long as they are valid. A failed refresh is
retried with exponential backoff while the current credentials keep serving; once they have
really expired, :meth:`RefreshingCredentials.get` raises :class:`CredentialsUnavailable`
(fail closed) until a refresh succeeds. The clock is injectable (``now``) for tests.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .credentials import Credentials, Provider
from .errors import CredentialsUnavailable, SigningError
from .sigv4 import current_time

log = logging.getLogger("signer.credentials")

ADVANCE = timedelta(minutes=5)
MIN_REMAINING = timedelta(seconds=1.5)
"""Credentials with less than this left are treated as expired: enough for a 1-second URL
plus the time to serve the request that signs it."""
MAX_BACKOFF = 60.0


@dataclass(frozen=True)
class CredentialsStatus:
    """What ``/readyz`` and ``check-config`` may show: never the secret or the token."""

    provider: str
    usable: bool
    access_key: str | None
    expiration: datetime | None
    error: str | None


class RefreshingCredentials:
    """The current credentials of one provider, refreshed ahead of expiry (see module)."""

    def __init__(self, provider: Provider, *, now: Callable[[], datetime] | None = None,
                 jitter: Callable[[], float] = random.random) -> None:
        self.provider = provider
        self._now = now or current_time
        self._jitter = jitter
        self._lock = threading.Lock()
        self._current: Credentials | None = None
        self._refresh_at: datetime | None = None  # None: nothing fetched yet
        self._retry_at: datetime | None = None
        self._failures = 0
        self._error: str | None = None

    @property
    def name(self) -> str:
        return self.provider.name

    def __repr__(self) -> str:
        return f"RefreshingCredentials(provider={self.name!r})"

    def get(self) -> Credentials:
        """Credentials valid for at least a second more, or :class:`CredentialsUnavailable`."""
        now = self._now()
        current, refresh_at = self._current, self._refresh_at
        if current is not None and refresh_at is not None and now < refresh_at:
            return current  # the fast path: no lock
        if self._usable(current, now):
            # Due for refresh but still valid: one thread refreshes, the others sign on.
            if self._lock.acquire(blocking=False):
                try:
                    self._refresh_if_due()
                finally:
                    self._lock.release()
            current = self._current
            if self._usable(current, self._now()):
                return current  # type: ignore[return-value]
        with self._lock:  # nothing usable: wait for a refresh in flight, or do one
            current = self._current
            if not self._usable(current, self._now()):
                self._refresh_if_due()
                current = self._current
            if self._usable(current, self._now()):
                return current  # type: ignore[return-value]
        raise CredentialsUnavailable(f"no valid credentials: {self._error or self.name + ' credentials expired'}")

    def status(self) -> CredentialsStatus:
        """Try to have usable credentials, then describe them (for ``/readyz``)."""
        try:
            credentials: Credentials | None = self.get()
        except SigningError:
            credentials = None
        return CredentialsStatus(
            provider=self.name,
            usable=credentials is not None,
            access_key=credentials.access_key if credentials else None,
            expiration=credentials.expiration if credentials else (self._current.expiration if self._current else None),
            error=None if credentials else self._error,
        )

    # --- inside the lock --------------------------------------------------------------

    def _refresh_if_due(self) -> None:
        now = self._now()
        if self._refresh_at is not None and now < self._refresh_at:
            return  # another thread just refreshed
        if self._retry_at is not None and now < self._retry_at:
            return  # backing off after a failure
        try:
            fresh = self.provider.fetch(now)
        except SigningError as exc:
            self._failed(exc.message, now)
            return
        except Exception as exc:  # noqa: BLE001 - a provider bug must not leak details or kill the caller
            self._failed(f"{self.name}: unexpected {type(exc).__name__}", now)
            return
        if fresh.expiration is not None and fresh.expiration - now < MIN_REMAINING:
            self._failed(f"{self.name}: the new credentials are already expired", now)
            return
        self._current, self._failures, self._retry_at, self._error = fresh, 0, None, None
        self._refresh_at = self._next_refresh(fresh, now)
        if fresh.expiration is not None:
            log.info("credentials refreshed from %s: access key %s, expire %s, next refresh %s",
                     self.name, fresh.access_key, fresh.expiration.isoformat(), self._refresh_at.isoformat())
        else:
            log.info("credentials loaded from %s: access key %s, no expiry", self.name, fresh.access_key)

    def _next_refresh(self, fresh: Credentials, now: datetime) -> datetime:
        if fresh.expiration is None:
            return datetime.max.replace(tzinfo=now.tzinfo)
        # Refresh while at least MIN_REMAINING is left, so the other threads keep signing
        # with these credentials until the refresh is done.
        spare = min(ADVANCE, max(fresh.expiration - now - MIN_REMAINING, timedelta(0)) / 2)
        return max(now, fresh.expiration - MIN_REMAINING - spare - spare * (0.1 * self._jitter()))

    def _failed(self, message: str, now: datetime) -> None:
        self._failures += 1
        self._error = message
        delay = min(MAX_BACKOFF, 2.0 ** (self._failures - 1)) * (0.5 + 0.5 * self._jitter())
        current = self._current
        if current is not None and current.expiration is not None and current.expiration > now:
            # Still serving: try again well before the current credentials run out.
            delay = min(delay, max(0.05, (current.expiration - now).total_seconds() / 4))
        self._retry_at = now + timedelta(seconds=delay)
        log.warning("credentials refresh from %s failed (attempt %d, next in %.1fs): %s",
                    self.name, self._failures, delay, message)

    @staticmethod
    def _usable(credentials: Credentials | None, now: datetime) -> bool:
        return credentials is not None and (
            credentials.expiration is None or credentials.expiration - now >= MIN_REMAINING
        )
