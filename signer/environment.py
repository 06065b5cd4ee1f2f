"""Settings read from environment variables: one parser per kind of value, shared by the
credential chain (:mod:`signer.providers`) and the service's configuration. Each refusal is an
:class:`~signer.errors.InvalidSetting` naming the variable; secrets are read by
:func:`signer.credentials.read_secret`, never here, so no message can echo one."""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import InvalidSetting

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
_WHOLE_NUMBER = re.compile(r"-?[0-9]+")


def text(environ: Mapping[str, str], name: str) -> str | None:
    """The value without surrounding blanks; None when unset or blank."""
    return environ.get(name, "").strip() or None


def items(environ: Mapping[str, str], name: str) -> list[str]:
    """A comma list, blanks dropped."""
    return [item.strip() for item in environ.get(name, "").split(",") if item.strip()]


def flag(environ: Mapping[str, str], name: str) -> bool:
    """true/false (also 1/0, yes/no, on/off; unset is false): anything else is refused, not
    read as false, so a typo cannot silently turn a setting off."""
    raw = environ.get(name, "").strip().lower()
    if raw in _FALSE:
        return False
    if raw in _TRUE:
        return True
    raise InvalidSetting(f"{name} must be true or false, got {raw!r}")


def optional_integer(environ: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    """A whole number (ASCII digits) in ``low..high``; None when unset."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not _WHOLE_NUMBER.fullmatch(raw):
        raise InvalidSetting(f"{name} must be a whole number, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise InvalidSetting(f"{name} must be between {low} and {high}, got {value}")
    return value


def integer(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """:func:`optional_integer` with a default."""
    value = optional_integer(environ, name, low, high)
    return default if value is None else value


def choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    """One of ``choices`` (any letter case, answered lower-case); ``default`` when unset."""
    value = (environ.get(name, "").strip().lower()) or default
    if value not in choices:
        raise InvalidSetting(f"{name} must be {' or '.join(repr(option) for option in choices)}")
    return value
