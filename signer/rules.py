"""What the service is allowed to sign: keys, sizes, content types, expiry, methods, ACLs.

Every check lives here so one file answers "could this request have been signed?".
Failures raise :class:`RuleViolation` (403) or :class:`InvalidInput` (400) with a
message naming the field and the rule.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from .errors import InvalidInput, RuleViolation
from .s3 import CONTROL_CHARACTERS, MAX_KEY_BYTES
from .sigv4 import MAX_EXPIRES, amz_date, utc_from_parts

IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+")
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")


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
            raise InvalidInput(f"max_expires must be between 1 and {MAX_EXPIRES}")

    # --- keys ---------------------------------------------------------------

    def prefix_for(self, identity: str | None) -> str:
        """Where this caller may write: ``<prefix>`` or ``<prefix><identity>/``."""
        return f"{self.key_prefix}{identity}/" if identity else self.key_prefix

    def check_key(self, key: object, identity: str | None) -> str:
        text = _check_key_text(key, "key")
        prefix = self.prefix_for(identity)
        if not text.startswith(prefix) or len(text) == len(prefix):
            raise RuleViolation(f"key must start with {prefix!r} and name an object under it", code="key_not_allowed")
        return text

    def check_key_prefix(self, key_prefix: object, identity: str | None) -> str:
        """A ``starts-with $key`` value: it must itself lie inside the caller's prefix."""
        text = _check_key_text(key_prefix, "key prefix")
        prefix = self.prefix_for(identity)
        if not text.startswith(prefix):
            raise RuleViolation(f"key prefix must start with {prefix!r}", code="key_not_allowed")
        return text

    def new_key(self, filename: object, identity: str | None, now: datetime) -> str:
        """``<prefix>[<identity>/]<yyyy>/<mm>/<dd>/<uuid4><.ext>``: the caller names the file,
        we name the object (no collisions, nothing from the filename but its extension)."""
        if not isinstance(filename, str) or not filename or len(filename) > 1024:
            raise InvalidInput("filename must be a non-empty string of at most 1024 characters")
        if CONTROL_CHARACTERS.search(filename):
            raise InvalidInput("filename must not contain control characters")
        base = filename.replace("\\", "/").rsplit("/", 1)[-1]
        ext = base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""
        suffix = f".{ext}" if _EXTENSION.fullmatch(ext) else ""
        return f"{self.prefix_for(identity)}{now:%Y/%m/%d}/{uuid.uuid4()}{suffix}"

    # --- content, size, time --------------------------------------------------

    def check_content_type(self, content_type: object, *, required: bool = True) -> str | None:
        """With an allow-list configured a content type is required and must match it
        (``image/*`` wildcards); parameters such as ``; charset=`` are allowed."""
        if content_type is None or content_type == "":
            if self.allowed_content_types and required:
                raise RuleViolation("content_type is required: " + self.allowed_types_text(), code="content_type_not_allowed")
            return None
        if not isinstance(content_type, str) or len(content_type) > 255 or CONTROL_CHARACTERS.search(content_type):
            raise InvalidInput("content_type must be a short string without control characters")
        media = content_type.split(";", 1)[0].strip().lower()
        if not _MEDIA_TYPE.fullmatch(media):
            raise InvalidInput(f"content_type {content_type!r} is not a type/subtype media type")
        if self.allowed_content_types and not self._type_allowed(media):
            raise RuleViolation(
                f"content type {media!r} is not allowed: " + self.allowed_types_text(), code="content_type_not_allowed"
            )
        return content_type

    def check_content_type_prefix(self, prefix: object) -> str:
        """A ``starts-with $Content-Type`` value: only ``type/`` when ``type/*`` is allowed."""
        if not isinstance(prefix, str) or CONTROL_CHARACTERS.search(prefix):
            raise InvalidInput("Content-Type prefix must be text")
        if self.allowed_content_types and f"{prefix.lower()}*" not in self.allowed_content_types:
            raise RuleViolation(
                f"Content-Type starts-with {prefix!r} is wider than allowed: " + self.allowed_types_text(),
                code="content_type_not_allowed",
            )
        return prefix

    def _type_allowed(self, media: str) -> bool:
        major = media.split("/", 1)[0]
        return any(
            allowed == media or allowed == "*/*" or allowed == f"{major}/*" for allowed in self.allowed_content_types
        )

    def allowed_types_text(self) -> str:
        return "allowed types are " + ", ".join(self.allowed_content_types)

    def check_expires(self, expires_in: object) -> int:
        """The requested lifetime, or a short default (5 minutes, capped by the maximum)."""
        if expires_in is None:
            return min(300, self.max_expires)
        if isinstance(expires_in, bool) or not isinstance(expires_in, int):
            raise InvalidInput("expires_in must be a whole number of seconds", code="invalid_expiry")
        if expires_in < 1:
            raise InvalidInput("expires_in must be at least 1 second", code="invalid_expiry")
        if expires_in > self.max_expires:
            raise RuleViolation(
                f"expires_in {expires_in} is above the maximum of {self.max_expires} seconds", code="expiry_too_long"
            )
        return expires_in

    def check_size(self, size: object, what: str = "size") -> int:
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"{what} must be a whole number of bytes >= 0")
        if self.max_size is not None and size > self.max_size:
            raise RuleViolation(f"{what} {size} is above the maximum of {self.max_size} bytes", code="too_large")
        return size

    def size_range(self, low: object, high: object) -> tuple[int, int]:
        low = self.check_size(low, "minimum size")
        high = self.check_size(high, "maximum size")
        if low > high:
            raise InvalidInput("minimum size must not exceed maximum size")
        return low, high

    def check_method(self, method: object) -> str:
        if not isinstance(method, str) or method.upper() not in self.allowed_methods:
            raise RuleViolation(
                f"method must be one of {', '.join(sorted(self.allowed_methods))}", code="method_not_allowed"
            )
        return method.upper()

    def check_acl(self, acl: object) -> str:
        if acl not in self.allowed_acls:
            raise RuleViolation(f"acl must be one of {', '.join(sorted(self.allowed_acls))}", code="acl_not_allowed")
        return acl  # type: ignore[return-value]

    def check_amz_date(self, stamp: object, now: datetime) -> str:
        """A client-chosen X-Amz-Date must be within ``clock_skew`` of server time."""
        match = _AMZ_DATE.fullmatch(stamp) if isinstance(stamp, str) else None
        if not isinstance(stamp, str) or not match:
            raise InvalidInput("x-amz-date must look like YYYYMMDDTHHMMSSZ")
        try:
            moment = utc_from_parts(match.groups())
        except ValueError:
            raise InvalidInput("x-amz-date is not a real date") from None
        if abs((moment - now).total_seconds()) > self.clock_skew:
            raise RuleViolation(
                f"x-amz-date {stamp} is more than {self.clock_skew} seconds from server time {amz_date(now)}",
                code="clock_skew",
            )
        return stamp


def _check_key_text(key: object, what: str) -> str:
    """No control characters, no '.' or '..' segments, at most 1024 UTF-8 bytes."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"{what} must be a non-empty string", code="invalid_key")
    if CONTROL_CHARACTERS.search(key):
        raise RuleViolation(f"{what} must not contain control characters", code="key_not_allowed")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput(f"{what} is not valid unicode", code="invalid_key") from None
    if size > MAX_KEY_BYTES:
        raise RuleViolation(f"{what} is {size} bytes; at most {MAX_KEY_BYTES} are allowed", code="key_not_allowed")
    if any(segment in (".", "..") for segment in key.split("/")):
        raise RuleViolation(f"{what} must not contain '.' or '..' segments", code="key_not_allowed")
    return key
