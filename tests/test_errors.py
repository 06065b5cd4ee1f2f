"""The library's errors (signer/errors.py): one family, by meaning, each with one fixed code,
nothing about HTTP; every error the library raises on purpose is one of them."""

from __future__ import annotations

import ast
import inspect
import re

import pytest

import signer
from signer import errors
from tests.servers import ROOT

FAMILY = [value for _, value in inspect.getmembers(errors, inspect.isclass) if issubclass(value, errors.SigningError)]


def test_there_is_a_family() -> None:
    assert len(FAMILY) >= 8 and errors.SigningError in FAMILY


@pytest.mark.parametrize("error", FAMILY, ids=lambda error: error.__name__)
def test_each_error_has_its_own_code_and_keeps_its_message(error: type[errors.SigningError]) -> None:
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", error.code)
    others = [other for other in FAMILY if other.code == error.code and other is not error]
    assert others in ([], [errors.SigningError], [errors.InvalidInput]), others  # the base and InvalidInput share one
    raised = error("key must start with 'uploads/alice/'")
    assert raised.message == str(raised) == "key must start with 'uploads/alice/'"
    assert not isinstance(raised, ValueError | TypeError | KeyError)  # caught by meaning, never by accident
    assert not {"status", "status_code", "http_status"} & set(dir(raised))  # HTTP is the web layer's
    assert error.__name__ in signer.__all__


def test_the_library_raises_only_its_own_errors() -> None:
    """Every ``raise X(...)`` in the library (signer/*.py, the CLI aside) names a class of the
    family; a bare ``raise`` re-raises what it caught."""
    names = {error.__name__ for error in FAMILY}
    found: dict[str, set[str]] = {}
    for path in (ROOT / "signer").glob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
                found.setdefault(node.exc.func.id, set()).add(path.name)
    assert found, "nothing raised: the check sees nothing"
    assert set(found) <= names, {name: files for name, files in found.items() if name not in names}
