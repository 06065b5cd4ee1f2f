"""Strict JSON request bodies, without Flask: the Flask views (web/context.py) and the
lean presign path (web/lean.py) parse the very same way."""

from __future__ import annotations

import json
import re
from collections.abc import Set
from typing import Any

from .errors import Malformed

# A lone surrogate can only come from a \uD800-\uDFFF escape (strict UTF-8 decoding refuses
# encoded ones), so bodies without such an escape skip the walk over every string.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # rare: find the name to report
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise Malformed("invalid_json", f"JSON has the key {name!r} twice")
            seen.add(name)
    return result


def _no_constants(name: str) -> Any:
    raise Malformed("invalid_json", f"JSON must not contain {name}")


# Made once: json.loads(..., object_pairs_hook=...) builds a new decoder and scanner per call.
# Like json's own default decoder, it keeps no state between calls and threads share it.
_STRICT_JSON = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constants)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """Strict JSON: UTF-8, an object at the top, no duplicate keys, no NaN/Infinity.
    Duplicates matter: S3 and Python might pick different values of a repeated key."""
    try:
        text = body.decode("utf-8")
        document = _STRICT_JSON.decode(text)
    except (UnicodeDecodeError, ValueError):
        raise Malformed("invalid_json", "request body could not be parsed as UTF-8 JSON") from None
    except RecursionError:
        raise Malformed("invalid_json", "request body is nested too deeply") from None
    if not isinstance(document, dict):
        raise Malformed("invalid_json", "request body must be a JSON object")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        _check_unicode(document, "body")
    return document


def _check_unicode(value: Any, where: str) -> None:
    """JSON's ``\\ud800`` escapes decode to lone surrogates, which no UTF-8 encoder takes:
    refuse them here, at the edge, rather than fail deep inside signing."""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise Malformed("invalid_input", f"{where} is not valid unicode (lone surrogate)") from None
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_unicode(name, "a field name")
            _check_unicode(item, f"field {name!r}" if where == "body" else where)
    elif isinstance(value, list):
        for item in value:
            _check_unicode(item, where)


def checked_fields(body: dict[str, Any], allowed: Set[str]) -> dict[str, Any]:
    """``body`` when it has only the ``allowed`` fields, none of them null (so an absent
    field and a null one can never be confused). The two tests are C-level set and ``in``
    checks (a JSON value equals None only when it is null); the names are sorted for a refusal only."""
    if not body.keys() <= allowed:
        unknown = sorted(set(body) - allowed)
        raise Malformed("unknown_field", f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    if None in body.values():
        nulls = sorted(name for name, value in body.items() if value is None)
        raise Malformed("invalid_input", f"{', '.join(nulls)} must not be null; leave a field out instead")
    return body
