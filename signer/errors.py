"""The library's errors, by meaning (as itsdangerous' ``exc.py``).

Each class has one fixed machine-readable ``code``; none knows about HTTP. The service
maps codes to statuses in one table (:mod:`signer.service.errors`). Messages name the
field and the rule; they never contain secrets.
"""

from __future__ import annotations


class SigningError(Exception):
    """Base of every error the library raises on purpose."""

    code: str = "invalid_input"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(SigningError):
    """The caller passed something that cannot be signed as asked."""

    code = "invalid_input"


class InvalidExpiry(InvalidInput):
    code = "invalid_expiry"


class InvalidTime(InvalidInput):
    code = "invalid_time"


class InvalidHeader(InvalidInput):
    code = "invalid_header"


class InvalidBucket(InvalidInput):
    code = "invalid_bucket"


class InvalidKey(InvalidInput):
    code = "invalid_key"


class InvalidCredentials(SigningError):
    """Credentials that cannot sign: malformed, unreadable, or not to be had."""

    code = "invalid_credentials"


class CredentialsUnavailable(SigningError):
    """The provider could not give credentials and the last ones have expired: nothing is
    signed until a refresh succeeds (fail closed)."""

    code = "credentials_unavailable"


class InvalidSetting(SigningError):
    """An environment variable's value is not one the setting takes (raised at start-up)."""

    code = "invalid_setting"
