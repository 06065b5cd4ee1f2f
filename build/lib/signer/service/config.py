"""Configuration: read and validate the environment once, into a frozen object.

Any problem raises :class:`ConfigError` whose message names the variable; the service
refuses to start rather than run half-configured.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from ..credentials import Credentials, credentials_from_env, read_secret
from ..errors import InvalidCredentials, SigningError
from ..post_policy import CANNED_ACLS
from ..s3 import Bucket
from ..sigv4 import MAX_EXPIRES
from .errors import ConfigError
from .networks import Network
from .rules import IDENTITY, Rules

MIN_TOKEN_LENGTH = 16
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")


@dataclass(frozen=True)
class Config:
    credentials: Credentials
    bucket: Bucket
    rules: Rules
    api_tokens: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    user_header: str | None = None
    allow_anonymous: bool = False
    cors_origins: frozenset[str] = frozenset()
    trusted_proxies: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.1/32"),)
    max_body: int = 64 * 1024
    demo_page: bool = False
    s3_timeout: float = 10.0
    cookie_secret: bytes = field(default=b"", repr=False)


def _integer(environ: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _flag(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _items(environ: Mapping[str, str], name: str) -> list[str]:
    return [item.strip() for item in environ.get(name, "").split(",") if item.strip()]


def _tokens(raw: str) -> tuple[tuple[str, bytes], ...]:
    tokens: list[tuple[str, bytes]] = []
    for number, item in enumerate((part.strip() for part in raw.split(",")), start=1):
        if not item:
            continue
        name, sep, token = item.partition(":")
        if not sep or not IDENTITY.fullmatch(name):
            raise ConfigError(
                f"SIGNER_API_TOKENS entry {number} must be name:token with a name of letters, digits, '.', '_', '@', '-'"
            )
        if name.lower() in ("anonymous", "user"):
            raise ConfigError(
                f"SIGNER_API_TOKENS: the name {name!r} is reserved (anonymous visitors and gateway users have "
                "their own folders <prefix>anonymous/ and <prefix>user/)"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"SIGNER_API_TOKENS token for {name!r} must be at least {MIN_TOKEN_LENGTH} characters")
        tokens.append((name, token.encode("utf-8")))
    if len({name for name, _ in tokens}) != len(tokens):
        raise ConfigError("SIGNER_API_TOKENS has the same name twice")
    return tuple(tokens)


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Build the whole configuration from ``environ`` (default: ``os.environ``)."""
    env = dict(os.environ if environ is None else environ)
    try:
        credentials = credentials_from_env(env)
        raw_tokens = read_secret(env, "SIGNER_API_TOKENS") or ""
        cookie_secret = read_secret(env, "SIGNER_COOKIE_SECRET")
    except InvalidCredentials as exc:
        raise ConfigError(exc.message) from None

    bucket_name = env.get("SIGNER_BUCKET", "").strip()
    if not bucket_name:
        raise ConfigError("SIGNER_BUCKET is required")
    endpoint = env.get("SIGNER_ENDPOINT_URL", "").strip() or None
    style = env.get("SIGNER_ADDRESSING_STYLE", "").strip().lower() or ("path" if endpoint else "virtual")
    if style not in ("virtual", "path"):
        raise ConfigError("SIGNER_ADDRESSING_STYLE must be 'virtual' or 'path'")
    region = env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip() or "us-east-1"
    try:
        bucket = Bucket(bucket_name, region, endpoint, style)
    except SigningError as exc:
        variable = {"invalid_bucket": "SIGNER_BUCKET"}.get(exc.code, "SIGNER_ENDPOINT_URL / AWS_REGION")
        raise ConfigError(f"{variable}: {exc.message}") from None

    prefix = env.get("SIGNER_KEY_PREFIX", "uploads/")
    if prefix and (not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/")):
        raise ConfigError("SIGNER_KEY_PREFIX must end with '/' and not start with '/' (e.g. 'uploads/')")
    types = tuple(t.lower() for t in _items(env, "SIGNER_ALLOWED_CONTENT_TYPES"))
    for media in types:
        if not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/([a-z0-9!#$&^_.+-]+|\*)|\*/\*", media):
            raise ConfigError(f"SIGNER_ALLOWED_CONTENT_TYPES: {media!r} is not type/subtype or type/*")
    methods = frozenset(m.upper() for m in _items(env, "SIGNER_ALLOWED_METHODS")) or frozenset({"GET", "PUT", "HEAD"})
    if not methods <= {"GET", "PUT", "HEAD", "DELETE"}:
        raise ConfigError("SIGNER_ALLOWED_METHODS may list only GET, PUT, HEAD and DELETE")
    acls = frozenset(_items(env, "SIGNER_ALLOWED_ACLS")) or frozenset({"private"})
    if not acls <= CANNED_ACLS:
        raise ConfigError(f"SIGNER_ALLOWED_ACLS may list only {', '.join(sorted(CANNED_ACLS))}")
    rules = Rules(
        key_prefix=prefix,
        max_size=_integer(env, "SIGNER_MAX_SIZE", None, 1, 5 * 1024**4),
        allowed_content_types=types,
        max_expires=_integer(env, "SIGNER_MAX_EXPIRES", 3600, 1, MAX_EXPIRES),  # type: ignore[arg-type]
        allowed_methods=methods,
        allowed_acls=acls,
        clock_skew=_integer(env, "SIGNER_CLOCK_SKEW", 900, 0, 3600),  # type: ignore[arg-type]
    )

    tokens = _tokens(raw_tokens)
    anonymous = _flag(env, "SIGNER_ALLOW_ANONYMOUS")
    user_header = env.get("SIGNER_USER_HEADER", "").strip() or None
    if user_header and not re.fullmatch(r"[A-Za-z0-9-]+", user_header):
        raise ConfigError("SIGNER_USER_HEADER must be a header name such as X-Auth-User")
    if not tokens and not anonymous and not user_header:
        raise ConfigError(
            "SIGNER_API_TOKENS is required (or SIGNER_USER_HEADER behind a gateway, or SIGNER_ALLOW_ANONYMOUS=true)"
        )
    origins = frozenset(o.rstrip("/") for o in _items(env, "SIGNER_CORS_ORIGINS"))
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"SIGNER_CORS_ORIGINS: {origin!r} must be scheme://host[:port]")
    try:
        proxies = tuple(
            ipaddress.ip_network(item, strict=False) for item in _items(env, "SIGNER_TRUSTED_PROXIES") or ["127.0.0.1"]
        )
    except ValueError as exc:
        raise ConfigError(f"SIGNER_TRUSTED_PROXIES: {exc}") from None
    return Config(
        credentials=credentials,
        bucket=bucket,
        rules=rules,
        api_tokens=tokens,
        user_header=user_header,
        allow_anonymous=anonymous,
        cors_origins=origins,
        trusted_proxies=proxies,
        max_body=_integer(env, "SIGNER_MAX_BODY", 64 * 1024, 1024, 10 * 1024 * 1024),  # type: ignore[arg-type]
        demo_page=_flag(env, "SIGNER_DEMO_PAGE"),
        s3_timeout=float(_integer(env, "SIGNER_S3_TIMEOUT", 10, 1, 300)),  # type: ignore[arg-type]
        cookie_secret=_cookie_secret(cookie_secret, credentials),
    )


def _cookie_secret(configured: str | None, credentials: Credentials) -> bytes:
    """SIGNER_COOKIE_SECRET, or one derived from the AWS secret key: every worker and replica
    with the same credentials derives the same one (a per-process random secret would not
    survive a request landing on another gunicorn worker), and the HMAC reveals nothing of
    the key. Rotating the key then starts anonymous visitors afresh."""
    if configured is not None:
        if len(configured) < 32:
            raise ConfigError("SIGNER_COOKIE_SECRET must be at least 32 characters")
        return configured.encode("utf-8")
    label = b"sigv4-signer anonymous visitor cookie v1"
    return hmac.new(credentials.secret_key.encode("utf-8"), label, hashlib.sha256).digest()
