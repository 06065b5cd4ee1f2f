"""gunicorn's access log as one JSON object per line, whatever a client sends.

gunicorn fills ``access_log_format`` (a JSON template in gunicorn.conf.py) with raw request
values, escaping only double quotes: a backslash or a control character in a User-Agent or a
path would still break the JSON or start a forged line. Here every text value is JSON-escaped
(ASCII only) before it is put in.
"""

from __future__ import annotations

import json

from gunicorn.glogging import Logger, SafeAtoms  # type: ignore[import-untyped]


def json_escaped(value: object) -> object:
    """The inside of a JSON string for ``value``: no raw quote, backslash, control or non-ASCII."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=True)[1:-1]
    return value


class JsonAtoms(SafeAtoms):  # type: ignore[misc]
    """gunicorn's atoms (unknown ones answer '-'), each safe inside a JSON string."""

    def __init__(self, atoms: dict[str, object]) -> None:
        dict.__init__(self, {name: json_escaped(value) for name, value in atoms.items()})


class JsonAccessLogger(Logger):  # type: ignore[misc]
    """gunicorn's Logger with :class:`JsonAtoms`: set as ``logger_class`` in gunicorn.conf.py."""

    atoms_wrapper_class = JsonAtoms
