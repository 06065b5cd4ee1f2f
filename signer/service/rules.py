"""What the service may sign, and the one request plan every entry point uses.

:class:`Rules` holds the configured limits and the single checks. ``rules.for_caller(identity)``
binds a caller once; its :meth:`CallerRules.plan_presign` and :meth:`CallerRules.plan_post_policy`
make every decision about *what* to sign (method, key or generated key, headers to sign,
Content-Length under a size limit, expiry) for the HTTP API, the protocol adapters and the
CLI alike. A plan is a plain value; :meth:`PresignPlan.sign` hands it to the library.
Failures raise :class:`Refused` with a code and a message naming the caller's own field
(``content_length`` for JSON, ``--content-length`` for the CLI).

A signature never outlives its credentials: given ``valid_until`` (when temporary
credentials expire), the plan *caps* ``expires_in`` at the seconds left rather than refusing,
so a caller asking for the default or the maximum still gets a working URL; the answer's
``expires_at`` says how long it really lives.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple
from urllib.parse import quote

from ..credentials import Credentials
from ..errors import InvalidTime
from ..post_policy import PostForm, presign_post
from ..presign import PresignedURL, presign_url
from ..s3 import MAX_KEY_BYTES, Bucket
from ..sigv4 import CONTROL_CHARACTERS, DIGITS, MAX_EXPIRES, amz_date, parse_amz_date
from .checksums import CHECKSUM_FIELDS, check_algorithm, declared_checksum
from .errors import Malformed, NotAllowed, Unavailable

MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest part (every part but the last)."""
MAX_PARTS = 10000
UPLOAD_ID = re.compile(r"[A-Za-z0-9._~+/=-]{1,1024}")
IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
ANONYMOUS = "anonymous"  # reserved: no token or gateway user may take this name
GATEWAY_FOLDER = "user"  # gateway users live under <prefix>user/<id>/
RESERVED_NAMES = frozenset({ANONYMOUS, GATEWAY_FOLDER})
SERVICE_FOLDER = ".signer/"
"""``<SIGNER_KEY_PREFIX>.signer/``: the service's own objects (the finish step's pending markers).
No identity can start with '.', so only a caller without a folder could reach it: every key
and key prefix is checked against it (in any letter case)."""


def is_reserved(name: str) -> bool:
    """``anonymous`` and ``user`` in any letter case (stores on case-insensitive disks exist)."""
    return name.lower() in RESERVED_NAMES
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
SCRIPTABLE_TYPES = frozenset({"image/svg+xml"})
"""Admitted by ``*/*`` or by name, never by a ``type/*`` wildcard."""

FieldNames = Mapping[str, str]
PLAN_FIELDS = ("method", "key", "filename", "content_type", "content_length", "max_size", "expires_in", *CHECKSUM_FIELDS)
JSON_FIELDS: FieldNames = {name: name for name in PLAN_FIELDS}
SIGN_REQUEST_FIELDS: FieldNames = {**JSON_FIELDS, "content_type": "contentType", "part_number": "partNumber"}
"""Uppy's signRequest names (``contentType``, ``partNumber``)."""
"""How the JSON API names each field in messages; the CLI passes its flags instead."""


@dataclass(frozen=True)
class Rules:
    """The configured limits. ``allowed_content_types`` empty means any type."""

    key_prefix: str = "uploads/"
    max_size: int | None = None
    allowed_content_types: tuple[str, ...] = ()
    max_expires: int = 3600
    allowed_methods: frozenset[str] = field(default_factory=lambda: frozenset({"GET", "PUT", "HEAD"}))
    allowed_acls: frozenset[str] = field(default_factory=lambda: frozenset({"private"}))
    clock_skew: int = 900
    require_checksum: bool = False
    """SIGNER_REQUIRE_CHECKSUM: every PUT signature must sign a declared checksum."""
    overwrite: str = "allow"
    """SIGNER_OVERWRITE: ``deny`` signs ``If-None-Match: *`` into uploads (the configuration's
    default); ``allow`` lets an upload replace an existing object. (``allow`` here, so a bare
    ``Rules()`` in a test signs only what it is given.)"""

    content_disposition: str = "inline"
    """The kind's ``content_disposition`` (signer/service/kinds.py): ``attachment`` signs
    ``response-content-disposition`` into GET URLs, so a stored file downloads rather than renders
    on the bucket's origin."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_expires <= MAX_EXPIRES:
            raise ValueError(f"max_expires must be between 1 and {MAX_EXPIRES}")
        if self.overwrite not in ("allow", "deny"):
            raise ValueError("overwrite must be 'allow' or 'deny'")
        if self.content_disposition not in ("inline", "attachment"):
            raise ValueError("content_disposition must be 'inline' or 'attachment'")

    @property
    def deny_overwrite(self) -> bool:
        return self.overwrite == "deny"

    def no_overwrite_headers(self) -> dict[str, str]:
        """What an upload signs so that the store refuses it onto an existing key."""
        return {"If-None-Match": "*"} if self.deny_overwrite else {}

    def check_declared_checksum(self, values: Mapping[str, object], names: FieldNames) -> dict[str, str]:
        """The one ``x-amz-checksum-<alg>`` header to sign, checked; required when
        SIGNER_REQUIRE_CHECKSUM is on."""
        header = declared_checksum(values, names)
        if not header and self.require_checksum:
            raise Malformed("checksum_required", f"a checksum is required (SIGNER_REQUIRE_CHECKSUM): give "
                          f"{names.get('checksum_sha256', 'checksum_sha256')}, the base64 SHA-256 of the file, or "
                          "a CRC32, CRC32C or CRC64NVME")
        return header

    def for_caller(self, identity: str | None, names: FieldNames = JSON_FIELDS) -> CallerRules:
        """These rules bound to one caller (its key prefix) and to how it names fields."""
        return CallerRules(self, identity, names, self.prefix_for(identity))

    @functools.cached_property
    def reserved_prefix(self) -> str:
        """Where the service keeps its own objects; never signed for a caller."""
        return f"{self.key_prefix}{SERVICE_FOLDER}"

    def is_reserved_key(self, key: str) -> bool:
        return key.lower().startswith(self.reserved_prefix.lower())

    def prefix_for(self, identity: str | None) -> str:
        """Where this caller may write: ``<prefix>`` or ``<prefix><identity>/``."""
        return f"{self.key_prefix}{identity}/" if identity else self.key_prefix

    # --- content, size, time --------------------------------------------------

    def check_content_type(self, content_type: object, *, required: bool = True, name: str = "content_type") -> str | None:
        """With an allow-list configured a content type is required and must match it
        (``image/*`` wildcards); parameters such as ``; charset=`` are allowed."""
        if content_type is None or content_type == "":
            if self.allowed_content_types and required:
                raise NotAllowed("content_type_not_allowed", f"{name} is required: " + self.allowed_types_text())
            return None
        if not isinstance(content_type, str) or len(content_type) > 255 or CONTROL_CHARACTERS.search(content_type):
            raise Malformed("invalid_input", f"{name} must be a short string without control characters")
        media = content_type.split(";", 1)[0].strip().lower()
        if not _MEDIA_TYPE.fullmatch(media):
            raise Malformed("invalid_input", f"{name} {content_type!r} is not a type/subtype media type")
        if self.allowed_content_types and not self._type_allowed(media):
            raise NotAllowed("content_type_not_allowed", f"content type {media!r} is not allowed: " + self.allowed_types_text())
        return content_type

    def check_content_type_prefix(self, prefix: object) -> str:
        """A ``starts-with $Content-Type`` value: only ``type/`` when ``type/*`` is allowed."""
        if not isinstance(prefix, str) or CONTROL_CHARACTERS.search(prefix):
            raise Malformed("invalid_input", "Content-Type prefix must be text")
        if self.allowed_content_types and f"{prefix.lower()}*" not in self.allowed_content_types:
            raise NotAllowed(
                "content_type_not_allowed",
                f"Content-Type starts-with {prefix!r} is wider than allowed: " + self.allowed_types_text(),
            )
        excluded = [media for media in SCRIPTABLE_TYPES if media.startswith(prefix.lower())]
        if self.allowed_content_types and "*/*" not in self.allowed_content_types and any(
            media not in self.allowed_content_types for media in excluded
        ):
            raise NotAllowed(
                "content_type_not_allowed",
                f"Content-Type starts-with {prefix!r} would admit {', '.join(excluded)}, which {prefix}* does not "
                "include: sign the exact Content-Type instead",
            )
        return prefix

    def _type_allowed(self, media: str) -> bool:
        """``type/*`` admits that type's subtypes except the scriptable ones (SVG can carry
        script that runs on the bucket's origin): those only when listed by name."""
        allowed = self.allowed_content_types
        return (media in allowed or "*/*" in allowed
                or (media.split("/", 1)[0] + "/*" in allowed and media not in SCRIPTABLE_TYPES))

    def allowed_types_text(self) -> str:
        return "allowed types are " + ", ".join(self.allowed_content_types)

    def check_expires(self, expires_in: object, name: str = "expires_in") -> int:
        """The requested lifetime, or a short default (5 minutes, capped by the maximum)."""
        if expires_in is None:
            return min(300, self.max_expires)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int):
            raise Malformed("invalid_expiry", f"{name} must be a whole number of seconds")
        if expires_in < 1:
            raise Malformed("invalid_expiry", f"{name} must be at least 1 second")
        if expires_in > self.max_expires:
            raise NotAllowed("expiry_too_long", f"{name} {expires_in} is above the maximum of {self.max_expires} seconds")
        return expires_in

    def check_size(self, size: object, what: str = "size") -> int:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise Malformed("invalid_input", f"{what} must be a whole number of bytes >= 0")
        if self.max_size is not None and size > self.max_size:
            raise NotAllowed("too_large", f"{what} {size} is above the maximum of {self.max_size} bytes")
        return size

    def size_range(self, low: object, high: object) -> tuple[int, int]:
        low = self.check_size(low, "minimum size")
        high = self.check_size(high, "maximum size")
        if low > high:
            raise Malformed("invalid_input", "minimum size must not exceed maximum size")
        return low, high

    def check_method(self, method: object, name: str = "method") -> str:
        verb = method_text(method, name, f": one of {self.allowed_methods_text()}" if method is None else "")
        if verb not in self.allowed_methods:
            raise NotAllowed("method_not_allowed", f"{name} must be one of {self.allowed_methods_text()}")
        return verb

    def allowed_methods_text(self) -> str:
        """For refusals only: written when one is made, not per request."""
        return ", ".join(sorted(self.allowed_methods))

    def check_uploads_allowed(self) -> None:
        """Every upload (PUT, POST form, multipart) is a PUT as far as SIGNER_ALLOWED_METHODS goes."""
        if "PUT" not in self.allowed_methods:
            raise NotAllowed("method_not_allowed", "uploads are not allowed: SIGNER_ALLOWED_METHODS has no PUT")

    def check_abort_allowed(self) -> None:
        """Aborting one's own unfinished multipart upload deletes no object, only its parts: it
        is part of an upload's lifecycle, allowed wherever uploads are (PUT), or with DELETE.
        One rule for Fine Uploader, Companion and signRequest; an object DELETE stays
        governed by SIGNER_ALLOWED_METHODS alone (:meth:`check_method`)."""
        if not self.allowed_methods & {"PUT", "DELETE"}:
            raise NotAllowed("method_not_allowed",
                          "aborting a multipart upload is part of uploading, which SIGNER_ALLOWED_METHODS does not "
                          "allow (no PUT)")

    def check_object(self, size: int, content_type: str | None) -> None:
        """A finished object (HEAD after an upload the signatures could not bound) within the rules."""
        self.check_size(size, "uploaded object size")
        self.check_content_type(content_type, required=False)

    def check_acl(self, acl: object) -> str:
        if not isinstance(acl, str) or acl not in self.allowed_acls:
            raise NotAllowed("acl_not_allowed", f"acl must be one of {', '.join(sorted(self.allowed_acls))}")
        return acl

    def check_amz_date(self, stamp: object, now: datetime) -> str:
        """A client-chosen X-Amz-Date must be within ``clock_skew`` of server time."""
        try:
            moment = parse_amz_date(stamp)
        except InvalidTime as exc:
            raise Malformed("invalid_time", exc.message) from None
        if abs((moment - now).total_seconds()) > self.clock_skew:
            raise NotAllowed(
                "clock_skew",
                f"x-amz-date {stamp} is more than {self.clock_skew} seconds from server time {amz_date(now)}",
            )
        return str(stamp)


class PresignPlan(NamedTuple):
    """Exactly what one presigned URL will allow; nothing else is signed. (A NamedTuple, like
    :class:`CallerRules`: one per request.)"""

    method: str
    key: str
    headers: dict[str, str]
    expires_in: int
    query: tuple[tuple[str, str], ...] = ()
    """The S3 operation's own parameters (``uploads``, ``partNumber``, ``uploadId``)."""

    def sign(self, credentials: Credentials, bucket: Bucket, now: datetime) -> PresignedURL:
        return presign_url(
            credentials, bucket, self.key, method=self.method, expires_in=self.expires_in, headers=self.headers,
            query=self.query, now=now,
        )


@dataclass(frozen=True)
class PostPlan:
    """Exactly what one POST policy will allow."""

    key: str
    content_type: str | None
    length_range: tuple[int, int] | None
    expires_in: int
    checksum: dict[str, str] = field(default_factory=dict)
    """``{x-amz-checksum-<alg>: value}``: a form field and an exact condition (the store
    compares it with the file)."""

    def sign(self, credentials: Credentials, bucket: Bucket, now: datetime) -> PostForm:
        return presign_post(
            credentials, bucket, self.key, expires_in=self.expires_in, content_type=self.content_type,
            content_length_range=self.length_range, checksum=self.checksum, now=now,
        )


@dataclass(frozen=True)
class MultipartPlan:
    """A multipart upload the service will create itself: our key, a signed Content-Type."""

    key: str
    content_type: str | None


@dataclass(frozen=True)
class SignRequestPlan:
    """One step of Uppy's ``signRequest`` mode: which S3 operation, and what to sign for it.
    ``operation`` is ``post_object``, ``create``, ``part``, ``list_parts``, ``complete``,
    ``abort`` or ``object`` (GET/HEAD/DELETE of an existing object)."""

    operation: str
    plan: PresignPlan | PostPlan
    upload_id: str | None = None


class CallerRules(NamedTuple):
    """The rules for one caller: its prefix is fixed here, once (:meth:`Rules.for_caller`), since
    every key check reads it. A NamedTuple, as :class:`signer.service.grants.Grant`: one is built
    per request, and a frozen dataclass (with a ``cached_property``, whose lock every request
    thread shares on Python 3.11) costs several times as much."""

    rules: Rules
    identity: str | None
    names: FieldNames
    prefix: str

    # --- keys ---------------------------------------------------------------

    def check_key(self, key: object, name: str = "key") -> str:
        text = _check_key_text(key, name)
        if not text.startswith(self.prefix) or len(text) == len(self.prefix):
            raise NotAllowed("key_not_allowed", f"{name} must start with {self.prefix!r} and name an object under it")
        if self.rules.is_reserved_key(text):
            raise NotAllowed("key_not_allowed",
                             f"{name} must not be under {self.rules.reserved_prefix!r}: the service's own folder")
        return text

    def check_key_prefix(self, key_prefix: object) -> str:
        """A ``starts-with $key`` value: it must itself lie inside the caller's prefix."""
        text = _check_key_text(key_prefix, "key prefix")
        if not text.startswith(self.prefix):
            raise NotAllowed("key_not_allowed", f"key prefix must start with {self.prefix!r}")
        reserved = self.rules.reserved_prefix.lower()
        if text.lower().startswith(reserved) or reserved.startswith(text.lower()):
            raise NotAllowed("key_not_allowed",
                          f"key prefix must not admit {self.rules.reserved_prefix!r}: the service's own folder")
        return text

    def new_key(self, filename: object, now: datetime, name: str = "filename") -> str:
        """``<prefix>[<identity>/]<yyyy>/<mm>/<dd>/<uuid4><.ext>``: the caller names the file,
        we name the object (no collisions, nothing from the filename but its extension)."""
        if not isinstance(filename, str) or not filename or len(filename) > 1024:
            raise Malformed("invalid_input", f"{name} must be a non-empty string of at most 1024 characters")
        if CONTROL_CHARACTERS.search(filename):
            raise Malformed("invalid_input", f"{name} must not contain control characters")
        base = filename.replace("\\", "/").rsplit("/", 1)[-1]
        ext = base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""
        suffix = f".{ext}" if _EXTENSION.fullmatch(ext) else ""
        return f"{self.prefix}{now:%Y/%m/%d}/{uuid.uuid4()}{suffix}"

    def choose_key(self, key: object, filename: object, now: datetime) -> str:
        """The caller proposes a ``key`` (checked) or a ``filename`` (we choose the key)."""
        names = self.names
        if key is None and filename is None:
            raise Malformed("missing_field", f"give {names['key']} or {names['filename']}")
        if key is not None and filename is not None:
            raise Malformed("invalid_input", f"give {names['key']} or {names['filename']}, not both")
        if key is not None:
            return self.check_key(key, names["key"])
        return self.new_key(filename, now, names["filename"])

    # --- the plans ------------------------------------------------------------

    def plan_presign(
        self,
        *,
        method: object = None,
        key: object = None,
        filename: object = None,
        content_type: object = None,
        content_length: object = None,
        expires_in: object = None,
        now: datetime,
        valid_until: datetime | None = None,
        checksum_sha256: object = None,
        checksum_crc32: object = None,
        checksum_crc32c: object = None,
        checksum_crc64nvme: object = None,
    ) -> PresignPlan:
        """What a presigned URL for this request would sign. With a size limit a PUT must
        sign its exact ``Content-Length``: that is how S3 enforces the limit. A declared
        checksum is signed as ``x-amz-checksum-<alg>`` (the store refuses other bytes), and
        with SIGNER_OVERWRITE=deny ``If-None-Match: *`` (the store refuses an existing key)."""
        checksums = {"checksum_sha256": checksum_sha256, "checksum_crc32": checksum_crc32,
                     "checksum_crc32c": checksum_crc32c, "checksum_crc64nvme": checksum_crc64nvme}
        rules, names = self.rules, self.names
        verb = rules.check_method(method, names["method"])
        if verb != "PUT" and filename is not None:
            raise Malformed("invalid_input", f"{verb} needs an existing object's {names['key']}, not a {names['filename']}")
        chosen = self.choose_key(key, filename, now)
        headers: dict[str, str] = {}
        if verb == "PUT":
            checked_type = rules.check_content_type(content_type, name=names["content_type"])
            if checked_type:
                headers["Content-Type"] = checked_type
            if content_length is not None:
                headers["Content-Length"] = str(rules.check_size(content_length, names["content_length"]))
            elif rules.max_size is not None:
                raise Malformed(
                    "content_length_required",
                    f"{names['content_length']} is required: uploads are limited to {rules.max_size} bytes and "
                    "the signed length is how S3 enforces it",
                )
            headers.update(rules.check_declared_checksum(checksums, names))
            headers.update(rules.no_overwrite_headers())
        elif content_type is not None or content_length is not None:
            raise Malformed("invalid_input", f"{names['content_type']} and {names['content_length']} apply to PUT, not {verb}")
        elif any(value is not None for value in checksums.values()):
            raise Malformed("invalid_input", f"a checksum applies to PUT, not {verb}")
        query: tuple[tuple[str, str], ...] = ()
        if verb == "GET" and rules.content_disposition == "attachment":
            query = (("response-content-disposition", attachment(chosen)),)
        return PresignPlan(verb, chosen, headers, self.expiry(expires_in, now, valid_until), query)

    def plan_post_policy(
        self,
        *,
        key: object = None,
        filename: object = None,
        content_type: object = None,
        max_size: object = None,
        expires_in: object = None,
        now: datetime,
        valid_until: datetime | None = None,
        checksum_sha256: object = None,
        checksum_crc32: object = None,
        checksum_crc32c: object = None,
        checksum_crc64nvme: object = None,
    ) -> PostPlan:
        """What a POST policy for this request would sign; with a size limit the policy
        always carries ``content-length-range``, and a declared checksum is a condition. A
        form cannot carry ``If-None-Match``: SIGNER_OVERWRITE does not reach POST uploads."""
        rules, names = self.rules, self.names
        checksum = declared_checksum({"checksum_sha256": checksum_sha256, "checksum_crc32": checksum_crc32,
                                      "checksum_crc32c": checksum_crc32c, "checksum_crc64nvme": checksum_crc64nvme},
                                     names)
        rules.check_uploads_allowed()
        chosen = self.choose_key(key, filename, now)
        checked_type = rules.check_content_type(content_type, name=names["content_type"])
        if max_size is not None:
            length_range: tuple[int, int] | None = rules.size_range(0, max_size)
        else:
            length_range = (0, rules.max_size) if rules.max_size is not None else None
        return PostPlan(chosen, checked_type, length_range, self.expiry(expires_in, now, valid_until), checksum)

    def expiry(self, expires_in: object, now: datetime, valid_until: datetime | None) -> int:
        """The checked lifetime, capped at the whole seconds the credentials have left."""
        seconds = self.rules.check_expires(expires_in, self.names["expires_in"])
        if valid_until is None:
            return seconds
        left = int((valid_until - now.replace(microsecond=0)).total_seconds())  # from X-Amz-Date, whole seconds
        if left < 1:
            raise Unavailable("credentials_unavailable", "the signing credentials expire in less than a second")
        return min(seconds, left)

    # --- multipart uploads (Companion protocol, signRequest mode) -------------------

    @property
    def max_part_number(self) -> int:
        """1..10000, and with a size limit no more parts than S3's 5 MiB minimum part size
        allows (every part but the last is at least 5 MiB)."""
        if self.rules.max_size is None:
            return MAX_PARTS
        return min(MAX_PARTS, self.rules.max_size // MIN_PART_SIZE + 1)

    def check_part_number(self, number: object, name: str = "partNumber") -> int:
        if isinstance(number, str) and DIGITS.fullmatch(number):
            number = int(number)
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= self.max_part_number:
            raise Malformed("invalid_input", f"{name} must be a whole number from 1 to {self.max_part_number}"
                          + (" (the size limit over S3's 5 MiB minimum part size)" if self.max_part_number < MAX_PARTS else ""))
        return number

    def check_upload(self, key: object, upload_id: object) -> tuple[str, str]:
        """A multipart upload the caller may touch: the key is under its prefix. S3 binds an
        upload id to its key, so another caller's upload id is unknown under our key."""
        checked = self.check_key(key)
        if not isinstance(upload_id, str) or not UPLOAD_ID.fullmatch(upload_id):
            raise Malformed("invalid_input", "uploadId is missing or malformed")
        return checked, upload_id

    def service_key(self, key: object, now: datetime, name: str = "key") -> str:
        """The caller's key when it lies under its prefix, else a new key chosen by us from
        the proposed name's extension (Uppy proposes ``<random>-<filename>``)."""
        if isinstance(key, str) and key.startswith(self.prefix):
            return self.check_key(key, name)
        return self.new_key(key, now, name)

    def plan_multipart_create(self, *, filename: object, content_type: object, now: datetime) -> MultipartPlan:
        """Creating a multipart upload is the start of a PUT: our key, an allowed, signed type."""
        self.rules.check_uploads_allowed()
        key = self.new_key(filename, now)
        return MultipartPlan(key, self.rules.check_content_type(content_type, name="type"))

    def plan_upload_part(
        self, *, key: object, upload_id: object, part_number: object, expires_in: object = None, now: datetime,
        valid_until: datetime | None = None, checksums: Mapping[str, object] | None = None,
    ) -> PresignPlan:
        """A part URL; the part's checksum (``checksums``: request fields) is signed when given,
        and required under SIGNER_REQUIRE_CHECKSUM."""
        checked_key, checked_id = self.check_upload(key, upload_id)
        number = self.check_part_number(part_number, self.names.get("part_number", "partNumber"))
        headers = self.rules.check_declared_checksum(checksums or {}, self.names)
        return PresignPlan("PUT", checked_key, headers, self.expiry(expires_in, now, valid_until),
                           (("partNumber", str(number)), ("uploadId", checked_id)))

    def check_completed_size(self, sizes: list[int]) -> int:
        """The total of the parts being completed, refused above the size limit."""
        total = sum(sizes)
        if self.rules.max_size is not None and total > self.rules.max_size:
            raise NotAllowed("too_large", f"the uploaded parts total {total} bytes, above the maximum of "
                          f"{self.rules.max_size}: the upload was aborted")
        return total

    def plan_sign_request(
        self, *, method: object, key: object, content_type: object = None, upload_id: object = None,
        part_number: object = None, now: datetime, valid_until: datetime | None = None,
        checksums: Mapping[str, object] | None = None, checksum_algorithm: object = None,
    ) -> SignRequestPlan:
        """Uppy's ``signRequest({method, key, contentType?, uploadId?, partNumber?})``: every
        step of a simple or multipart upload, decided here. A simple PUT is answered with a POST
        form whose policy carries the size range (the client does not tell the size). A client
        of our own may add a checksum (``checksums``: the simple upload's or the part's) and,
        on create, ``checksum_algorithm``; under SIGNER_OVERWRITE=deny the complete signs
        ``If-None-Match: *`` (Uppy sends the headers we answer)."""
        verb = method_text(method, self.names["method"])
        expires = self.expiry(None, now, valid_until)
        declared = {name: value for name, value in (checksums or {}).items() if value is not None}
        if declared and not (verb == "PUT" and (upload_id is None or part_number is not None)):
            raise Malformed("invalid_input", "a checksum applies to a simple upload (PUT) or a part, not this step")
        if checksum_algorithm is not None and not (verb == "POST" and upload_id is None):
            raise Malformed("invalid_input", "checksum_algorithm applies to creating a multipart upload (POST)")
        if upload_id is None:
            if part_number is not None:
                raise Malformed("invalid_input", "partNumber needs an uploadId")
            if verb == "PUT":
                chosen = self.service_key(key, now)
                return SignRequestPlan("post_object", self.plan_post_policy(
                    key=chosen, content_type=content_type, now=now, valid_until=valid_until, **declared))
            if verb == "POST":
                self.rules.check_uploads_allowed()
                chosen = self.service_key(key, now)
                checked_type = self.rules.check_content_type(content_type, required=False, name="contentType")
                headers = {"Content-Type": checked_type} if checked_type else {}
                if checksum_algorithm is not None:
                    headers["x-amz-checksum-algorithm"] = check_algorithm(checksum_algorithm)
                return SignRequestPlan("create", PresignPlan("POST", chosen, headers, expires, (("uploads", ""),)))
            if content_type is not None:
                raise Malformed("invalid_input", f"contentType applies to PUT and POST, not {verb}")
            return SignRequestPlan("object", self.plan_presign(method=verb, key=key, now=now, valid_until=valid_until))
        checked_key, checked_id = self.check_upload(key, upload_id)
        query = (("uploadId", checked_id),)
        if verb == "PUT":
            if part_number is None:
                raise Malformed("missing_field", "partNumber is required to upload a part")
            return SignRequestPlan("part", self.plan_upload_part(
                key=checked_key, upload_id=checked_id, part_number=part_number, now=now, valid_until=valid_until,
                checksums=declared,
            ), checked_id)
        if part_number is not None:
            raise Malformed("invalid_input", f"partNumber applies to PUT, not {verb}")
        operation = {"GET": "list_parts", "POST": "complete", "DELETE": "abort"}.get(verb)
        if operation is None:
            raise NotAllowed("operation_not_allowed", "with an uploadId only PUT (part), GET (list parts), POST "
                          "(complete) and DELETE (abort) are signed")
        if operation == "abort":
            self.rules.check_abort_allowed()
        else:
            self.rules.check_uploads_allowed()
        headers = self.rules.no_overwrite_headers() if operation == "complete" else {}
        return SignRequestPlan(operation, PresignPlan(verb, checked_key, headers, expires, query), checked_id)


def attachment(key: str) -> str:
    """``Content-Disposition: attachment`` with the object's name (RFC 6266: an ASCII ``filename``
    for old clients, the exact UTF-8 name in ``filename*``)."""
    name = key.rsplit("/", 1)[-1]
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "download"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def method_text(method: object, name: str, choices: str = "") -> str:
    """A method the caller named, upper-cased: missing and non-text are refused here, once."""
    if method is None:
        raise Malformed("missing_field", f"{name} is required{choices}")
    if not isinstance(method, str):
        raise Malformed("invalid_input", f"{name} must be a string such as \"PUT\"")
    return method.upper()


def _check_key_text(key: object, what: str) -> str:
    """No control characters, no '.' or '..' segments, no '${' (S3 would substitute the
    uploaded file's name for ``${filename}``, letting the uploader choose the key), at most
    1024 UTF-8 bytes."""
    if not isinstance(key, str) or not key:
        raise Malformed("invalid_key", f"{what} must be a non-empty string")
    if "${" in key:
        raise NotAllowed("key_not_allowed", f"{what} must not contain '${{' (S3 would fill in the uploader's file name)")
    if CONTROL_CHARACTERS.search(key):
        raise NotAllowed("key_not_allowed", f"{what} must not contain control characters")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise Malformed("invalid_key", f"{what} is not valid unicode") from None
    if size > MAX_KEY_BYTES:
        raise NotAllowed("key_not_allowed", f"{what} is {size} bytes; at most {MAX_KEY_BYTES} are allowed")
    # A backslash separates segments too for some stores (SeaweedFS answers 400 to any request on
    # 'a/..\\b'): a key every store reads alike, or none.
    segments = key.replace("\\", "/").split("/")
    if "." in segments or ".." in segments:
        raise NotAllowed("key_not_allowed", f"{what} must not contain '.' or '..' segments")
    return key
