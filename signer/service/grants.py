"""A grant: what one signature allows, for whom, under which kind, and what the finish step owes.

Every entry point (the JSON API, Fine Uploader, Companion, signRequest, the CLI) gets its plan from
the one request plan (:mod:`signer.service.rules`, the rules of the request's kind from
:mod:`signer.service.kinds`) and hands it to :func:`issue`, the one function that runs
guard → sign → record. Each grant writes one audit line (JSON on the ``signer.audit`` logger):
identity, kind, bucket, key, method, expiry, protocol, never a signature, token or secret.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

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

    def audit_line(self) -> str:
        expires = self.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ") if self.expires_at else None
        return json.dumps({"event": "grant", "identity": self.identity, "via": self.via, "kind": self.kind,
                           "bucket": self.bucket, "key": self.key, "method": self.method, "expires_at": expires,
                           "protocol": self.protocol}, separators=(",", ":"))


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
    return signed


def audit(grant: Grant, expires_at: datetime | None = None) -> None:
    """The grant's one audit line (for a step the service does itself, e.g. a Companion complete,
    the only thing written here)."""
    if audit_log.isEnabledFor(logging.INFO):
        audit_log.info("%s", replace(grant, expires_at=expires_at or grant.expires_at).audit_line())
