"""S3 specifics: bucket-name rules, endpoints, addressing styles and key encoding."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import InvalidBucket, InvalidInput, InvalidKey
from .sigv4 import check_scope_part, uri_encode

MAX_KEY_BYTES = 1024
ADDRESSING_STYLES = ("auto", "virtual", "path")

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]")


def check_bucket_name(name: str) -> str:
    """The general-purpose bucket naming rules S3 enforces
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html)."""
    if not isinstance(name, str) or not name:
        raise InvalidBucket("bucket name must not be empty")
    if not _BUCKET.fullmatch(name):
        raise InvalidBucket(
            f"bucket name {name!r} must be 3-63 characters of a-z, 0-9, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        raise InvalidBucket(f"bucket name {name!r} must not have adjacent '.' or '.-'")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        raise InvalidBucket(f"bucket name {name!r} must not look like an IP address")
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if name.startswith(prefix):
            raise InvalidBucket(f"bucket name {name!r} must not start with {prefix!r}")
    for suffix in ("-s3alias", "--ol-s3", "--x-s3", ".mrap", "--table-s3"):
        if name.endswith(suffix):
            raise InvalidBucket(f"bucket name {name!r} must not end with {suffix!r}")
    return name


def check_key(key: str) -> str:
    """``key`` when S3 would take it: a string of at most 1024 bytes of valid UTF-8."""
    if not isinstance(key, str):
        raise InvalidKey("key must be a string")
    if len(key) * 4 > MAX_KEY_BYTES or not key.isascii():  # only these need their UTF-8 looked at
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidKey("key is not valid unicode (lone surrogate)") from None
        if size > MAX_KEY_BYTES:
            raise InvalidKey(f"key is {size} bytes of UTF-8; S3 allows at most {MAX_KEY_BYTES}")
    return key


def encode_key(key: str) -> str:
    """An object key as it goes in the URL path: encoded once, '/' kept, no normalisation
    (``a//b``, ``./`` and ``../`` stay as they are), unicode as UTF-8 percent-encoding."""
    if not isinstance(key, str):
        raise InvalidKey("key must be a string")
    if len(key) * 4 > MAX_KEY_BYTES:  # only long keys need their UTF-8 size measured
        check_key(key)
    try:
        return uri_encode(key, keep_slash=True)
    except InvalidInput:
        raise InvalidKey("key is not valid unicode (lone surrogate)") from None


def _parse_endpoint(endpoint_url: str) -> tuple[str, str]:
    """(scheme, host[:port]) of a custom endpoint; default ports dropped as S3 clients do."""
    try:
        parts = urlsplit(endpoint_url)
        port = parts.port
    except (ValueError, TypeError):
        raise InvalidInput(f"endpoint URL {endpoint_url!r} is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"endpoint URL {endpoint_url!r} must start with http:// or https://")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise InvalidInput(f"endpoint URL {endpoint_url!r} must be scheme://host[:port] only")
    host = parts.netloc.rsplit("@", 1)[-1].rsplit(":", 1)[0] if port else parts.netloc
    if not host or not _HOST.fullmatch(host):
        raise InvalidInput(f"endpoint URL {endpoint_url!r} has no valid host")
    default = 443 if parts.scheme == "https" else 80
    netloc = host.lower() if port in (None, default) else f"{host.lower()}:{port}"
    return parts.scheme, netloc


def _is_ip_address(netloc: str) -> bool:
    host = netloc[1:].split("]")[0] if netloc.startswith("[") else netloc.split(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Bucket:
    """Where a bucket lives and how its URLs are addressed.

    ``addressing_style``: ``virtual`` (``bucket.host/key``), ``path`` (``host/bucket/key``)
    or ``auto``: virtual on AWS, path on a custom endpoint such as ``http://127.0.0.1:9000``.
    Over https a bucket name with a dot is always path-style (the TLS certificate
    would not match), as botocore does. Default ports (80, 443) are dropped.
    """

    name: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    addressing_style: str = "auto"
    scheme: str = field(init=False, repr=False)
    host: str = field(init=False, repr=False)
    path_prefix: str = field(init=False, repr=False)
    origin: str = field(init=False, repr=False, compare=False)  # scheme://host, made once

    def __post_init__(self) -> None:
        check_bucket_name(self.name)
        check_scope_part("region", self.region)
        if self.addressing_style not in ADDRESSING_STYLES:
            raise InvalidInput(f"addressing style must be one of {', '.join(ADDRESSING_STYLES)}")
        if self.endpoint_url:
            scheme, service_host = _parse_endpoint(self.endpoint_url)
            virtual = self.addressing_style == "virtual"
            if virtual and _is_ip_address(service_host):
                raise InvalidInput(
                    "virtual-hosted addressing needs an endpoint with a DNS name, not an IP address"
                )
        else:
            scheme = "https"
            service_host = (
                "s3.amazonaws.com" if self.region == "us-east-1" else f"s3.{self.region}.amazonaws.com"
            )
            virtual = self.addressing_style in ("auto", "virtual")
        if virtual and scheme == "https" and "." in self.name:
            virtual = False  # a dotted bucket name would not match the TLS certificate
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "host", f"{self.name}.{service_host}" if virtual else service_host)
        object.__setattr__(self, "path_prefix", "" if virtual else f"/{self.name}")
        object.__setattr__(self, "origin", f"{self.scheme}://{self.host}")

    @property
    def virtual_hosted(self) -> bool:
        return not self.path_prefix

    @property
    def base_url(self) -> str:
        """The URL browsers POST forms to."""
        return f"{self.origin}{self.path_prefix or '/'}"

    def object_path(self, key: str) -> str:
        """The URL path (encoded once) of an object; ``""`` addresses the bucket itself."""
        if not key:
            return self.path_prefix or "/"
        return f"{self.path_prefix}/{encode_key(key)}"

    def object_url(self, key: str) -> str:
        return f"{self.origin}{self.object_path(key)}"
