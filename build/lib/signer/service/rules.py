"""What the service may sign, and the one request plan every entry point uses.

:class:`Rules` holds the configured limits and the single checks. ``rules.for_caller(identity)``
binds a caller once; its :meth:`CallerRules.plan_presign` and :meth:`CallerRules.plan_post_policy`
make every decision about *what* to sign (method, key or generated key, headers to sign,
Content-Length under a size limit, expiry) for the HTTP API, the protocol adapters and the
CLI alike. A plan is a plain value; :meth:`PresignPlan.sign` hands it to the library.
Failures raise :class:`Refused` with a code and a message naming the caller's own field
(``content_length`` for JSON, ``--content-length`` for the CLI).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..credentials import Credentials
from ..post_policy import PostForm, presign_post
from ..presign import PresignedURL, presign_url
from ..s3 import MAX_KEY_BYTES, Bucket
from ..sigv4 import CONTROL_CHARACTERS, MAX_EXPIRES, amz_date, parse_amz_date
from ..errors import InvalidTime
from .errors import Refused

IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
SCRIPTABLE_TYPES = frozenset({"image/svg+xml"})
"""Admitted by ``*/*`` or by name, never by a ``type/*`` wildcard."""

FieldNames = Mapping[str, str]
PLAN_FIELDS = ("method", "key", "filename", "content_type", "content_length", "max_size", "expires_in")
JSON_FIELDS: FieldNames = {name: name for name in PLAN_FIELDS}
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

    def __post_init__(self) -> None:
        if not 1 <= self.max_expires <= MAX_EXPIRES:
            raise ValueError(f"max_expires must be between 1 and {MAX_EXPIRES}")

    def for_caller(self, identity: str | None, names: FieldNames = JSON_FIELDS) -> CallerRules:
        """These rules bound to one caller (its key prefix) and to how it names fields."""
        return CallerRules(self, identity, names)

    def prefix_for(self, identity: str | None) -> str:
        """Where this caller may write: ``<prefix>`` or ``<prefix><identity>/``."""
        return f"{self.key_prefix}{identity}/" if identity else self.key_prefix

    # --- content, size, time --------------------------------------------------

    def check_content_type(self, content_type: object, *, required: bool = True, name: str = "content_type") -> str | None:
        """With an allow-list configured a content type is required and must match it
        (``image/*`` wildcards); parameters such as ``; charset=`` are allowed."""
        if content_type is None or content_type == "":
            if self.allowed_content_types and required:
                raise Refused("content_type_not_allowed", f"{name} is required: " + self.allowed_types_text())
            return None
        if not isinstance(content_type, str) or len(content_type) > 255 or CONTROL_CHARACTERS.search(content_type):
            raise Refused("invalid_input", f"{name} must be a short string without control characters")
        media = content_type.split(";", 1)[0].strip().lower()
        if not _MEDIA_TYPE.fullmatch(media):
            raise Refused("invalid_input", f"{name} {content_type!r} is not a type/subtype media type")
        if self.allowed_content_types and not self._type_allowed(media):
            raise Refused("content_type_not_allowed", f"content type {media!r} is not allowed: " + self.allowed_types_text())
        return content_type

    def check_content_type_prefix(self, prefix: object) -> str:
        """A ``starts-with $Content-Type`` value: only ``type/`` when ``type/*`` is allowed."""
        if not isinstance(prefix, str) or CONTROL_CHARACTERS.search(prefix):
            raise Refused("invalid_input", "Content-Type prefix must be text")
        if self.allowed_content_types and f"{prefix.lower()}*" not in self.allowed_content_types:
            raise Refused(
                "content_type_not_allowed",
                f"Content-Type starts-with {prefix!r} is wider than allowed: " + self.allowed_types_text(),
            )
        excluded = [media for media in SCRIPTABLE_TYPES if media.startswith(prefix.lower())]
        if self.allowed_content_types and "*/*" not in self.allowed_content_types and any(
            media not in self.allowed_content_types for media in excluded
        ):
            raise Refused(
                "content_type_not_allowed",
                f"Content-Type starts-with {prefix!r} would admit {', '.join(excluded)}, which {prefix}* does not "
                "include: sign the exact Content-Type instead",
            )
        return prefix

    def _type_allowed(self, media: str) -> bool:
        """``type/*`` admits that type's subtypes except the scriptable ones (SVG can carry
        script that runs on the bucket's origin): those only when listed by name."""
        major = media.split("/", 1)[0]
        return any(
            allowed == media or allowed == "*/*" or (allowed == f"{major}/*" and media not in SCRIPTABLE_TYPES)
            for allowed in self.allowed_content_types
        )

    def allowed_types_text(self) -> str:
        return "allowed types are " + ", ".join(self.allowed_content_types)

    def check_expires(self, expires_in: object, name: str = "expires_in") -> int:
        """The requested lifetime, or a short default (5 minutes, capped by the maximum)."""
        if expires_in is None:
            return min(300, self.max_expires)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int):
            raise Refused("invalid_expiry", f"{name} must be a whole number of seconds")
        if expires_in < 1:
            raise Refused("invalid_expiry", f"{name} must be at least 1 second")
        if expires_in > self.max_expires:
            raise Refused("expiry_too_long", f"{name} {expires_in} is above the maximum of {self.max_expires} seconds")
        return expires_in

    def check_size(self, size: object, what: str = "size") -> int:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise Refused("invalid_input", f"{what} must be a whole number of bytes >= 0")
        if self.max_size is not None and size > self.max_size:
            raise Refused("too_large", f"{what} {size} is above the maximum of {self.max_size} bytes")
        return size

    def size_range(self, low: object, high: object) -> tuple[int, int]:
        low = self.check_size(low, "minimum size")
        high = self.check_size(high, "maximum size")
        if low > high:
            raise Refused("invalid_input", "minimum size must not exceed maximum size")
        return low, high

    def check_method(self, method: object, name: str = "method") -> str:
        if method is None:
            raise Refused("missing_field", f"{name} is required: one of {', '.join(sorted(self.allowed_methods))}")
        if not isinstance(method, str) or method.upper() not in self.allowed_methods:
            raise Refused("method_not_allowed", f"{name} must be one of {', '.join(sorted(self.allowed_methods))}")
        return method.upper()

    def check_acl(self, acl: object) -> str:
        if not isinstance(acl, str) or acl not in self.allowed_acls:
            raise Refused("acl_not_allowed", f"acl must be one of {', '.join(sorted(self.allowed_acls))}")
        return acl

    def check_amz_date(self, stamp: object, now: datetime) -> str:
        """A client-chosen X-Amz-Date must be within ``clock_skew`` of server time."""
        try:
            moment = parse_amz_date(stamp)
        except InvalidTime as exc:
            raise Refused("invalid_time", exc.message) from None
        if abs((moment - now).total_seconds()) > self.clock_skew:
            raise Refused(
                "clock_skew",
                f"x-amz-date {stamp} is more than {self.clock_skew} seconds from server time {amz_date(now)}",
            )
        return str(stamp)


@dataclass(frozen=True)
class PresignPlan:
    """Exactly what one presigned URL will allow; nothing else is signed."""

    method: str
    key: str
    headers: dict[str, str]
    expires_in: int

    def sign(self, credentials: Credentials, bucket: Bucket, now: datetime) -> PresignedURL:
        return presign_url(
            credentials, bucket, self.key, method=self.method, expires_in=self.expires_in, headers=self.headers, now=now
        )


@dataclass(frozen=True)
class PostPlan:
    """Exactly what one POST policy will allow."""

    key: str
    content_type: str | None
    length_range: tuple[int, int] | None
    expires_in: int

    def sign(self, credentials: Credentials, bucket: Bucket, now: datetime) -> PostForm:
        return presign_post(
            credentials, bucket, self.key, expires_in=self.expires_in, content_type=self.content_type,
            content_length_range=self.length_range, now=now,
        )


@dataclass(frozen=True)
class CallerRules:
    """The rules for one caller: its prefix is fixed here, once."""

    rules: Rules
    identity: str | None
    names: FieldNames = field(default_factory=lambda: JSON_FIELDS)

    @property
    def prefix(self) -> str:
        return self.rules.prefix_for(self.identity)

    # --- keys ---------------------------------------------------------------

    def check_key(self, key: object, name: str = "key") -> str:
        text = _check_key_text(key, name)
        if not text.startswith(self.prefix) or len(text) == len(self.prefix):
            raise Refused("key_not_allowed", f"{name} must start with {self.prefix!r} and name an object under it")
        return text

    def check_key_prefix(self, key_prefix: object) -> str:
        """A ``starts-with $key`` value: it must itself lie inside the caller's prefix."""
        text = _check_key_text(key_prefix, "key prefix")
        if not text.startswith(self.prefix):
            raise Refused("key_not_allowed", f"key prefix must start with {self.prefix!r}")
        return text

    def new_key(self, filename: object, now: datetime, name: str = "filename") -> str:
        """``<prefix>[<identity>/]<yyyy>/<mm>/<dd>/<uuid4><.ext>``: the caller names the file,
        we name the object (no collisions, nothing from the filename but its extension)."""
        if not isinstance(filename, str) or not filename or len(filename) > 1024:
            raise Refused("invalid_input", f"{name} must be a non-empty string of at most 1024 characters")
        if CONTROL_CHARACTERS.search(filename):
            raise Refused("invalid_input", f"{name} must not contain control characters")
        base = filename.replace("\\", "/").rsplit("/", 1)[-1]
        ext = base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""
        suffix = f".{ext}" if _EXTENSION.fullmatch(ext) else ""
        return f"{self.prefix}{now:%Y/%m/%d}/{uuid.uuid4()}{suffix}"

    def choose_key(self, key: object, filename: object, now: datetime) -> str:
        """The caller proposes a ``key`` (checked) or a ``filename`` (we choose the key)."""
        names = self.names
        if key is None and filename is None:
            raise Refused("missing_field", f"give {names['key']} or {names['filename']}")
        if key is not None and filename is not None:
            raise Refused("invalid_input", f"give {names['key']} or {names['filename']}, not both")
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
    ) -> PresignPlan:
        """What a presigned URL for this request would sign. With a size limit a PUT must
        sign its exact ``Content-Length``: that is how S3 enforces the limit."""
        rules, names = self.rules, self.names
        verb = rules.check_method(method, names["method"])
        if verb != "PUT" and filename is not None:
            raise Refused("invalid_input", f"{verb} needs an existing object's {names['key']}, not a {names['filename']}")
        chosen = self.choose_key(key, filename, now)
        headers: dict[str, str] = {}
        if verb == "PUT":
            checked_type = rules.check_content_type(content_type, name=names["content_type"])
            if checked_type:
                headers["Content-Type"] = checked_type
            if content_length is not None:
                headers["Content-Length"] = str(rules.check_size(content_length, names["content_length"]))
            elif rules.max_size is not None:
                raise Refused(
                    "content_length_required",
                    f"{names['content_length']} is required: uploads are limited to {rules.max_size} bytes and "
                    "the signed length is how S3 enforces it",
                )
        elif content_type is not None or content_length is not None:
            raise Refused("invalid_input", f"{names['content_type']} and {names['content_length']} apply to PUT, not {verb}")
        return PresignPlan(verb, chosen, headers, rules.check_expires(expires_in, names["expires_in"]))

    def plan_post_policy(
        self,
        *,
        key: object = None,
        filename: object = None,
        content_type: object = None,
        max_size: object = None,
        expires_in: object = None,
        now: datetime,
    ) -> PostPlan:
        """What a POST policy for this request would sign; with a size limit the policy
        always carries ``content-length-range``."""
        rules, names = self.rules, self.names
        chosen = self.choose_key(key, filename, now)
        checked_type = rules.check_content_type(content_type, name=names["content_type"])
        if max_size is not None:
            length_range: tuple[int, int] | None = rules.size_range(0, max_size)
        else:
            length_range = (0, rules.max_size) if rules.max_size is not None else None
        return PostPlan(chosen, checked_type, length_range, rules.check_expires(expires_in, names["expires_in"]))


def _check_key_text(key: object, what: str) -> str:
    """No control characters, no '.' or '..' segments, at most 1024 UTF-8 bytes."""
    if not isinstance(key, str) or not key:
        raise Refused("invalid_key", f"{what} must be a non-empty string")
    if CONTROL_CHARACTERS.search(key):
        raise Refused("key_not_allowed", f"{what} must not contain control characters")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise Refused("invalid_key", f"{what} is not valid unicode") from None
    if size > MAX_KEY_BYTES:
        raise Refused("key_not_allowed", f"{what} is {size} bytes; at most {MAX_KEY_BYTES} are allowed")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise Refused("key_not_allowed", f"{what} must not contain '.' or '..' segments")
    return key
