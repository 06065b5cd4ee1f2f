"""The end of an upload, owned by the service and kept in the store, not in a process.

When the service signs something whose outcome it must check (a complete the client sends
itself) or report (any upload, when ``SIGNER_WEBHOOK_URL`` is set), it first writes a
*marker*: a small JSON object at ``<SIGNER_KEY_PREFIX>.signer/pending/<shard>/<due>-<id>`` (a
folder no caller may sign for, see rules.SERVICE_FOLDER) holding the key, the caller and the rules
that applied. ``<shard>`` (two hex digits, from the id) spreads the writes over
``SIGNER_FINISH_SHARDS`` prefixes (S3 takes about 3,500 writes a second per prefix); markers of the
older layout, ``pending/<due>-<id>``, are still swept. With ``SIGNER_EVENTS_QUEUE_URL`` the store's
own notifications finish an upload (signer/service/events.py), and its marker is named by its key
instead, ``pending/keyed/<hash of the key>``: the event finds it by name; the sweep only looks at
it once every signature it covers has expired (its write time + :attr:`Finish.horizon`), for an
event that never came. One :class:`~signer.service.sweeping.Sweeper` per replica lists the due
markers (the due time, in whole seconds of the store's clock, leads the name, so a listing of a
shard in key order stops at the first one not due), claims one by a conditional write of a short
lease into it (``If-Match`` its ETag: one winner), then:

* **check** (:func:`check_object`): HEAD the object, compare size, type and folder with the
  rules it was signed under, delete what breaks them; not there yet: look again later, until
  no signature we gave can still produce it;
* **tell the app**: the outcome becomes an event (``upload.verified``, ``upload.rejected``;
  ``upload.published`` via :func:`queue_event`), POSTed to the webhook (signer/service/notify.py)
  until it answers 2xx, with backoff; the event id names the upload (its key and ETag), so a
  repeat is recognisable.

A marker is rescheduled by writing it under its new due time and deleting the old name, and
removed when done. A replica that dies mid-way leaves its lease to expire; whoever claims the
marker next does the work again, which is harmless: checking is idempotent and delivery is at
least once. Nothing lives in the process: restarts, recycling and scale-in lose nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from ..credentials import Credentials
from ..s3 import Bucket
from ..sigv4 import current_time
from . import metrics
from .errors import NotAllowed, Refused, Throttled
from .notify import TIME_FORMAT, Event, Webhook, deliver, typed
from .rules import SERVICE_FOLDER, CallerRules, Rules
from .sniff import check_content, first_bytes
from .storage import (
    Listing,
    ObjectInfo,
    PreconditionFailed,
    UploadNotFound,
    delete_object,
    get_object,
    head_object,
    list_keys,
    list_parts,
    put_object,
)

log = logging.getLogger("signer")

CHECK_DELAYS = (2, 5, 15, 40, 240)
"""Seconds between looks at an upload not finished yet (the client completes right away), then every 600."""
LATER = 600
SETTLE = 900 + 60
"""After the last signature we gave expires: S3 accepts a date 15 minutes off, plus a minute."""
LEASE = 60
"""Seconds a claim holds a marker: more than one marker's work (a few S3 calls and one POST)."""
MAX_PER_SWEEP = 50
"""Markers one sweep works on: bounded work, whatever the backlog; the rest wait for the next."""
BACKOFF_CAP = 3600
GIVE_UP = 3 * 86400
"""An event not delivered for three days is dropped (logged as an error)."""
FAILURE_BACKOFF_CAP = 600
"""A marker whose store calls fail is looked at again after 2, 4, 8 … seconds, at most this."""
PENDING_WINDOW = 900
"""Seconds a recorded upload counts against its caller's SIGNER_MAX_PENDING_PER_CALLER."""
DEFAULT_MAX_PENDING = 200
MAX_SHARDS = 256
_NAME = re.compile(r"(?:(?P<shard>[0-9a-f]{2})/)?(?P<due>[0-9]{10})-(?P<id>[0-9a-f]{32})|keyed/(?P<hash>[0-9a-f]{32})")
"""A marker's name under the pending folder: ``<shard>/<due>-<id>``, the older ``<due>-<id>``, or
``keyed/<hash>`` (with store notifications)."""
KEYED = "keyed/"


class Alarm:
    """How a request thread tells its replica's sweeper that a marker it wrote is due at a time (store
    seconds): one datagram to the sweeper's Unix socket (signer/service/sweeping.py), never waited
    for. Lost or unheard (no sweeper yet), the sweeper's own schedule still finds the marker."""

    def __init__(self) -> None:
        self.path: str | None = None
        self._socket: socket.socket | None = None

    def ring(self, due: int) -> None:
        if self.path is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto(str(due).encode("ascii"), self.path)
        except OSError:
            pass  # no sweeper listening, or its queue is full: it sweeps on its own schedule

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class StoreClock:
    """How far the store's clock is from this process's, from the store's own ``Date`` headers (each
    sweep's listing): markers are named in the store's time, which the sweeps compare them with, so
    a service clock that runs ahead or behind delays nothing (issue #31). Zero until the first
    sweep has read the store; moved only by two seconds or more, so two names computed a moment
    apart (a marker written, then forgotten) agree."""

    def __init__(self) -> None:
        self.offset = 0

    def observe(self, store_time: datetime, service_time: datetime) -> None:
        measured = round((store_time - service_time).total_seconds())
        if abs(measured - self.offset) >= 2:
            self.offset = measured

    def store_now(self, service_time: datetime) -> datetime:
        return service_time + timedelta(seconds=self.offset)


@dataclass(frozen=True)
class Finish:
    """What the finish step needs: the bucket, the service's credentials (read at each use:
    they rotate), its S3 timeout, the sweep interval and the webhook, if any."""

    credentials: Callable[[], Credentials]
    bucket: Bucket
    key_prefix: str
    timeout: float = 10.0
    interval: int = 10
    webhook: Webhook | None = None
    publish_unseen: Callable[[Expectation], None] | None = None
    """With SIGNER_PUBLISH_ON_UPLOAD: publish a verified upload whose completion the service never
    sees (:func:`completion_unseen`); the sweepers call it, so it happens on any replica."""
    pending: PendingLedger = field(default_factory=lambda: PendingLedger(DEFAULT_MAX_PENDING))
    """How many uploads each caller recorded lately, in this worker: one caller (or one address of
    anonymous visitors) cannot fill the sweeps with markers (issue #25)."""
    clock: StoreClock = field(default_factory=StoreClock)
    """The store's clock against this process's, as the sweeps last read it."""
    now: Callable[[], datetime] = current_time
    """This process's clock (tests skew it)."""
    shards: int = 1
    """SIGNER_FINISH_SHARDS: how many prefixes new markers spread over (all are swept, whatever it is)."""
    events: bool = False
    """SIGNER_EVENTS_QUEUE_URL is set: the store tells of new objects; a check marker is named by its key."""
    horizon: int = 3600 + 900 + 960
    """Seconds after a keyed marker's write by which every signature it covers has expired and settled
    (SIGNER_MAX_EXPIRES + SIGNER_CLOCK_SKEW + :data:`SETTLE`): when the sweep looks at it."""
    alarm: Alarm = field(default_factory=Alarm)
    """Wakes this replica's sweeper when a marker is written (signer/service/sweeping.py)."""
    check_content: bool = False
    """The kind's ``check_content`` (issue #26): the first bytes must be the declared type."""

    @property
    def pending_prefix(self) -> str:
        return f"{self.key_prefix}{SERVICE_FOLDER}pending/"


class PendingLedger:
    """The uploads each caller recorded in the last :data:`PENDING_WINDOW` seconds (by the minute), in
    this worker process: a caller at ``limit`` is refused (429) until its oldest minute leaves the
    window. Kept in the process, not the store, so the check costs no request; a deployment's real
    cap is therefore ``limit`` × workers × replicas (README). At most ``callers`` callers are
    tracked, each in at most 15 minute counts; past that the quietest are forgotten, so an attacker
    with many identities costs bounded memory (and is slowed by the other limits instead)."""

    def __init__(self, limit: int, callers: int = 10_000) -> None:
        self.limit = limit
        self.callers = callers
        self._minutes: dict[str, deque[list[int]]] = {}
        self._lock = threading.Lock()

    def admit(self, owner: str, now: float) -> None:
        """Count one more upload for ``owner``, or raise :class:`Throttled` at the limit."""
        minute = int(now // 60)
        with self._lock:
            counts = self._minutes.pop(owner, None) or deque()
            while counts and counts[0][0] <= minute - PENDING_WINDOW // 60:
                counts.popleft()
            self._minutes[owner] = counts  # most recent last: the dict's order is who was seen last
            if sum(count for _, count in counts) >= self.limit:
                raise Throttled("too_many_pending", f"this caller has recorded {self.limit} uploads for the finish "
                                "step in the last 15 minutes; try again in a few minutes")
            if counts and counts[-1][0] == minute:
                counts[-1][1] += 1
            else:
                counts.append([minute, 1])
            while len(self._minutes) > self.callers:
                del self._minutes[next(iter(self._minutes))]


@dataclass(frozen=True)
class Expectation:
    """What an upload was signed under, kept in its marker and checked once it has finished."""

    key: str
    identity: str | None
    folder: str
    max_size: int | None
    content_types: tuple[str, ...]

    @classmethod
    def of(cls, caller: CallerRules, identity: str | None, key: str) -> Expectation:
        return cls(key, identity, caller.prefix, caller.rules.max_size, caller.rules.allowed_content_types)

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "identity": self.identity, "folder": self.folder, "max_size": self.max_size,
                "content_types": list(self.content_types)}

    @classmethod
    def from_json(cls, data: object) -> Expectation:
        """As :meth:`as_json` wrote it; ValueError when it is not."""
        if not isinstance(data, dict):
            raise ValueError("an expectation is a JSON object")
        types = typed(data.get("content_types") or [], list)
        return cls(typed(data.get("key"), str), typed(data.get("identity"), str, True), typed(data.get("folder"), str),
                   typed(data.get("max_size"), int, True), tuple(typed(kind, str) for kind in types))


@dataclass(frozen=True)
class Marker:
    """A pending marker, as kept in the store: ``check`` an upload (``expect`` and the fields after
    it), then ``notify`` the webhook of ``event`` (a marker :func:`queue_event` wrote starts there).
    :meth:`to_json` writes the same keys as every release before it (v1 and v2), so old markers
    are read and old replicas read ours: the check fields only when there is an ``expect``;
    ``recorded``, ``failures`` and ``event`` only once set."""

    id: str
    state: str
    v: int = 2
    attempts: int = 0
    lease_until: int = 0
    protocol: str | None = None
    expect: Expectation | None = None
    upload_id: str | None = None
    looks: int = 0
    deadline: int = 0
    recorded: int | None = None
    """The store's time the marker was written (its first claim reads it): an older object is not this upload."""
    failures: int | None = None
    event: Event | None = None

    def to_json(self) -> bytes:
        data: dict[str, Any] = {"v": self.v, "id": self.id, "state": self.state, "attempts": self.attempts,
                                "lease_until": self.lease_until}
        if self.expect is not None:
            data.update(protocol=self.protocol, expect=self.expect.as_json(), upload_id=self.upload_id,
                        looks=self.looks, deadline=self.deadline)
        if self.recorded is not None:
            data["recorded"] = self.recorded
        if self.failures is not None:
            data["failures"] = self.failures
        if self.event is not None:
            data["event"] = self.event.to_json()
        return json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, body: bytes) -> Marker:
        """A stored marker; ValueError for anything else (the sweep drops it, an event ignores it)."""
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("a marker is a JSON object")
        state = data.get("state")
        if state not in ("check", "notify"):
            raise ValueError("a marker's state is check or notify")
        expect = Expectation.from_json(data.get("expect")) if state == "check" or "expect" in data else None
        event = Event.from_json(data.get("event")) if state == "notify" or "event" in data else None
        return cls(
            typed(data.get("id"), str), state, typed(data.get("v", 1), int), typed(data.get("attempts", 0), int),
            typed(data.get("lease_until", 0), int), typed(data.get("protocol"), str, True), expect,
            typed(data.get("upload_id"), str, True), typed(data.get("looks", 0), int),
            typed(data.get("deadline", 0), int), typed(data.get("recorded"), int, True),
            typed(data.get("failures"), int, True), event,
        )


@dataclass(frozen=True)
class Verdict:
    """``verified`` (kept), ``rejected`` (deleted: ``code`` and ``message`` say why) or ``absent``."""

    outcome: str
    info: ObjectInfo | None = None
    code: str | None = None
    message: str | None = None


def check_object(finish: Finish, expected: Expectation, *, not_before: int | None = None) -> Verdict:
    """HEAD the finished object (signed by us) and hold it to the rules it was signed under:
    inside the caller's folder, not in the service's own, size and type allowed. What breaks
    them is deleted. The same for every protocol, the sweeper and the publish step. An object
    last written more than a second before ``not_before`` (the store's clock, whole seconds) is an
    earlier one: absent, as far as this upload goes, and never touched."""
    credentials = finish.credentials()
    info = head_object(credentials, finish.bucket, expected.key, timeout=finish.timeout)
    if info is None:
        return Verdict("absent")
    if not_before is not None and info.last_modified is not None and info.last_modified.timestamp() < not_before - 1:
        return Verdict("absent")  # a second of slack: whole seconds, maybe from two of the store's nodes
    # The kind's check_content (issue #26): read before the checks, so a store failure is not a refusal.
    head = first_bytes(credentials, finish.bucket, expected.key, info, timeout=finish.timeout) \
        if finish.check_content else None
    try:
        if not expected.key.startswith(expected.folder) or Rules(key_prefix=finish.key_prefix).is_reserved_key(
                expected.key):
            raise NotAllowed("key_not_allowed", "the object is outside the caller's folder")
        Rules(max_size=expected.max_size, allowed_content_types=expected.content_types).check_object(
            info.size, info.content_type)
        if head is not None:
            check_content(info.content_type, head)
    except Refused as exc:
        delete_object(credentials, finish.bucket, expected.key, timeout=finish.timeout)
        log.warning("deleted a finished upload that broke the rules: %s", exc.code)
        return Verdict("rejected", info, exc.code, exc.message)
    return Verdict("verified", info)


# --- recording what to finish (request threads) -----------------------------------------

def _marker_key(finish: Finish, due: int, marker_id: str) -> str:
    """A marker's name in the due order of its shard; the shard comes from its id, so a rescheduled
    marker stays in its shard (or moves into the current layout)."""
    shard = int(marker_id[:8], 16) % finish.shards if re.fullmatch(r"[0-9a-f]{8,}", marker_id) else 0
    return f"{finish.pending_prefix}{shard:02x}/{due:010d}-{marker_id}"


def keyed_marker_key(finish: Finish, key: str) -> str:
    """Where an upload's marker is kept when the store notifies (``SIGNER_EVENTS_QUEUE_URL``): named by
    the bucket and key, so the event for that key finds it with one GET."""
    return f"{finish.pending_prefix}{KEYED}{_key_hash(finish, key)}"


def _key_hash(finish: Finish, key: str) -> str:
    return hashlib.sha256(f"{finish.bucket.name}\n{key}".encode()).hexdigest()[:32]


def _write(finish: Finish, key: str, marker: Marker, *, fresh: bool = True) -> None:
    put_object(finish.credentials(), finish.bucket, key, marker.to_json(), if_none_match=fresh, timeout=finish.timeout)


def completion_unseen(protocol: object, upload_id: object) -> bool:
    """Whether the service never sees this upload end: Uppy's signRequest mode (the browser
    completes it) and Companion's POST forms. Fine Uploader calls ``/s3/success``, a Companion
    multipart complete is the service's own, and a ``/v1/presign`` caller publishes by itself."""
    return protocol == "sign-request" or (protocol == "companion" and upload_id is None)


def expect_upload(
    finish: Finish, expected: Expectation, *, protocol: str, signed_until: datetime, clock_skew: int,
    upload_id: str | None = None, bounded: bool = False, now: datetime | None = None, owner: str | None = None,
) -> str | None:
    """Record, before the signature leaves, that this upload must be finished: checked (a
    complete the client sends itself: ``upload_id``; ``bounded=False``) and reported (with a
    webhook). An upload whose signature binds size and type (``bounded``: a PUT URL, a POST
    policy, a complete the service sent itself) needs a marker only when there is a webhook
    to tell. Returns the marker's name (for :func:`forget_upload`), or None when nothing is recorded. A store that cannot take
    the marker refuses the request (fail closed). ``signed_until``: when the last signature
    for it expires; ``clock_skew``: how far a client's date may be ahead. ``owner`` is whom the
    marker counts against (:class:`PendingLedger`; default: the caller's identity): a caller
    at its cap is refused before any signature leaves."""
    if bounded and finish.webhook is None and not finish.check_content and not (
            finish.publish_unseen and completion_unseen(protocol, upload_id)):
        return None
    now = now or finish.now()
    finish.pending.admit(owner or expected.identity or expected.folder, now.timestamp())
    store_now = finish.clock.store_now(now)
    if finish.events:
        marker_id = _key_hash(finish, expected.key)
    elif upload_id is not None:  # every complete signed for one upload shares the event id
        marker_id = hashlib.sha256(f"{finish.bucket.name}\n{expected.key}\n{upload_id}".encode()).hexdigest()[:32]
    else:
        marker_id = uuid.uuid4().hex
    marker = Marker(marker_id, "check", protocol=protocol, expect=expected, upload_id=upload_id,
                    deadline=int(signed_until.timestamp()) + finish.clock.offset + clock_skew + SETTLE)
    if finish.events:  # one marker per key, the latest signature's: the event finds it by name
        written = keyed_marker_key(finish, expected.key)
        _write(finish, written, marker, fresh=False)
        return written
    written = _first_check_key(finish, marker_id, store_now)
    try:
        _write(finish, written, marker)
    except PreconditionFailed:
        pass  # the same complete, signed twice within a second: one marker is enough
    finish.alarm.ring(int(store_now.timestamp()) + CHECK_DELAYS[0])
    return written


def _first_check_key(finish: Finish, marker_id: str, now: datetime) -> str:
    """Where :func:`expect_upload` writes a marker recorded at ``now``: due at its first look."""
    return _marker_key(finish, int(now.timestamp()) + CHECK_DELAYS[0], marker_id)


def forget_upload(finish: Finish, marker: str) -> None:
    """Remove the marker :func:`expect_upload` wrote (its name, as it returned it): the upload did not
    happen after all (a complete the store refused onto an existing key), so the object there is not
    its to report. By name, not recomputed: the store clock's offset may have moved in between."""
    delete_object(finish.credentials(), finish.bucket, marker, timeout=finish.timeout)


def queue_event(
    finish: Finish, kind: str, expected: Expectation, info: ObjectInfo | None, *,
    code: str | None = None, message: str | None = None, extra: Mapping[str, Any] | None = None,
    now: datetime | None = None, event_id: str | None = None,
) -> str | None:
    """Queue one event (``upload.published`` from the publish step, say) for durable delivery
    by the sweepers; the caller's thread never talks to the receiver. Returns its id, or None
    without a webhook. ``event_id`` names what happened (a repeat of the same thing queues the
    same id, so a receiver that deduplicates by id sees it once); default: a new one."""
    if finish.webhook is None:
        return None
    now = finish.clock.store_now(now or finish.now())
    marker_id = event_id or uuid.uuid4().hex
    marker = Marker(marker_id, "notify", v=1,
                    event=make_event(marker_id, kind, expected, info, now, code=code, message=message, extra=extra))
    try:
        _write(finish, _marker_key(finish, int(now.timestamp()), marker_id), marker)
    except PreconditionFailed:
        pass  # the same event, queued twice within a second: one is enough
    finish.alarm.ring(int(now.timestamp()))
    return marker_id


def defer_delivery(finish: Finish, marker: Marker, event: Event, now: datetime) -> None:
    """An event the webhook did not take (signer/service/events.py): its marker goes into the due
    order as a notify marker, and the sweep retries it with backoff like any other."""
    marker = replace(marker, state="notify", attempts=1, event=event, lease_until=0)
    _write(finish, _marker_key(finish, int(now.timestamp()) + finish.interval, marker.id), marker, fresh=False)


def upload_event_id(finish: Finish, kind: str, expected: Expectation, info: ObjectInfo | None) -> str:
    """An event's id names the upload it reports (bucket, key, the object's ETag and date), not the
    marker that found it: two markers that find one upload (a presign retried after a store
    timeout whose first marker was written after all) tell it under one id, which a receiver that
    deduplicates by id sees once (issue #31)."""
    etag = info.etag.strip('"') if info and info.etag else ""
    moment = info.last_modified.isoformat() if info and info.last_modified else ""
    return hashlib.sha256(f"{kind}\n{finish.bucket.name}\n{expected.key}\n{etag}\n{moment}".encode()).hexdigest()[:32]


def make_event(
    event_id: str, kind: str, expected: Expectation, info: ObjectInfo | None, now: datetime, *,
    code: str | None = None, message: str | None = None, extra: Mapping[str, Any] | None = None,
) -> Event:
    """The webhook's event: what happened to which key of whose, with the object's facts."""
    return Event(event_id, kind, now.astimezone(UTC).strftime(TIME_FORMAT), expected.key, expected.identity,
                 info.size if info else None, info.content_type if info else None,
                 info.etag.strip('"') if info and info.etag else None, code, message if code is not None else None,
                 dict(extra or {}))


# --- sweeping (any worker of any replica) -------------------------------------------------

def _due_of(finish: Finish, key: str, modified: datetime | None) -> int:
    """When a marker is due, from its name (a keyed one: its write time + the horizon); a name we
    did not write is due at once, and then dropped."""
    match = _NAME.fullmatch(key[len(finish.pending_prefix):])
    if not match:
        return 0
    if match["hash"]:
        return int(modified.timestamp()) + finish.horizon if modified else 0
    return int(match["due"])


class Due(NamedTuple):
    """What a listing found: due marker keys (earliest first), the store's time, and when the earliest
    marker seen that is not due yet will be (store seconds; None: none seen)."""

    keys: list[str]
    clock: datetime
    next_due: int | None
    oldest: int | None = None  # when the earliest due marker was due (for the backlog gauge)


def due_markers(finish: Finish, now: datetime | None, want: int, page_size: int = 1000) -> Due:
    """Up to ``want`` due marker keys, earliest first. One LIST of the whole pending folder when it
    holds at most a page (the usual case, and an idle replica's only request); past a page, each
    shard on its own, in due order, each listing stopped at its first marker not due, so no more is
    read than needed (keyed markers, in no time order, are read whole)."""
    lister = _Lister(finish, now)
    page = lister.page(finish.pending_prefix, None, page_size)
    if page.next_token is None:
        return lister.result([(key, page.modified.get(key)) for key in page.keys], want)
    found: list[tuple[str, datetime | None]] = []
    sources: list[str] = []
    older: list[tuple[str, datetime | None]] = []
    token: str | None = None
    while True:  # the top level: older-layout markers (in due order) and the shard folders
        top = lister.page(finish.pending_prefix, token, page_size, delimiter="/")
        sources += top.prefixes
        stop = lister.take(top, older, want)
        token = top.next_token
        if stop or not token:
            break
    found += older
    for source in sources:
        taken: list[tuple[str, datetime | None]] = []
        token = None
        while True:
            page = lister.page(source, token, page_size)
            stop = lister.take(page, taken, want, ordered=not source.endswith(KEYED))
            token = page.next_token
            if stop or not token:
                break
        found += taken
    return lister.result(found, want)


class _Lister:
    """The listings of one :func:`due_markers`: the store's clock read from their answers, the due
    markers and the earliest one not due yet."""

    def __init__(self, finish: Finish, now: datetime | None) -> None:
        self.finish = finish
        self.clock = now
        self.later: int | None = None

    def page(self, prefix: str, token: str | None, size: int, delimiter: str | None = None) -> Listing:
        finish = self.finish
        asked = finish.now()
        page = list_keys(finish.credentials(), finish.bucket, prefix, token=token, max_keys=size,
                         timeout=finish.timeout, delimiter=delimiter)
        answered = finish.now()
        if page.time is not None:  # the store dated its answer between our asking and our reading it
            finish.clock.observe(page.time, asked + (answered - asked) / 2)
        self.clock = self.clock or page.time or finish.clock.store_now(asked)
        return page

    def take(self, page: Listing, found: list[tuple[str, datetime | None]], want: int, *, ordered: bool = True) -> bool:
        """Add the page's due markers to ``found`` (one source's, at most ``want``); True when an
        ordered listing need not go on."""
        assert self.clock is not None
        for key in page.keys:
            due = _due_of(self.finish, key, page.modified.get(key))
            if due > self.clock.timestamp():
                self.later = due if self.later is None else min(self.later, due)
                if ordered:
                    return True
            elif len(found) < want:
                found.append((key, page.modified.get(key)))
            elif ordered:
                return True
        return False

    def result(self, found: list[tuple[str, datetime | None]], want: int) -> Due:
        assert self.clock is not None
        moment = self.clock.timestamp()
        due, later = [], self.later
        for key, modified in found:
            when = _due_of(self.finish, key, modified)
            if when <= moment:
                due.append((when, key))
            else:
                later = when if later is None else min(later, when)
        due.sort()
        return Due([key for _, key in due[:want]], self.clock, later, due[0][0] if due else None)


@dataclass(frozen=True)
class Pass:
    """One sweep's outcome, for the sweeper's schedule: how many markers it claimed, whether it took
    as many as it may (more may be due: go on at once), and the earliest due time it knows of."""

    claimed: int
    full: bool
    next_due: int | None


def sweep(finish: Finish, *, now: datetime | None = None, limit: int = MAX_PER_SWEEP, page_size: int | None = None,
          rng: random.Random | None = None, stop: threading.Event | None = None) -> int:
    """One pass (:func:`sweep_pass`), one marker at a time: how many were claimed."""
    return sweep_pass(finish, now=now, limit=limit, page_size=page_size, rng=rng, stop=stop).claimed


def sweep_pass(finish: Finish, *, now: datetime | None = None, limit: int = MAX_PER_SWEEP,
               page_size: int | None = None, rng: random.Random | None = None, stop: threading.Event | None = None,
               pool: Executor | None = None) -> Pass:
    """Work on at most ``limit`` due markers, picked at random among the earliest (so replicas
    sweeping at once mostly take different ones), until ``stop`` is set; with ``pool``, several at
    once (the store's and the webhook's latency, not this process, bound one sweeper)."""
    want = limit * 4
    found = due_markers(finish, now, want, page_size or min(1000, want + 1))
    keys, clock = found.keys, found.clock
    metrics.finish_backlog(len(keys), clock.timestamp() - found.oldest if found.oldest is not None else 0.0)
    (rng or random).shuffle(keys)
    started = time.monotonic()
    taken = keys[:limit]

    def one(key: str) -> tuple[int, int | None]:
        if stop is not None and stop.is_set():
            return 0, None
        moment = clock + timedelta(seconds=time.monotonic() - started)
        try:
            return _work(finish, key, moment)
        except Refused as exc:  # the store failed for this one: the lease expires and it is retried
            log.warning("finish step: %s", exc.message)
        except Exception:  # a bug on one marker must not leave the others after it waiting
            log.exception("finish step: a marker failed")
        return 0, None

    outcomes = list(pool.map(one, taken)) if pool is not None else [one(key) for key in taken]
    dues = [due for _, due in outcomes if due is not None]
    if found.next_due is not None:
        dues.append(found.next_due)
    return Pass(sum(claimed for claimed, _ in outcomes), len(taken) >= limit, min(dues) if dues else None)


def _work(finish: Finish, key: str, now: datetime) -> tuple[int, int | None]:
    """Claim one marker (conditional write of a lease) and do its next step: (1, when it is due
    again, or None when done), or (0, None) when another sweeper holds it."""
    credentials = finish.credentials()
    found = get_object(credentials, finish.bucket, key, timeout=finish.timeout)
    if found is None:
        return 0, None
    try:
        if not _NAME.fullmatch(key[len(finish.pending_prefix):]):
            raise ValueError("not a marker's name")
        marker = Marker.from_json(found.body)
    except ValueError:
        log.error("finish step: dropped an unreadable marker")
        delete_object(credentials, finish.bucket, key, timeout=finish.timeout)
        return 0, None
    if marker.lease_until > now.timestamp():
        return 0, None
    if (marker.v == 2 and marker.recorded is None and not marker.looks and not marker.failures
            and found.last_modified is not None):
        # Its first claim, never touched since its writer left it (this release writes v2; an older
        # replica rescheduling it counts a look): the store's Last-Modified is when the upload was
        # recorded, by the store's clock, the one its objects' Last-Modified use too.
        marker = replace(marker, recorded=int(found.last_modified.timestamp()))
    marker = replace(marker, lease_until=int(now.timestamp()) + LEASE)
    try:
        put_object(credentials, finish.bucket, key, marker.to_json(), if_match=found.etag or "*",
                   timeout=finish.timeout)
    except PreconditionFailed:
        return 0, None  # another sweeper claimed it first
    try:
        marker, due = _advance(finish, marker, now)
    except ValueError:
        log.error("finish step: dropped a marker it cannot read")
        due = None
    except Refused as exc:  # the store (or the object's key) failed: look again later, like any look
        if marker.state == "check":
            metrics.finish_checked("failed")
            marker, _ = _next_look(marker, int(now.timestamp()))  # counted, as _advance had before the failure
        marker, due = _after_failure(marker, int(now.timestamp()), exc)
    marker = replace(marker, lease_until=0)
    if due is not None:
        _write(finish, _marker_key(finish, due, marker.id), marker, fresh=False)
    if due is None or _marker_key(finish, due, marker.id) != key:
        delete_object(finish.credentials(), finish.bucket, key, timeout=finish.timeout)
    return 1, due


def _advance(finish: Finish, marker: Marker, now: datetime) -> tuple[Marker, int | None]:
    """Do the marker's next step: the marker as it is then, and the due time of the step after, or
    None when it is done."""
    moment = int(now.timestamp())
    if marker.state == "check":
        expected = marker.expect
        if expected is None:
            raise ValueError("a check marker without its expectation")  # Marker.from_json reads none such
        looked, later = _next_look(marker, moment)
        if marker.upload_id:
            try:
                list_parts(finish.credentials(), finish.bucket, expected.key, marker.upload_id,
                           timeout=finish.timeout)
                return looked, _looked(later)  # still open: not completed yet
            except UploadNotFound:
                pass
        # One request (a PUT, a POST form) makes its object whole: an object there written before the
        # upload was recorded is an earlier one, not this upload's (a PUT URL never used). A multipart
        # object's Last-Modified is its upload's start on S3, so there the upload id decides.
        recorded = marker.recorded if not marker.upload_id else None
        verdict = check_object(finish, expected, not_before=recorded)
        if verdict.outcome == "absent":
            return looked, _looked(later)  # not uploaded yet; None once no signature can still make it
        metrics.finish_checked(verdict.outcome)
        if (verdict.outcome == "verified" and finish.publish_unseen is not None
                and completion_unseen(marker.protocol, marker.upload_id)):
            finish.publish_unseen(expected)  # idempotent: a retry after a failure copies nothing twice
        if finish.webhook is None:
            return looked, None
        kind = "upload.verified" if verdict.outcome == "verified" else "upload.rejected"
        marker = replace(looked, state="notify", attempts=0, event=make_event(
            upload_event_id(finish, kind, expected, verdict.info), kind, expected, verdict.info, now,
            code=verdict.code, message=verdict.message))
    event = marker.event
    if event is None:
        raise ValueError("a notify marker without its event")  # Marker.from_json reads none such
    if finish.webhook is None:
        log.error("finish step: an event is waiting but SIGNER_WEBHOOK_URL is not set; dropped")
        return marker, None
    if deliver(finish.webhook, event, now=now):
        return marker, None
    marker = replace(marker, attempts=marker.attempts + 1)
    if (now - event.happened()).total_seconds() > GIVE_UP:
        log.error("finish step: gave up delivering %s %s after %d attempts", event.type, marker.id, marker.attempts)
        metrics.webhook_dropped(event.id)
        return marker, None
    return marker, moment + min(finish.interval * 2 ** (marker.attempts - 1), BACKOFF_CAP)


def _looked(later: int | None) -> int | None:
    """An upload not there (or not completed) yet: None once no signature can make it any more."""
    if later is None:
        metrics.finish_checked("gone")
    return later


def _after_failure(marker: Marker, moment: int, exc: Refused) -> tuple[Marker, int | None]:
    """A marker whose store call failed (any status, a timeout) is rescheduled with backoff, so it
    moves behind the others and can never hold the front of the queue; three days past its
    deadline (or its event's time) it is dropped, with an error logged."""
    marker = replace(marker, failures=(marker.failures or 0) + 1)
    # The signature's deadline only ends the wait for an upload that is absent; a look that failed
    # has not seen the object yet, so it goes on for as long as an event would.
    deadline = (marker.deadline or moment) + GIVE_UP
    if marker.state == "notify" and marker.event is not None:
        deadline = int(marker.event.happened().timestamp()) + GIVE_UP
    if moment >= deadline:
        log.error("finish step: dropped marker %s after %d failed looks: %s", marker.id, marker.failures, exc.code)
        return marker, None
    log.warning("finish step: marker %s failed (%s), look %d; again later", marker.id, exc.code, marker.failures)
    return marker, min(moment + min(1 << min(marker.failures or 0, 20), FAILURE_BACKOFF_CAP), deadline)


def _next_look(marker: Marker, moment: int) -> tuple[Marker, int | None]:
    """The marker with one more look counted, and when to look again at an upload not finished yet
    (None past its deadline)."""
    looks = marker.looks
    delay = CHECK_DELAYS[looks + 1] if looks + 1 < len(CHECK_DELAYS) else LATER
    marker = replace(marker, looks=looks + 1)
    if moment >= marker.deadline:
        return marker, None
    return marker, min(moment + delay, marker.deadline)
