"""Telling the app: one signed JSON POST to the one configured URL (``SIGNER_WEBHOOK_URL``).

The receiver checks ``Signer-Signature: t=<unix seconds>,v1=<hex>``, where ``<hex>`` is
HMAC-SHA256 with ``SIGNER_WEBHOOK_SECRET`` over ``<t>.<raw body>`` (README, "Tell the app"):
the timestamp is signed, so an old event cannot be replayed as new, and ``Signer-Event-Id``
(also the body's ``id``) lets it drop a repeat (delivery is at least once). The URL comes
from the configuration only: no caller's input chooses where the service connects, and
redirects are not followed. Only the sweeper (signer/service/finish.py) calls this, never a
request thread.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from ..sigv4 import current_time
from . import metrics
from .errors import ConfigError
from .storage import StorageError, exchange

log = logging.getLogger("signer")

SIGNATURE_HEADER = "Signer-Signature"
EVENT_ID_HEADER = "Signer-Event-Id"
MIN_SECRET_LENGTH = 32
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?(\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?")


@dataclass(frozen=True)
class Webhook:
    """Where events go and the key that signs them (never in a repr, an event or a log line)."""

    url: str
    secret: bytes = field(repr=False)
    timeout: float = 5.0


def webhook_from(url: str | None, secret: str | None, timeout: float) -> Webhook | None:
    """``SIGNER_WEBHOOK_URL`` and its secret, both or neither; a URL with user info is refused
    (the credentials would sit in the configuration's plain text and in every error)."""
    if not url:
        if secret:
            raise ConfigError("SIGNER_WEBHOOK_SECRET is set but SIGNER_WEBHOOK_URL is not")
        return None
    if not _URL.fullmatch(url) or not _connectable(url):
        raise ConfigError("SIGNER_WEBHOOK_URL must be http(s)://host[:port][/path], with no user name or fragment")
    if not secret or len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(f"SIGNER_WEBHOOK_SECRET (or _FILE) of at least {MIN_SECRET_LENGTH} characters is required "
                          "with SIGNER_WEBHOOK_URL")
    return Webhook(url, secret.encode("utf-8"), timeout)


def _connectable(url: str) -> bool:
    """A port of 0 to 65535 and a host name of non-empty labels of at most 63 characters (the
    pattern takes more): a connection could use no other, and fails with a ValueError, not a
    network error."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - the property raises ValueError out of range
        (parts.hostname or "").encode("idna")
    except ValueError:  # UnicodeError too
        return False
    return True


def signature_header(secret: bytes, timestamp: int, body: bytes) -> str:
    """``t=<timestamp>,v1=<HMAC-SHA256(secret, "<timestamp>." + body) in hex>``."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass(frozen=True)
class Event:
    """One webhook event: what happened (``type``) to which key of whose, with the object's facts.
    Its JSON (:meth:`to_json`) is the body the receiver gets and what a notify marker stores, so
    its keys never change: ``reason`` only when ``code`` is set, and ``extra`` (``published``, say)
    added at the top level. Built with a ``time`` it cannot read, it raises ValueError."""

    id: str
    type: str
    time: str
    """When it happened, UTC, ``2026-12-06T12:00:00Z`` (kept as sent)."""
    key: str
    identity: str | None
    size: int | None
    content_type: str | None
    etag: str | None
    code: str | None = None
    message: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.happened()

    def happened(self) -> datetime:
        return datetime.strptime(self.time, TIME_FORMAT).replace(tzinfo=UTC)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "type": self.type, "time": self.time, "key": self.key, "identity": self.identity,
            "size": self.size, "content_type": self.content_type, "etag": self.etag,
        }
        if self.code is not None:
            data["reason"] = {"code": self.code, "message": self.message}
        data.update(self.extra)
        return data

    @classmethod
    def from_json(cls, data: object) -> Event:
        """An event as :meth:`to_json` wrote it (kept in a marker); ValueError when it is not one."""
        if not isinstance(data, dict):
            raise ValueError("an event is a JSON object")
        reason = data.get("reason")
        if reason is not None and not (isinstance(reason, dict) and isinstance(reason.get("code"), str)):
            raise ValueError("an event's reason has no code")
        return cls(
            typed(data.get("id"), str), typed(data.get("type"), str), typed(data.get("time"), str),
            typed(data.get("key"), str), typed(data.get("identity"), str, True), typed(data.get("size"), int, True),
            typed(data.get("content_type"), str, True), typed(data.get("etag"), str, True),
            reason["code"] if reason else None, typed(reason.get("message"), str, True) if reason else None,
            {name: value for name, value in data.items() if name not in _EVENT_KEYS},
        )


_EVENT_KEYS = frozenset(("id", "type", "time", "key", "identity", "size", "content_type", "etag", "reason"))


def typed(value: Any, kind: type, optional: bool = False) -> Any:
    """A value read from stored JSON: ``value`` if it is a ``kind`` (not a bool), or None when
    ``optional``; else ValueError, which the reader handles as an unreadable record."""
    if (value is None and optional) or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise ValueError(f"expected {kind.__name__}, found {type(value).__name__}")


def event_body(event: Event) -> bytes:
    return json.dumps(event.to_json(), separators=(",", ":"), sort_keys=True).encode("utf-8")


def deliver(webhook: Webhook, event: Event, *, now: datetime | None = None) -> bool:
    """POST one event; True when the receiver answered 2xx. Failures are logged with the
    status or the kind of error only (no body, no URL query, no secret)."""
    body = event_body(event)
    timestamp = int((now or current_time()).timestamp())
    headers = {
        "Content-Type": "application/json", "User-Agent": "sigv4-signer-webhook",
        SIGNATURE_HEADER: signature_header(webhook.secret, timestamp, body), EVENT_ID_HEADER: event.id,
    }
    try:
        answer = exchange("POST", webhook.url, headers, body, webhook.timeout)
    except StorageError:
        log.warning("webhook delivery of %s failed: the receiver did not answer", event.type)
        _attempted(event, False)
        return False
    if 200 <= answer.status < 300:
        log.info("webhook delivered %s %s", event.type, event.id)
        _attempted(event, True)
        return True
    log.warning("webhook delivery of %s failed: the receiver answered %d", event.type, answer.status)
    _attempted(event, False)
    return False


def _attempted(event: Event, delivered: bool) -> None:
    """Counted, and the event's age kept while it waits (signer_webhook_oldest_undelivered_seconds)."""
    metrics.webhook_attempt(event.id, event.happened().timestamp(), delivered)
