"""A grant: what one signature allows, for whom, under which kind, and what the finish step owes.

Every entry point (the JSON API, Fine Uploader, Companion, signRequest, the CLI) gets its plan from
the one request plan (:mod:`signer.service.rules`, the rules of the request's kind from
:mod:`signer.service.kinds`) and hands it to :func:`issue`, the one function that runs
guard → sign → record. Each grant writes one audit line (JSON on the ``signer.audit`` logger):
identity, kind, bucket, key, method, expiry, protocol, never a signature, token or secret.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring as _text
from typing import TextIO, TypeVar

from . import metrics
from .finish import Expectation, Finish, expect_upload

audit_log = logging.getLogger("signer.audit")
Signed = TypeVar("Signed")


@dataclass(frozen=True)
class Owed:
    """What the finish step owes an upload once it ends: check it against ``expected`` (the rules it
    was signed under) and report it. ``bounded``: the signature binds size and type, so a marker is
    needed only to report or to check content; ``upload_id``: a multipart complete."""

    expected: Expectation
    owner: str
    bounded: bool = True
    upload_id: str | None = None


@dataclass(frozen=True)
class Grant:
    """One signature given: ``method`` is the HTTP method signed (``POST`` for a form) or, for a
    multipart step, the S3 operation; ``expires_at`` is filled in by :func:`issue` once signed."""

    protocol: str
    identity: str
    via: str
    kind: str
    bucket: str
    key: str
    method: str
    expires_at: datetime | None = None
    owed: Owed | None = None

    def audit_line(self, expires_at: datetime | None = None) -> str:
        """One JSON object on one line. Identity and key are escaped (json's C encoder); the other
        values are names the service chose (a kind's name, a bucket S3 accepts, a method, a
        protocol), written as they are: this runs per grant."""
        moment = expires_at or self.expires_at
        expires = f'"{stamp(moment)}"' if moment else "null"
        return (f'{{"event":"grant","identity":{_text(self.identity)},"via":"{self.via}","kind":"{self.kind}",'
                f'"bucket":"{self.bucket}","key":{_text(self.key)},"method":"{self.method}","expires_at":{expires},'
                f'"protocol":"{self.protocol}"}}')


def stamp(moment: datetime) -> str:
    """``2026-12-06T20:30:00Z`` for a UTC moment, as ``strftime`` writes it, at a third of its cost
    (per grant, twice: the answer and the audit line)."""
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{moment.second:02d}Z")


def issue(grant: Grant, sign: Callable[[], tuple[Signed, datetime | None]], *, finish: Finish | None, clock_skew: int,
          now: datetime, guard: Callable[[], None] | None = None) -> Signed:
    """Guard (a store check before signing, e.g. the parts of a complete), sign, record what the
    finish step owes (before the signature leaves: a store that cannot take the marker refuses the
    request), then one audit line. ``sign`` returns the signed value and when it expires; ``finish``
    None: nothing is recorded (the CLI, which has no finish step)."""
    if guard is not None:
        guard()
    signed, expires_at = sign()
    owed = grant.owed
    if owed is not None and finish is not None:
        expect_upload(finish, owed.expected, protocol=grant.protocol, signed_until=expires_at or now,
                      clock_skew=clock_skew, upload_id=owed.upload_id, bounded=owed.bounded, now=now,
                      owner=owed.owner)
    audit(grant, expires_at)
    metrics.signed(grant.protocol, SIGNED_METHOD.get(grant.method, grant.method), kind=grant.kind)
    return signed


SIGNED_METHOD = {"initiate": "POST", "create": "POST", "part": "PUT", "complete": "POST", "abort": "DELETE"}
"""The HTTP method of the S3 request a multipart step signs (``signer_signatures_total{method}``)."""


class AuditStream:
    """Audit lines written straight to a stream, ``audit {JSON}`` each, one write and a flush under a
    lock: what wsgi.py sets for gunicorn (stderr). A log record per grant cost more than the rest of
    the audit (about 10 µs of a presign's 60 in the service's own code)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        text = f"audit {line}\n"
        with self._lock:
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # a closed or broken stderr: as logging does, never fail a request
                pass


audit_stream: AuditStream | None = None
"""Set once at start-up (wsgi.py); None: audit lines go to the ``signer.audit`` logger (tests, the CLI)."""


def audit(grant: Grant, expires_at: datetime | None = None) -> None:
    """The grant's one audit line (for a step the service does itself, e.g. a Companion complete,
    the only thing written here): to :data:`audit_stream` when the service set one, else to the
    ``signer.audit`` logger, its record made directly (``Logger.info`` would also walk the stack)."""
    if audit_stream is not None:
        audit_stream.write(grant.audit_line(expires_at))
    elif audit_log.isEnabledFor(logging.INFO):
        audit_log.handle(logging.LogRecord(audit_log.name, logging.INFO, __file__, 0, grant.audit_line(expires_at),
                                           None, None, "audit"))
