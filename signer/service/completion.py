"""The checks around completing a multipart upload, shared by the Companion protocol, Uppy's
``signRequest`` mode and Fine Uploader's chunked uploads.

* :func:`guard_parts` runs *before* a complete: it lists the upload's parts with our own
  signed request, sums the parts being completed and, over ``SIGNER_MAX_SIZE``, aborts the
  upload and refuses, so the object never exists.
* :func:`schedule_object_check` runs *after* we signed a complete that the client sends
  itself (signRequest mode, Fine Uploader): a few seconds later, in-process, it HEADs the
  object (retrying a bounded number of times) and deletes it when it breaks the rules,
  even when the client never calls ``/s3/success``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from ..credentials import Credentials
from ..s3 import Bucket
from .errors import Refused
from .rules import CallerRules
from .storage import Part, abort_multipart_upload, delete_object, head_object, list_parts

log = logging.getLogger("signer")

CHECK_DELAYS = (2.0, 5.0, 15.0, 40.0)
"""Seconds before each HEAD of a completed object: the client completes after we sign."""
MAX_PENDING_CHECKS = 256
"""Bound on scheduled checks in one process; beyond it we refuse to sign a complete (fail closed)."""


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


def _abort(credentials: Credentials, bucket: Bucket, key: str, upload_id: str, timeout: float) -> None:
    abort_multipart_upload(credentials, bucket, key, upload_id, timeout=timeout)
    log.info("aborted an over-size multipart upload")


_lock = threading.Lock()
_pending = [0]  # scheduled checks not yet finished, in this process


def schedule_object_check(
    credentials: Credentials, bucket: Bucket, caller: CallerRules, key: str, *,
    delays: Sequence[float] = CHECK_DELAYS, timeout: float = 10.0,
    done: Callable[[str], None] | None = None,
) -> None:
    """HEAD ``key`` after each delay until it exists, then delete it if its size or type
    breaks the rules. ``done`` (for tests) gets ``"ok"``, ``"deleted"``, ``"absent"`` or ``"error"``."""
    with _lock:
        if _pending[0] >= MAX_PENDING_CHECKS:
            raise Refused("storage_error", "too many completed uploads are waiting for their check; try again shortly")
        _pending[0] += 1

    def finish(outcome: str) -> None:
        with _lock:
            _pending[0] -= 1
        if done is not None:
            done(outcome)

    def attempt(index: int) -> None:
        try:
            info = head_object(credentials, bucket, key, timeout=timeout)
        except Refused:
            info, outcome = None, "error"
        else:
            outcome = "absent"
        if info is None:
            if index + 1 < len(delays):
                _timer(delays[index + 1], attempt, index + 1)
            else:
                finish(outcome)
            return
        try:
            caller.rules.check_size(info.size, "uploaded object size")
            caller.rules.check_content_type(info.content_type, required=False)
        except Refused as exc:
            try:
                delete_object(credentials, bucket, key, timeout=timeout)
                log.warning("deleted a completed upload that broke the rules: %s", exc.code)
                finish("deleted")
            except Refused:
                log.error("could not delete a completed upload that broke the rules")
                finish("error")
            return
        finish("ok")

    _timer(delays[0], attempt, 0)


def _timer(delay: float, function: Callable[[int], None], index: int) -> None:
    timer = threading.Timer(delay, function, (index,))
    timer.daemon = True
    timer.start()
