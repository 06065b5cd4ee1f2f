"""One exception family for the whole project.

Every error carries a machine-readable ``code`` and the HTTP ``status`` the
service answers with, so the Flask layer maps them in a single handler.
Messages name the field and the rule; they never contain secrets.
"""

from __future__ import annotations


class SigningError(ValueError):
    """Base of every error this project raises on purpose."""

    status: int = 400
    code: str = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


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
    code = "invalid_credentials"


class RuleViolation(SigningError):
    """The request is well formed but outside what the service may sign."""

    status = 403
    code = "forbidden"


class Unauthorized(SigningError):
    status = 401
    code = "unauthorized"


class ConfigError(SigningError):
    """Bad or missing configuration; the service refuses to start."""

    code = "config_error"
