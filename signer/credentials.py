"""The credentials value, what a provider of them is, and loading them from the environment or
from secret files.

Temporary credentials from the platform (web identity, container, instance metadata) are
fetched in :mod:`signer.providers` and kept fresh by :mod:`signer.refresh`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from .errors import InvalidCredentials

_ACCESS_KEY = re.compile(r"[\x21-\x2e\x30-\x7e]{1,128}")  # printable ASCII, no space, no '/'
_TOKEN = re.compile(r"[\x20-\x7e]+")


@dataclass(frozen=True)
class Credentials:
    """Access key, secret, optional session token and, for temporary credentials, when
    they expire (aware UTC). ``repr`` never shows the secret or the token, so a
    credentials object can be logged or shown in a traceback."""

    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.access_key, str) or not _ACCESS_KEY.fullmatch(self.access_key):
            raise InvalidCredentials(
                "access key must be 1-128 printable ASCII characters without spaces or '/'"
            )
        if not isinstance(self.secret_key, str) or not self.secret_key:
            raise InvalidCredentials("secret key must be a non-empty string")
        if self.session_token is not None and (
            not isinstance(self.session_token, str) or not _TOKEN.fullmatch(self.session_token)
        ):
            raise InvalidCredentials("session token must be non-empty printable ASCII")
        if self.expiration is not None and (
            not isinstance(self.expiration, datetime) or self.expiration.utcoffset() is None
        ):
            raise InvalidCredentials("expiration must be a timezone-aware datetime")

    def __repr__(self) -> str:
        token = ", session_token=<set>" if self.session_token else ""
        expires = f", expiration={self.expiration.isoformat()}" if self.expiration else ""
        return f"Credentials(access_key={self.access_key!r}, secret_key=<hidden>{token}{expires})"


class Provider(Protocol):
    """Gives a fresh set of credentials each time ``fetch`` is called."""

    @property
    def name(self) -> str: ...

    def fetch(self, now: datetime) -> Credentials: ...


def read_secret(environ: Mapping[str, str], name: str) -> str | None:
    """``NAME`` from the environment, or the contents of the file named by ``NAME_FILE``
    (container secrets). Setting both is ambiguous and refused."""
    direct = environ.get(name)
    path = environ.get(f"{name}_FILE")
    if direct is not None and path is not None:
        raise InvalidCredentials(f"set only one of {name} and {name}_FILE")
    if path is None:
        return direct or None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidCredentials(f"{name}_FILE: cannot read {path!r} ({type(exc).__name__})") from None
    return text.strip() or None


def credentials_from_env(environ: Mapping[str, str]) -> Credentials:
    """AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN (each or its _FILE)."""
    access_key = read_secret(environ, "AWS_ACCESS_KEY_ID")
    secret_key = read_secret(environ, "AWS_SECRET_ACCESS_KEY")
    if not access_key:
        raise InvalidCredentials("AWS_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID_FILE) is required")
    if not secret_key:
        raise InvalidCredentials("AWS_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY_FILE) is required")
    try:
        return Credentials(access_key, secret_key, read_secret(environ, "AWS_SESSION_TOKEN"))
    except InvalidCredentials as exc:
        raise InvalidCredentials(f"AWS credentials: {exc.message}") from None
