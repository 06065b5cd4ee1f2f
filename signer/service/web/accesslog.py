"""gunicorn's access log as one JSON object per line, whatever a client sends.

gunicorn fills ``access_log_format`` (a JSON template in gunicorn.conf.py) with raw request
values, escaping only double quotes: a backslash or a control character in a User-Agent or a
path would still break the JSON or start a forged line. Here every text value is JSON-escaped
(ASCII only) as the format reads it.

It is also cheap: gunicorn's own atoms are a dict of every request header, response header
and environ entry (about fifty values per request, each escaped). A format that names none
of those (no ``%({...}…)s`` atom, as ours) gets only the fixed atoms it names, and only those
are escaped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from gunicorn.glogging import Logger, SafeAtoms  # type: ignore[import-untyped]


def json_escaped(value: object) -> object:
    """The inside of a JSON string for ``value``: no raw quote, backslash, control or non-ASCII."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)[1:-1]
    return value


class JsonAtoms(SafeAtoms):  # type: ignore[misc]
    """gunicorn's atoms (unknown ones answer '-'), each made safe inside a JSON string when
    the format reads it."""

    def __init__(self, atoms: dict[str, object]) -> None:
        dict.__init__(self, atoms)  # no pass over every value: only what the format reads is escaped

    def __getitem__(self, name: str) -> object:
        return json_escaped(super().__getitem__(name))


def _seconds(time: Any) -> str:
    return f"{time.seconds}.{time.microseconds:06d}"


# gunicorn's fixed atoms (glogging.Logger.atoms), each made only when a format names it:
# name -> (logger, response, environ, request time) -> value.
_FIXED_ATOMS: dict[str, Callable[[Any, Any, dict[str, Any], Any], object]] = {
    "h": lambda log, resp, environ, time: environ.get("REMOTE_ADDR", "-"),
    "l": lambda log, resp, environ, time: "-",
    "u": lambda log, resp, environ, time: log._get_user(environ) or "-",
    "t": lambda log, resp, environ, time: log.now(),
    "r": lambda log, resp, environ, time: (
        f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} {environ['SERVER_PROTOCOL']}"),
    "s": lambda log, resp, environ, time: (
        resp.status.split(None, 1)[0] if isinstance(resp.status, str) else resp.status),
    "m": lambda log, resp, environ, time: environ.get("REQUEST_METHOD"),
    "U": lambda log, resp, environ, time: environ.get("PATH_INFO"),
    "q": lambda log, resp, environ, time: environ.get("QUERY_STRING"),
    "H": lambda log, resp, environ, time: environ.get("SERVER_PROTOCOL"),
    "b": lambda log, resp, environ, time: (
        str(resp.sent) if getattr(resp, "sent", None) is not None else "-"),
    "B": lambda log, resp, environ, time: getattr(resp, "sent", None),
    "f": lambda log, resp, environ, time: environ.get("HTTP_REFERER", "-"),
    "a": lambda log, resp, environ, time: environ.get("HTTP_USER_AGENT", "-"),
    "T": lambda log, resp, environ, time: time.seconds,
    "D": lambda log, resp, environ, time: time.seconds * 1000000 + time.microseconds,
    "M": lambda log, resp, environ, time: time.seconds * 1000 + int(time.microseconds / 1000),
    "L": lambda log, resp, environ, time: _seconds(time),
    "p": lambda log, resp, environ, time: f"<{os.getpid()}>",
}
_ATOM_NAME = re.compile(r"%\(([^)]*)\)")


@lru_cache(maxsize=8)
def _named_atoms(access_log_format: str) -> tuple[str, ...] | None:
    """The fixed atoms a format names, or None when it names a header or environ atom
    (``%({...}i)s``): then gunicorn's full set is needed."""
    names = _ATOM_NAME.findall(access_log_format)
    if any(name.startswith("{") for name in names):
        return None
    return tuple(dict.fromkeys(name for name in names if name in _FIXED_ATOMS))


class JsonAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's Logger with :class:`JsonAtoms`: set as ``logger_class`` in gunicorn.conf.py."""

    atoms_wrapper_class = JsonAtoms

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, object]:
        named = _named_atoms(self.cfg.access_log_format)
        # None: a header or environ atom; (): no fixed atom at all, and an empty dict would make
        # logging take the atoms as a tuple, not a mapping ('format requires a mapping').
        if not named:
            found: dict[str, object] = super().atoms(resp, req, environ, request_time)
            return found
        return {name: _FIXED_ATOMS[name](self, resp, environ, request_time) for name in named}
