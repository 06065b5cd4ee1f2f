"""``check_content``: do the first bytes of a finished upload match its declared type? (issue #26)

The finish step reads the object's first :data:`SNIFF_BYTES` with a ranged GET it signs itself
(``If-Match`` the ETag it checked, so the bytes are the object's it held to the rules) and asks
puremagic which types they can be. A mismatch (HTML declared ``image/png``) is a refusal
``content_mismatch`` naming both; the finish step deletes the object and reports ``upload.rejected``.

Why puremagic: pure Python (no libmagic to install in the image, unlike python-magic), a table of
several hundred signatures kept up to date (filetype's last release is from 2022), and it answers
from a buffer, which is all we read. A type it has no signature for (``text/plain``) cannot be
confirmed and is refused: ``check_content`` is for kinds whose types have one (images, PDF, video,
archives), as docs/kinds.md says.
"""

from __future__ import annotations

from ..credentials import Credentials
from ..s3 import Bucket
from .errors import NotAllowed
from .storage import ObjectInfo, StorageError, signed_request

SNIFF_BYTES = 2048
ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "application/x-pdf": "application/pdf"}


def first_bytes(credentials: Credentials, bucket: Bucket, key: str, info: ObjectInfo, *, timeout: float) -> bytes:
    """The object's first bytes, of exactly the version HEAD saw (``If-Match``)."""
    headers = {"Range": f"bytes=0-{SNIFF_BYTES - 1}"}
    if info.etag:
        headers["If-Match"] = info.etag
    answer = signed_request(credentials, bucket, "GET", bucket.object_url(key), headers=headers, timeout=timeout)
    if answer.status not in (200, 206):
        raise StorageError(f"S3 ranged GET answered {answer.status}")
    return answer.body[:SNIFF_BYTES]


def sniffed_types(head: bytes) -> list[str]:
    """Every type the bytes can be, most likely first; empty when nothing matches. (Imported here:
    the CLI, which imports this module's callers, runs with the library alone.)"""
    import puremagic

    try:
        matches = puremagic.magic_string(head)
    except puremagic.PureError:
        return []
    seen: list[str] = []
    for match in matches:
        mime = ALIASES.get(match.mime_type, match.mime_type)
        if mime and mime not in seen:
            seen.append(mime)
    return seen


def check_content(declared: str | None, head: bytes) -> None:
    """Refuse (``content_mismatch``) bytes that are not the declared type."""
    media = (declared or "").split(";", 1)[0].strip().lower()
    media = ALIASES.get(media, media)
    found = sniffed_types(head)
    if media and media in found:
        return
    what = f"look like {found[0]}" if found else "match no known type"
    raise NotAllowed("content_mismatch", f"the uploaded bytes {what}, not the declared {media or 'type (none)'}")
