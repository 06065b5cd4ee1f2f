"""The lean request path refuses what the strict one did: the shortcuts in context.py (the plain
Content-Type comparison first) and the CORS hooks reading the environ directly; the strict JSON
parser's shortcuts are tested in tests/test_jsonbody.py."""

from __future__ import annotations

import io
import json

import pytest

from tests.conftest import ALICE_TOKEN, BOB_TOKEN, bearer, env_with

PUT = {"method": "PUT", "key": "uploads/alice/cat.png", "content_type": "image/png", "content_length": 10}


def post_raw(client, text: str, content_type: str = "application/json", **headers: str):
    return client.post("/v1/presign", data=text.encode("utf-8"), headers={**bearer(), "Content-Type": content_type,
                                                                            **headers})


def test_content_type_with_parameters_and_other_types(client) -> None:
    assert post_raw(client, json.dumps(PUT), "application/json; charset=utf-8").status_code == 200
    assert post_raw(client, json.dumps(PUT), "Application/JSON").status_code == 200
    assert post_raw(client, json.dumps(PUT), "text/plain").status_code == 415


def test_cors_hooks_without_and_with_an_origin(client) -> None:
    plain = post_raw(client, json.dumps(PUT))
    assert "Access-Control-Allow-Origin" not in plain.headers
    assert plain.headers["Cache-Control"] == "no-store" and plain.headers["X-Content-Type-Options"] == "nosniff"
    allowed = post_raw(client, json.dumps(PUT), Origin="https://app.example")
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert allowed.headers["Vary"] == "Origin"  # a cache must not hand one origin's answer to another
    assert "Vary" not in plain.headers
    not_preflight = client.options("/v1/presign", headers={"Origin": "https://app.example"})
    assert not_preflight.status_code != 204  # no Access-Control-Request-Method: not a preflight


# --- the lean presign path (web/lean.py) against the Flask view, request by request ---------

GOOD = json.dumps(PUT)
# (name, configuration overrides, headers, body, environ extras, answered by the lean path?)
CASES = [
    ("put", {}, {}, GOOD, {}, True),
    ("unicode key and expiry", {}, {}, json.dumps({**PUT, "key": "uploads/alice/café ü 📷.png", "expires_in": 60}),
     {}, True),
    ("get", {}, {}, json.dumps({"method": "GET", "key": "uploads/alice/a b.png"}), {}, True),
    ("delete and head", {}, {}, json.dumps({"method": "HEAD", "key": "uploads/alice/x"}), {}, True),
    ("filename", {}, {}, json.dumps({"method": "PUT", "filename": "Cat.PNG", "content_type": "image/png",
                                     "content_length": 3}), {}, True),
    ("other token", {}, bearer(BOB_TOKEN), json.dumps({**PUT, "key": "uploads/bob/cat.png"}), {}, True),
    ("allowed origin", {}, {"Origin": "https://app.example"}, GOOD, {}, True),
    ("other origin", {}, {"Origin": "https://evil.example"}, GOOD, {}, True),
    ("gateway user", {"SIGNER_USER_HEADER": "X-Auth-User", "SIGNER_TRUSTED_PROXIES": "10.0.0.5"},
     {"X-Auth-User": "carol", "X-Forwarded-Proto": "https"},
     json.dumps({**PUT, "key": "uploads/user/carol/cat.png"}), {"REMOTE_ADDR": "10.0.0.5"}, True),
    ("gateway user from an untrusted peer", {"SIGNER_USER_HEADER": "X-Auth-User", "SIGNER_TRUSTED_PROXIES": "10.0.0.5"},
     {"X-Auth-User": "carol", "Authorization": ""}, json.dumps({**PUT, "key": "uploads/user/carol/cat.png"}),
     {"REMOTE_ADDR": "10.9.9.9"}, False),
    ("no token", {}, {"Authorization": ""}, GOOD, {}, False),
    ("wrong token", {}, {"Authorization": "Bearer nope"}, GOOD, {}, False),
    ("other user's folder", {}, {}, json.dumps({**PUT, "key": "uploads/bob/cat.png"}), {}, False),
    ("type not allowed", {}, {}, json.dumps({**PUT, "content_type": "text/html"}), {}, False),
    ("too big", {}, {}, json.dumps({**PUT, "content_length": 10**9}), {}, False),
    ("unknown field", {}, {}, json.dumps({**PUT, "acl": "public-read"}), {}, False),
    ("null field", {}, {}, json.dumps({**PUT, "expires_in": None}), {}, False),
    ("duplicate key", {}, {}, GOOD[:-1] + ', "key": "uploads/alice/b.png"}', {}, False),
    ("not json", {}, {}, "{nope", {}, False),
    ("lone surrogate", {}, {}, GOOD.replace("cat.png", "cat\\ud800.png"), {}, False),
    ("body over SIGNER_MAX_BODY", {"SIGNER_MAX_BODY": "1024"}, {},
     json.dumps({**PUT, "key": "uploads/alice/" + "x" * 1000 + ".png"}), {}, False),
    ("json with parameters", {}, {"Content-Type": "application/json; charset=utf-8"}, GOOD, {}, False),
    # Flask's routing refuses a Host whose name IDNA cannot encode (werkzeug BadHost, a 400):
    # the lean path must not sign where Flask refuses (review2).
    ("host with an empty label", {}, {"Host": "a..b"}, GOOD, {}, False),
    ("host with a 64-letter label", {}, {"Host": "x" * 64 + ".example"}, GOOD, {}, False),
    ("forwarded host with an empty label from a trusted proxy", {"SIGNER_TRUSTED_PROXIES": "10.0.0.5"},
     {"X-Forwarded-Host": "a..b"}, GOOD, {"REMOTE_ADDR": "10.0.0.5"}, False),
    ("host with a port and capitals", {}, {"Host": "Signer.Example:8443"}, GOOD, {}, True),
    ("host with characters werkzeug ignores", {}, {"Host": "exa mple"}, GOOD, {}, True),
    # Werkzeug takes a chunked body as one without a length (gunicorn refuses both at once,
    # other servers may not): Flask decides.
    ("chunked with a content length", {}, {}, GOOD, {"HTTP_TRANSFER_ENCODING": "chunked"}, False),
    # More digits than int() takes (4300): werkzeug reads it as 0; gunicorn refuses it, other servers may not.
    ("content length of 5000 digits", {}, {}, GOOD, {"CONTENT_LENGTH": "0" * 5000 + str(len(GOOD))}, False),
    ("content length with leading zeros", {}, {}, GOOD, {"CONTENT_LENGTH": "000" + str(len(GOOD))}, True),
    ("anonymous visitor", {"SIGNER_API_TOKENS": None, "SIGNER_ALLOW_ANONYMOUS": "true",
                           "SIGNER_COOKIE_SECRET": "c" * 32}, {"Authorization": ""},
     json.dumps({"method": "PUT", "filename": "a.png", "content_type": "image/png", "content_length": 3}), {}, False),
]


@pytest.mark.parametrize(("name", "overrides", "headers", "body", "extra", "lean_answers"), CASES,
                         ids=[case[0] for case in CASES])
def test_lean_path_answers_as_flask_does(monkeypatch, caplog, name, overrides, headers, body, extra,
                                         lean_answers) -> None:
    import logging
    import secrets
    import uuid

    from freezegun import freeze_time

    from signer.service.config import load_config
    from signer.service.web.app import create_app

    cfg = load_config(env_with(**overrides))
    lean_app, flask_app = create_app(cfg), create_app(cfg, lean=False)
    lean = lean_app.wsgi_app.direct  # type: ignore[attr-defined]  # TrustedProxies -> LeanPresign
    handed_on = []
    inner = lean.app
    lean.app = lambda environ, start_response: handed_on.append(1) or inner(environ, start_response)
    monkeypatch.setattr(uuid, "uuid4", lambda: uuid.UUID(int=7))  # the same generated key on both sides
    monkeypatch.setattr(secrets, "token_urlsafe", lambda size: "v" * size)  # and the same visitor id
    sent = {"Content-Type": "application/json", **bearer(), **headers}
    sent = {name: value for name, value in sent.items() if value}
    answers = []
    for app in (lean_app, flask_app):
        caplog.clear()
        with freeze_time("2026-11-23T10:00:00Z"), caplog.at_level(logging.INFO, logger="signer"):
            response = app.test_client().post("/v1/presign", data=body.encode(), headers=sent,
                                                  environ_overrides=extra)
        answers.append((response.status, list(response.headers.items()), response.get_data(),
                        [record.getMessage() for record in caplog.records if record.name == "signer"]))
    assert answers[0] == answers[1]
    assert (not handed_on) is lean_answers, "the lean path answered what it should have handed to Flask, or not"
    assert (answers[0][0] == "200 OK") is lean_answers or name in ("json with parameters", "anonymous visitor")


HOOK_KINDS = ("before_request_funcs", "after_request_funcs", "teardown_request_funcs", "url_value_preprocessors",
              "url_default_functions")


def flask_hooks(app) -> dict[str, dict[str | None, list[object]]]:
    """Every per-request hook of a Flask app, the app's and its blueprints', by kind."""
    return {kind: {owner: list(funcs) for owner, funcs in getattr(app, kind).items() if funcs} for kind in HOOK_KINDS}


@pytest.mark.parametrize("overrides", [{}, {"SIGNER_DEMO_PAGE": "true"},
                                       {"SIGNER_API_TOKENS": None, "SIGNER_ALLOW_ANONYMOUS": "true",
                                        "SIGNER_COOKIE_SECRET": "c" * 32}], ids=["tokens", "demo page", "anonymous"])
def test_every_flask_hook_is_one_the_lean_path_accounts_for(overrides) -> None:
    """A concern added as a Flask hook runs on Flask's answers only, so the lean path would skip
    it silently (issue #21). The app's hooks must be exactly these, each accounted for: the
    CORS preflight (OPTIONS, never the lean path's), the envelope's headers (the lean path
    writes the same envelope.answer_headers) and the visitor cookie (anonymous mode, where the
    lean path stands aside). A new hook fails here: put its work in web/envelope.py and call it
    from both paths, or have the lean path hand such requests to Flask; then list it here."""
    from signer.service.config import load_config
    from signer.service.web.app import cors_headers, cors_preflight, create_app
    from signer.service.web.context import issue_visitor_cookie

    app = create_app(load_config(env_with(**overrides)))
    assert flask_hooks(app) == {
        "before_request_funcs": {None: [cors_preflight]}, "after_request_funcs": {None: [cors_headers, issue_visitor_cookie]},
        "teardown_request_funcs": {}, "url_value_preprocessors": {}, "url_default_functions": {},
    }


def test_a_new_hook_shows_in_the_census_and_in_the_comparison() -> None:
    """The two checks above can fail: a header hook added to the app is listed by flask_hooks,
    and the lean path's answer then lacks its header where Flask's has it."""
    from signer.service.config import load_config
    from signer.service.web.app import create_app

    def extra_header(response):
        response.headers["X-New-Concern"] = "1"
        return response

    cfg = load_config(env_with())
    lean_app, flask_app = create_app(cfg), create_app(cfg, lean=False)
    for app in (lean_app, flask_app):
        app.after_request(extra_header)
    assert extra_header in flask_hooks(lean_app)["after_request_funcs"][None]
    sent = {"Content-Type": "application/json", **bearer()}
    lean, flask = (app.test_client().post("/v1/presign", data=GOOD.encode(), headers=sent) for app in (lean_app, flask_app))
    assert lean.status_code == flask.status_code == 200
    assert "X-New-Concern" in flask.headers and "X-New-Concern" not in lean.headers


class _MustNotBeRead(io.BytesIO):
    def read(self, *args: object) -> bytes:  # noqa: ARG002 - BytesIO.read's signature
        raise AssertionError("the body of an unauthenticated request was read")


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic eDp5"])
def test_an_unknown_caller_is_refused_before_its_body_is_read(authorization) -> None:
    """The Flask view identifies the caller before it reads the body, so a client without a
    valid token cannot hold a worker thread by sending a Content-Length and no body (review2:
    the lean path read the body first, and a stalled unauthenticated client waited forever)."""
    from werkzeug.test import EnvironBuilder

    from signer.service.config import load_config
    from signer.service.web.app import create_app

    app = create_app(load_config(env_with()))
    headers = {"Content-Type": "application/json", **({"Authorization": authorization} if authorization else {})}
    environ = EnvironBuilder(path="/v1/presign", method="POST", data=GOOD.encode(), headers=headers).get_environ()
    environ["wsgi.input"] = _MustNotBeRead(GOOD.encode())
    answered = []
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answered.append(status)))  # noqa: ARG005 - WSGI's
    assert answered == ["401 UNAUTHORIZED"] and json.loads(body)["code"] == "unauthorized"


def test_under_gunicorn_a_stalled_unauthenticated_body_and_a_bad_host_get_flasks_answers(tmp_path) -> None:
    """Real gunicorn (gunicorn.conf.py and its front): an unauthenticated client that promises a
    body and sends none holds no thread; the front waits for the whole request and answers 408 at
    SIGNER_REQUEST_TIMEOUT, before the app (which would refuse the caller before reading a body)
    sees it. A Host IDNA cannot encode is refused as Flask does."""
    import os
    import socket
    import sys

    from tests.servers import free_port, running

    def exchange(port: int, head: str, body: bytes = b"") -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head.encode("latin-1") + body)
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return answer

    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", "wsgi:app"]
    with running(command, f"http://127.0.0.1:{port}/healthz", env={**os.environ, **env_with(SIGNER_REQUEST_TIMEOUT="1")},
                 log_path=tmp_path / "gunicorn.log"):
        stalled = exchange(port, "POST /v1/presign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 100\r\nConnection: close\r\n\r\n", b'{"method"')
        bad_host = exchange(port, "POST /v1/presign HTTP/1.1\r\nHost: a..b\r\nContent-Type: application/json\r\n"
                                  f"Authorization: Bearer {ALICE_TOKEN}\r\nContent-Length: {len(GOOD)}\r\n"
                                  "Connection: close\r\n\r\n", GOOD.encode())
    assert stalled.startswith(b"HTTP/1.1 408 ") and b'"request_timeout"' in stalled
    assert bad_host.startswith(b"HTTP/1.1 400 ") and b'"invalid_input"' in bad_host and b"X-Amz-" not in bad_host


def _raw_exchange(port: int, request: bytes, half_close: bool = False) -> bytes:
    """One request on its own connection, the answer with what varies between two servers
    (Date, the signing second) blanked out."""
    import re
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return re.sub(rb"(?i:date): [^\r]*\r\n|X-Amz-Signature=[0-9a-f]+|X-Amz-Date=[0-9TZ]+|%2F[0-9]{8}%2F|"
                  rb'"expires_at": "[^"]*"', b"~", answer)


def _raw_request(headers: dict[str, str | list[str] | None], body: bytes = GOOD.encode(), target: str = "/v1/presign",
                 version: str = "HTTP/1.1") -> bytes:
    sent: dict[str, str | list[str] | None] = {
        "Host": "127.0.0.1", "Content-Type": "application/json", "Authorization": f"Bearer {ALICE_TOKEN}",
        "Content-Length": str(len(body)), "Connection": "close", **headers}
    lines = [f"POST {target} {version}"]
    for name, value in sent.items():
        lines += [f"{name}: {item}" for item in ([] if value is None else [value] if isinstance(value, str) else value)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


RAW_CASES = {
    "plain": _raw_request({}),
    "host with an empty label": _raw_request({"Host": "a..b"}),
    "host with a 64-letter label": _raw_request({"Host": "x" * 64 + ".example"}),
    "latin-1 host": _raw_request({"Host": "\xe9.example"}),
    "forwarded host with an empty label": _raw_request({"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Host": "a..b"}),
    "content length with leading zeros": _raw_request({"Content-Length": f"000{len(GOOD)}"}),
    "content length +n": _raw_request({"Content-Length": f"+{len(GOOD)}"}),
    "content length twice": _raw_request({"Content-Length": [str(len(GOOD))] * 2}),
    "content length and chunked": _raw_request({"Transfer-Encoding": "chunked"}),
    "chunked": _raw_request({"Transfer-Encoding": "chunked", "Content-Length": None},
                            b"%x\r\n%s\r\n0\r\n\r\n" % (len(GOOD), GOOD.encode())),
    "content type twice": _raw_request({"Content-Type": ["application/json"] * 2}),
    "authorization twice": _raw_request({"Authorization": [f"Bearer {ALICE_TOKEN}"] * 2}),
    "wrong token": _raw_request({"Authorization": "Bearer nope"}),
    "double slash": _raw_request({}, target="//v1/presign"),
    "percent-encoded path": _raw_request({}, target="/v1/%70resign"),
    "trailing slash": _raw_request({}, target="/v1/presign/"),
    "absolute form": _raw_request({}, target="http://other.example/v1/presign"),
    "HTTP/1.0 without Host": _raw_request({"Host": None}, version="HTTP/1.0"),
    "allowed origin": _raw_request({"Origin": "https://app.example"}),
    "null origin": _raw_request({"Origin": "null"}),
    "expect 100-continue": _raw_request({"Expect": "100-continue"}),
    "gzip content encoding": _raw_request({"Content-Encoding": "gzip"}),
    "unknown field": _raw_request({}, json.dumps({**PUT, "acl": "public-read"}).encode()),
}
HALF_CLOSED = {  # the client promises 20 bytes more than it sends, then closes its side
    "short valid body": _raw_request({"Content-Length": str(len(GOOD) + 20)}),
    "short body, no token": _raw_request({"Content-Length": str(len(GOOD) + 20), "Authorization": None}),
}


def test_under_gunicorn_the_lean_path_answers_and_logs_as_flask_does(tmp_path) -> None:
    """The same raw requests to gunicorn (gunicorn.conf.py) serving the app with and without the
    lean path: the same answers, byte for byte but for the date and signature, and the same
    access-log lines but for time and duration (review2)."""
    import os
    import sys

    from tests.servers import free_port, running

    answers, access = {}, {}
    for name, target in (("lean", "wsgi:app"), ("flask", "signer.service.web.app:create_app(lean=False)")):
        port = free_port()
        command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                   "--workers", "1", target]
        log = tmp_path / f"{name}.log"
        with running(command, f"http://127.0.0.1:{port}/healthz", env={**os.environ, **env_with()}, log_path=log):
            answers[name] = {case: _raw_exchange(port, request) for case, request in RAW_CASES.items()}
            answers[name].update({case: _raw_exchange(port, request, half_close=True)
                                  for case, request in HALF_CLOSED.items()})
        lines = [json.loads(line) for line in log.read_text(errors="replace").splitlines()
                 if line.startswith("{") and not line.startswith('{"front"')]  # gunicorn's access log only
        # sorted: each thread logs after it has answered, so two requests in a row may log in either order
        access[name] = sorted(json.dumps({key: value for key, value in line.items() if key not in ("time", "duration_us")},
                                         sort_keys=True)
                              for line in lines if line["path"] != "/healthz")  # the readiness polls vary
    for case in answers["lean"]:
        assert answers["lean"][case] == answers["flask"][case], case
    assert answers["lean"]["plain"].startswith(b"HTTP/1.1 200 ")
    # what the front refuses itself (two lengths, a length and chunked, "+n") never reaches gunicorn
    reached = [case for case, answer in answers["lean"].items() if b"server: gunicorn" in answer]
    assert access["lean"] == access["flask"] and len(access["lean"]) >= len(reached) >= len(RAW_CASES) - 4
