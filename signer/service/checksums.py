"""Checksums a caller declares for its upload, checked before they are signed.

S3 (and SeaweedFS) compare an ``x-amz-checksum-<alg>`` header, or POST form field, with the
bytes received and refuse others (``BadDigest``). Signed into a URL or policy, the checksum is a
rule the uploader cannot drop: a leaked URL cannot store other bytes, and a corrupted transfer
cannot land. The value is S3's spelling: the digest in base64, strict (alphabet, padding, the
exact length of the digest), so a malformed value is a 400 here, not a refusal by the store
after the upload was sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping

from .errors import Malformed

DIGEST_BYTES = {"sha256": 32, "crc32": 4, "crc32c": 4, "crc64nvme": 8}
"""Each algorithm S3 takes for a checksum we sign, and the size of its digest."""
CHECKSUM_FIELDS = tuple(f"checksum_{algorithm}" for algorithm in DIGEST_BYTES)
"""The request fields that carry one (``checksum_sha256``, ``checksum_crc32`` …)."""
ALGORITHM_NAMES = {algorithm.upper(): algorithm for algorithm in DIGEST_BYTES}
"""``x-amz-checksum-algorithm`` values (``SHA256``, ``CRC32`` …) for a multipart upload."""
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def base64_length(size: int) -> int:
    """Characters of padded base64 for ``size`` bytes: 32 -> 44, 4 -> 8, 8 -> 12."""
    return 4 * ((size + 2) // 3)


def check_checksum(field: str, value: object, name: str | None = None) -> tuple[str, str]:
    """(``x-amz-checksum-<alg>``, value) for one declared checksum, or :class:`Refused` naming
    the field: a string of exactly the digest's base64 length, in the standard alphabet, padded,
    decoding to the digest's size and written the one canonical way (no stray low bits)."""
    algorithm = field.removeprefix("checksum_")
    size, label = DIGEST_BYTES[algorithm], name or field
    expected = base64_length(size)
    if not isinstance(value, str) or len(value) != expected or not _BASE64.fullmatch(value):
        raise Malformed("invalid_checksum", f"{label} must be the base64 of the {size}-byte {algorithm.upper()} digest: "
                      f"{expected} characters of A-Z, a-z, 0-9, '+', '/', padded with '='")
    try:
        digest = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise Malformed("invalid_checksum", f"{label} is not valid base64") from None
    if len(digest) != size or base64.b64encode(digest).decode("ascii") != value:
        raise Malformed("invalid_checksum", f"{label} is not the canonical base64 of a {size}-byte digest")
    return f"x-amz-checksum-{algorithm}", value


def declared_checksum(values: Mapping[str, object], names: Mapping[str, str] | None = None) -> dict[str, str]:
    """The one checksum header among ``values`` (fields of :data:`CHECKSUM_FIELDS` that are not
    None), checked; ``{}`` when none is given. S3 takes one checksum per request."""
    given = {field: value for field, value in values.items() if field in CHECKSUM_FIELDS and value is not None}
    if not given:
        return {}
    label = {field: (names or {}).get(field, field) for field in given}
    if len(given) > 1:
        raise Malformed("invalid_checksum", f"give one checksum, not {' and '.join(label.values())}")
    return dict(check_checksum(field, value, label[field]) for field, value in given.items())


def check_algorithm(value: object, name: str = "checksum_algorithm") -> str:
    """An ``x-amz-checksum-algorithm`` for CreateMultipartUpload: SHA256, CRC32, CRC32C or CRC64NVME."""
    if not isinstance(value, str) or value not in ALGORITHM_NAMES:
        raise Malformed("invalid_checksum", f"{name} must be one of {', '.join(ALGORITHM_NAMES)}")
    return value
