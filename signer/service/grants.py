"""A grant: what one signature allows, for whom, under which kind, and what the finish step owes.

Every entry point (the JSON API, Fine Uploader, Companion, signRequest, the CLI) gets its plan from
the one request plan (:mod:`signer.service.rules`, the rules of the request's kind from
:mod:`signer.service.kinds`) and hands it to :func:`issue`, the one function that runs
guard → sign → record. Each grant writes one audit line (JSON on the ``signer.audit`` logger):
identity, kind, bucket, key, method, expiry, protocol, never a signature, token or secret.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring as _text
from typing import NamedTuple, TypeVar

from ..post_policy import policy_expiration
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


class Grant(NamedTuple):
    """One signature given: ``method`` is the HTTP method signed (``POST`` for a form) or, for a
    multipart step, the S3 operation. Immutable like the frozen dataclasses elsewhere, but a
    NamedTuple: one is built per request, at a quarter of a frozen dataclass's cost."""

    protocol: str
    identity: str
    via: str
    kind: str
    bucket: str
    key: str
    method: str
    owed: Owed | None = None

    def audit_line(self, expires_at: datetime | None = None) -> str:
        """One JSON object on one line. Identity and key are escaped (json's C encoder); the other
        values are names the service chose (a kind's name, a bucket S3 accepts, a method, a
        protocol), written as they are: this runs per grant."""
        expires = f'"{stamp(expires_at)}"' if expires_at else "null"
        return (f'{{"event":"grant","identity":{_text(self.identity)},"via":"{self.via}","kind":"{self.kind}",'
                f'"bucket":"{self.bucket}","key":{_text(self.key)},"method":"{self.method}","expires_at":{expires},'
                f'"protocol":"{self.protocol}"}}')


stamp = functools.lru_cache(maxsize=64)(policy_expiration)
"""``2026-12-06T20:30:00Z`` for a UTC moment. Cached: it is written twice per grant (the answer and
the audit line), and every grant signed within the same second expires at the same moment."""


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
    """Audit lines for a file descriptor (stderr's, set by wsgi.py), ``audit {JSON}`` each, written
    in batches by a thread of their own at least every :data:`AUDIT_FLUSH` seconds.

    Why not a write per grant: the system call released the GIL mid-request, and gunicorn's request
    threads waiting for it made about 6 more futex calls per request (strace); side by side, servers
    without that write came out several % cheaper per request, within a benchmark whose own spread
    is as wide (docs/kinds.md, Speed). A line is queued before
    the signature leaves and reaches the descriptor within :data:`AUDIT_FLUSH`; :meth:`close`
    (gunicorn's worker_exit, and at exit) writes the rest, so only a worker killed outright loses
    its last fraction of a second. A queue past :data:`AUDIT_BACKLOG` lines (a stalled reader) is
    written by the request that finds it so: requests wait for the reader rather than lines being
    dropped or memory growing."""

    def __init__(self, fd: int, every: float = 0.0) -> None:
        self.fd = fd
        self.every = every or AUDIT_FLUSH
        self._queued: deque[str] = deque()  # append and popleft are atomic: no lock on the request's path
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        os.register_at_fork(after_in_child=self._forked)

    def write(self, line: str) -> None:
        self._queued.append(f"audit {line}\n")
        if self._thread is None:
            self._start()
        elif len(self._queued) > AUDIT_BACKLOG:
            self.flush()

    def flush(self) -> None:
        """Write every queued line, oldest first, in as few system calls as the descriptor allows."""
        lines = []
        with contextlib.suppress(IndexError):
            while True:
                lines.append(self._queued.popleft())
        data = "".join(lines).encode()
        try:
            while data:
                data = data[os.write(self.fd, data):]
        except OSError:  # a closed or broken stderr: as logging does, never fail a request
            pass

    def close(self) -> None:
        self.flush()

    def _start(self) -> None:
        with self._starting:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="signer-audit", daemon=True)
                self._thread.start()
                atexit.register(self.close)

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            if self._queued:
                self.flush()

    def _forked(self) -> None:
        """A forked child has neither the thread nor, perhaps, a usable lock (held by another thread
        at the fork); the queued lines are its parent's to write. It starts afresh on its first grant."""
        self._queued.clear()
        self._starting = threading.Lock()
        self._thread = None


AUDIT_FLUSH = 0.2
"""Seconds an audit line may wait in a worker before it is written (:class:`AuditStream`)."""
AUDIT_BACKLOG = 10_000
"""Queued audit lines past which the request that queues one writes them all itself."""


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
