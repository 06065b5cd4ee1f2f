"""The checks around completing a multipart upload, shared by the Companion protocol, Uppy's
``signRequest`` mode and Fine Uploader's chunked uploads.

* :func:`guard_parts` runs *before* a complete: it lists the upload's parts with our own
  signed request, sums the parts being completed and, over ``SIGNER_MAX_SIZE``, aborts the
  upload and refuses, so the object never exists.
* :func:`schedule_object_check` runs *after* we signed a complete that the client sends
  itself (signRequest mode, Fine Uploader): in-process, at growing intervals, it looks whether
  the upload has ended, then HEADs the object and deletes it when it breaks the rules, even
  when the client never calls ``/s3/success``; it stops when no signature we gave for the
  complete can still be valid.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence

from ..credentials import Credentials
from ..s3 import Bucket
from .errors import Refused
from .rules import CallerRules
from .storage import Part, UploadNotFound, abort_multipart_upload, delete_object, head_object, list_parts

log = logging.getLogger("signer")

CHECK_DELAYS = (2.0, 5.0, 15.0, 40.0)
"""The first waits between checks (2, 7, 22, 62 s after signing): the client completes right away."""
MAX_PENDING_CHECKS = 4096
"""Bound on scheduled checks in one process; beyond it we refuse to sign a complete (fail closed)."""
MAX_CHECKS_PER_CALLER = 64
"""Bound per caller (key prefix), so one caller cannot fill the process-wide bound for everyone."""


def _etag(value: str) -> str:
    return value.strip().strip('"')


def guard_parts(
    credentials: Credentials, bucket: Bucket, caller: CallerRules, key: str, upload_id: str,
    wanted: Sequence[tuple[int, str]] | None = None, *, timeout: float = 10.0,
) -> list[Part]:
    """The listed parts being completed (``wanted`` ``[(number, etag)]``, or all parts), checked
    against the size limit; over it the upload is aborted and :class:`Refused` raised."""
    listed = list_parts(credentials, bucket, key, upload_id, timeout=timeout)
    if wanted is None:
        chosen = listed
    else:
        by_number = {part.number: part for part in listed}
        chosen = []
        for number, etag in wanted:
            part = by_number.get(number)
            if part is None or _etag(part.etag) != _etag(etag):
                raise Refused("invalid_input", f"part {number} with this ETag was not uploaded")
            chosen.append(part)
        if len({part.number for part in chosen}) != len(chosen):
            raise Refused("invalid_input", "a part number is listed twice")
    if len(chosen) > caller.max_part_number:
        _abort(credentials, bucket, key, upload_id, timeout)
        raise Refused("too_large", f"{len(chosen)} parts is more than the size limit allows: the upload was aborted")
    try:
        caller.check_completed_size([part.size for part in chosen])
    except Refused:
        _abort(credentials, bucket, key, upload_id, timeout)
        raise
    return chosen


def refuse_existing(credentials: Credentials, bucket: Bucket, key: str, *, timeout: float = 10.0) -> None:
    """Under SIGNER_OVERWRITE=deny, where the client sends a complete that cannot carry
    ``If-None-Match`` (Fine Uploader 5.16.2): an object at ``key`` is refused (409) before
    signing. The window left is an object created between this HEAD and the complete."""
    if head_object(credentials, bucket, key, timeout=timeout) is not None:
        raise Refused("object_exists", "an object already exists at this key and SIGNER_OVERWRITE=deny")


def _abort(credentials: Credentials, bucket: Bucket, key: str, upload_id: str, timeout: float) -> None:
    abort_multipart_upload(credentials, bucket, key, upload_id, timeout=timeout)
    log.info("aborted an over-size multipart upload")


_lock = threading.Lock()
_pending = [0]  # scheduled checks not yet finished, in this process
_watched: set[tuple[str, str]] = set()  # (key, upload id) under watch: one watch each
_per_caller: dict[str, int] = {}  # watches per caller prefix


def check_delays(clock_skew: int) -> tuple[float, ...]:
    """Seconds between the checks: soon (the client completes right after we sign), then
    sparser, until no complete we signed can still be valid: a Fine Uploader string may carry a
    date up to ``clock_skew`` ahead and S3 accepts it 15 minutes either side; a signRequest URL
    lives at most 300 seconds."""
    horizon = clock_skew + 900 + 60
    delays, elapsed = [], 0.0
    for delay in (*CHECK_DELAYS, 240.0):
        delays.append(delay)
        elapsed += delay
    while elapsed < horizon:
        delays.append(600.0)
        elapsed += 600.0
    return tuple(delays)


def schedule_object_check(
    credentials: Callable[[], Credentials], bucket: Bucket, caller: CallerRules, key: str, upload_id: str, *,
    delays: Sequence[float] | None = None, timeout: float = 10.0,
    done: Callable[[str], None] | None = None,
) -> None:
    """Watch the upload until it is gone (completed or aborted), then HEAD ``key`` and delete
    the object when its size or type breaks the rules. Waiting for the *upload* to end, not
    for the object to appear, means an object already at that key cannot end the watch early.
    ``credentials`` is read at each attempt: the watch outlives temporary credentials.
    One watch per (key, upload id): signing the same complete again adds none. ``done``
    (for tests) gets ``"ok"``, ``"deleted"``, ``"absent"``, ``"open"`` (still open when every
    signature we made for it has expired), ``"error"`` or ``"watched"`` (already watched)."""
    schedule = tuple(delays) if delays is not None else check_delays(caller.rules.clock_skew)
    watch, owner = (key, upload_id), caller.prefix
    with _lock:
        if watch in _watched:
            if done is not None:
                done("watched")
            return
        if _pending[0] >= MAX_PENDING_CHECKS or _per_caller.get(owner, 0) >= MAX_CHECKS_PER_CALLER:
            raise Refused("storage_error", "too many completed uploads are waiting for their check; try again shortly")
        _pending[0] += 1
        _per_caller[owner] = _per_caller.get(owner, 0) + 1
        _watched.add(watch)
    finished = threading.Event()

    def finish(outcome: str) -> None:
        if finished.is_set():
            return
        finished.set()
        with _lock:
            _pending[0] -= 1
            _watched.discard(watch)
            _per_caller[owner] -= 1
            if not _per_caller[owner]:
                del _per_caller[owner]
        if done is not None:
            done(outcome)

    def again(index: int, outcome: str) -> None:
        if index + 1 < len(schedule):
            _timer(schedule[index + 1], attempt, index + 1)
        else:
            finish(outcome)

    def attempt(index: int) -> None:
        try:
            look(index)
        except Exception:  # a bug must not leak the watch's slot, nor stop the watching silently
            log.exception("upload check failed")
            finish("error")

    def look(index: int) -> None:
        try:
            list_parts(credentials(), bucket, key, upload_id, timeout=timeout)
            again(index, "open")  # not completed yet
            return
        except UploadNotFound:
            pass
        except Refused:
            again(index, "error")
            return
        try:
            info = head_object(credentials(), bucket, key, timeout=timeout)
        except Refused:
            again(index, "error")
            return
        if info is None:
            finish("absent")  # aborted, or completed and deleted since
            return
        try:
            caller.rules.check_object(info.size, info.content_type)
        except Refused as exc:
            try:
                delete_object(credentials(), bucket, key, timeout=timeout)
                log.warning("deleted a completed upload that broke the rules: %s", exc.code)
                finish("deleted")
            except Refused:
                log.error("could not delete a completed upload that broke the rules")
                finish("error")
            return
        finish("ok")

    _timer(schedule[0], attempt, 0)


class _Scheduler:
    """One daemon thread running due calls in time order: thousands of pending checks cost a
    heap entry each, not a thread each. Started on first use (after gunicorn forks)."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, Callable[[int], None], int]] = []
        self._wake = threading.Condition()
        self._count = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, function: Callable[[int], None], index: int) -> None:
        with self._wake:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._count), function, index))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="signer-upload-checks", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    self._wake.wait(self._queue[0][0] - time.monotonic() if self._queue else None)
                _, _, function, index = heapq.heappop(self._queue)
            try:
                function(index)
            except Exception:  # a bug in one check must not stop the others
                log.exception("upload check failed")


_scheduler = _Scheduler()


def _timer(delay: float, function: Callable[[int], None], index: int) -> None:
    _scheduler.call_later(delay, function, index)
