"""The check *before* a multipart complete, shared by the Companion protocol, Uppy's
``signRequest`` mode and Fine Uploader's chunked uploads: :func:`guard_parts` lists the
upload's parts with our own signed request, sums the parts being completed and, over
``SIGNER_MAX_SIZE``, aborts the upload and refuses, so the object never exists. What happens
*after* (the finished object checked, the app told) is signer/service/finish.py.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..credentials import Credentials
from ..s3 import Bucket
from .errors import Conflict, Malformed, NotAllowed, Refused
from .rules import CallerRules
from .storage import Part, abort_multipart_upload, head_object, list_parts

log = logging.getLogger("signer")


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
                raise Malformed("invalid_input", f"part {number} with this ETag was not uploaded")
            chosen.append(part)
        if len({part.number for part in chosen}) != len(chosen):
            raise Malformed("invalid_input", "a part number is listed twice")
    if len(chosen) > caller.max_part_number:
        _abort(credentials, bucket, key, upload_id, timeout)
        raise NotAllowed("too_large", f"{len(chosen)} parts is more than the size limit allows: the upload was aborted")
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
        raise Conflict("object_exists", "an object already exists at this key and SIGNER_OVERWRITE=deny")


def _abort(credentials: Credentials, bucket: Bucket, key: str, upload_id: str, timeout: float) -> None:
    abort_multipart_upload(credentials, bucket, key, upload_id, timeout=timeout)
    log.info("aborted an over-size multipart upload")
