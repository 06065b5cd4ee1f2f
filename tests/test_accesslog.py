"""The lean access-log atoms are gunicorn's own, for every atom a format without ``{...}`` can name."""

from __future__ import annotations

import ast
import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import Logger

from signer.service.web.accesslog import JsonAccessLogger, JsonAtoms


def _our_format() -> str:
    """access_log_format as gunicorn.conf.py sets it (read, not imported: importing it checks the environment)."""
    tree = ast.parse(Path("gunicorn.conf.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "access_log_format":
            return json.dumps(ast.literal_eval(node.value.args[0]))  # type: ignore[attr-defined]
    raise AssertionError("gunicorn.conf.py sets no access_log_format")


ACCESS_LOG_FORMAT = _our_format()


def _request() -> tuple[object, object, dict[str, object], dt.timedelta]:
    environ = {"REQUEST_METHOD": "POST", "RAW_URI": "/v1/presign?x=1", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": "/v1/presign", "QUERY_STRING": "x=1", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_USER_AGENT": 'ua "quoted"\\', "HTTP_REFERER": "http://x/", "HTTP_AUTHORIZATION": "Basic dTpw"}
    response = SimpleNamespace(status="201 CREATED", sent=578, headers=[("Content-Type", "application/json")])
    request = SimpleNamespace(headers=[("USER-AGENT", 'ua "quoted"\\')])
    return response, request, environ, dt.timedelta(seconds=1, microseconds=2345)


def test_fixed_atoms_are_gunicorns() -> None:
    """With our own format (a JSON object: braces, but no header or environ atom)."""
    cfg = GunicornConfig()
    cfg.set("access_log_format", ACCESS_LOG_FORMAT)
    ours = JsonAccessLogger(cfg).atoms(*_request())
    theirs = Logger(cfg).atoms(*_request())
    assert set(ours) == {"t", "h", "m", "U", "s", "B", "D", "a"}  # what our format names
    ours.pop("t"), theirs.pop("t")  # the clock moved between the two calls
    assert ours == {name: theirs[name] for name in ours}


def test_every_fixed_atom_is_gunicorns() -> None:
    cfg = GunicornConfig()
    names = [name for name in Logger(cfg).atoms(*_request()) if not name.startswith("{")]
    cfg.set("access_log_format", " ".join(f"%({name})s" for name in names))
    ours = JsonAccessLogger(cfg).atoms(*_request())
    theirs = Logger(cfg).atoms(*_request())
    ours.pop("t"), theirs.pop("t")
    assert ours == {name: theirs[name] for name in names if name != "t"}


def test_a_format_naming_a_header_gets_gunicorns_full_atoms() -> None:
    cfg = GunicornConfig()
    cfg.set("access_log_format", '{"agent": "%({user-agent}i)s"}')
    atoms = JsonAccessLogger(cfg).atoms(*_request())
    assert atoms["{user-agent}i"] == 'ua "quoted"\\'


def test_only_what_the_format_reads_is_escaped() -> None:
    atoms = JsonAtoms({"a": 'x"\\\n', "B": 5})
    assert atoms["a"] == 'x\\"\\\\\\n' and atoms["B"] == 5 and atoms["missing"] == "-"


@pytest.mark.parametrize("log_format", ["%(x)s", "no atom at all", '{"user": "%(zz)s", "when": "-"}'])
def test_a_format_naming_no_fixed_atom_logs_as_gunicorns_does(tmp_path, log_format) -> None:
    """A custom --access-logformat whose atoms are all unknown to gunicorn (or that names none):
    gunicorn writes '-' for each (its atoms dict is never empty). An empty dict of atoms made
    logging format the line with a tuple instead of the mapping, so every line was lost to a
    'Logging error' (review2)."""
    lines = {}
    for name, cls in (("ours", JsonAccessLogger), ("gunicorn", Logger)):
        cfg = GunicornConfig()
        cfg.set("access_log_format", log_format)
        cfg.set("accesslog", str(tmp_path / f"{name}.log"))
        logger = cls(cfg)
        logger.access(*_request())
        for handler in logger.access_log.handlers:
            handler.close()
        lines[name] = (tmp_path / f"{name}.log").read_text()
    assert lines["ours"] == lines["gunicorn"] and lines["ours"].count("\n") == 1
