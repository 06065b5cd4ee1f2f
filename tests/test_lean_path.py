"""The lean request path refuses what the strict one did: the shortcuts in context.py
(duplicate keys found by counting, the surrogate walk only when the body has such an escape,
the plain Content-Type comparison first) and the CORS hooks reading the environ directly."""

from __future__ import annotations

import io
import json

import pytest

from tests.conftest import ALICE_TOKEN, BOB_TOKEN, bearer, env_with

PUT = {"method": "PUT", "key": "uploads/alice/cat.png", "content_type": "image/png", "content_length": 10}


def post_raw(client, text: str, content_type: str = "application/json", **headers: str):
    return client.post("/v1/presign", data=text.encode("utf-8"), headers={**bearer(), "Content-Type": content_type,
                                                                            **headers})


@pytest.mark.parametrize(
    "text",
    [
        '{"method": "PUT", "method": "GET", "key": "uploads/alice/a.png", "content_type": "a/b", "content_length": 1}',
        '{"method": "PUT", "key": "a.png", "content_type": "image/png", "content_length": 1, "key": "b.png"}',
        '{"method": "PUT", "key": "uploads/alice/cat.png", "content_type": "image/png", "content_length": NaN}',
        '{"method": "PUT", "key": "uploads/alice/cat.png", "content_type": "image/png", "content_length": -Infinity}',
        '["not", "an", "object"]',
    ],
)
def test_not_strict_json_is_refused(client, text: str) -> None:
    response = post_raw(client, text)
    assert response.status_code == 400 and response.json["code"] == "invalid_json"


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDFFF", "\\uDbff"])
@pytest.mark.parametrize("where", ["key", "name"])
def test_lone_surrogate_escapes_are_refused_in_any_case(client, escape: str, where: str) -> None:
    body = json.dumps(PUT)
    text = body.replace("cat.png", f"cat{escape}.png") if where == "key" else body[:-1] + f', "x{escape}": 1}}'
    response = post_raw(client, text)
    assert response.status_code == 400 and response.json["code"] == "invalid_input"


def test_a_valid_surrogate_pair_and_an_escaped_backslash_pass(client) -> None:
    pair = post_raw(client, json.dumps(PUT).replace("cat.png", "cat\\ud83d\\udcf7.png"))
    assert pair.status_code == 200 and pair.json["key"] == "uploads/alice/cat\U0001f4f7.png"
    backslash = post_raw(client, json.dumps({**PUT, "key": "uploads/alice/c\\ud800.png"}))  # a backslash, then 'ud800'
    assert backslash.status_code == 200


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


class _MustNotBeRead(io.BytesIO):
    def read(self, *args: object) -> bytes:
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
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answered.append(status)))
    assert answered == ["401 UNAUTHORIZED"] and json.loads(body)["code"] == "unauthorized"


def test_under_gunicorn_a_stalled_unauthenticated_body_and_a_bad_host_get_flasks_answers(tmp_path) -> None:
    """Real gunicorn (gunicorn.conf.py and its worker): an unauthenticated client that promises a
    body and sends none holds no thread; the worker waits for the whole request in its event loop
    and answers 408 at SIGNER_REQUEST_TIMEOUT, before the app (which would refuse the caller before
    reading a body) sees it. A Host IDNA cannot encode is refused as Flask does."""
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
    return re.sub(rb"Date: [^\r]*\r\n|X-Amz-Signature=[0-9a-f]+|X-Amz-Date=[0-9TZ]+|%2F[0-9]{8}%2F|"
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
        lines = [json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")]
        access[name] = [{key: value for key, value in line.items() if key not in ("time", "duration_us")}
                        for line in lines if line["path"] != "/healthz"]  # the readiness polls vary
    for case in answers["lean"]:
        assert answers["lean"][case] == answers["flask"][case], case
    assert answers["lean"]["plain"].startswith(b"HTTP/1.1 200 ")
    assert access["lean"] == access["flask"] and len(access["lean"]) >= len(RAW_CASES)
