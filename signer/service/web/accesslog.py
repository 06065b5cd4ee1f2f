"""gunicorn's access log as one JSON object per line, whatever a client sends.

gunicorn fills ``access_log_format`` (a JSON template in gunicorn.conf.py) with raw request
values, escaping only double quotes: a backslash or a control character in a User-Agent or a
path would still break the JSON or start a forged line. Here every text value is JSON-escaped
(ASCII only) as the format reads it.

It is also cheap: gunicorn's own atoms are a dict of every request header, response header
and environ entry (about fifty values per request, each escaped). A format that names none
of those (no ``%({...}…)s`` atom, as ours) gets only the dozen fixed atoms, and only the ones the
format reads are escaped.
"""

from __future__ import annotations

import json
import os
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


class JsonAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's Logger with :class:`JsonAtoms`: set as ``logger_class`` in gunicorn.conf.py."""

    atoms_wrapper_class = JsonAtoms

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict[str, object]:
        if "%({" in self.cfg.access_log_format:  # a header or environ atom: gunicorn's full set
            found: dict[str, object] = super().atoms(resp, req, environ, request_time)
            return found
        status = resp.status
        sent = getattr(resp, "sent", None)
        method = environ.get("REQUEST_METHOD")
        return {
            "h": environ.get("REMOTE_ADDR", "-"),
            "l": "-",
            "u": self._get_user(environ) or "-",
            "t": self.now(),
            "r": f"{method} {environ.get('RAW_URI')} {environ.get('SERVER_PROTOCOL')}",
            "s": status.split(None, 1)[0] if isinstance(status, str) else status,
            "m": method,
            "U": environ.get("PATH_INFO"),
            "q": environ.get("QUERY_STRING"),
            "H": environ.get("SERVER_PROTOCOL"),
            "b": str(sent) if sent is not None else "-",
            "B": sent,
            "f": environ.get("HTTP_REFERER", "-"),
            "a": environ.get("HTTP_USER_AGENT", "-"),
            "T": request_time.seconds,
            "D": request_time.seconds * 1000000 + request_time.microseconds,
            "M": request_time.seconds * 1000 + request_time.microseconds // 1000,
            "L": f"{request_time.seconds}.{request_time.microseconds:06d}",
            "p": f"<{os.getpid()}>",
        }
