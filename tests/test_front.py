"""The front (HAProxy) in front of gunicorn, through the real stack: one HTTP/1.1 parser reads each
request whole before gunicorn sees it (issue #25). Framing cases, malformed bodies and
``Expect: 100-continue`` against ``gunicorn --config gunicorn.conf.py`` as any host runs it; the
configuration it renders, from the service's own settings."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from signer.service.server import server_settings
from signer.service.web.front import Listen, haproxy_config
from tests.conftest import ALICE_TOKEN
from tests.test_slow_clients import service

TIMEOUT = 1  # SIGNER_REQUEST_TIMEOUT of the server here: a cut request is answered within it
BODY = json.dumps({"method": "GET", "key": "uploads/alice/a.txt"}).encode()


def head(*lines: str) -> bytes:
    return ("POST /v1/presign HTTP/1.1\r\nHost: signer\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {ALICE_TOKEN}\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


def chunked(size_line: str, body: bytes = BODY, end: bytes = b"\r\n0\r\n\r\n") -> bytes:
    return size_line.encode() + b"\r\n" + body + end


# The 42 framing cases the worker's framing layer held (tests/test_framing.py before issue #25),
# and the malformed bodies that got a 500 through it: each whole, and each cut before its end.
FRAMING = {
    "two lengths": head("Content-Length: 5", "Content-Length: 6") + b"hello!",
    "length and chunked": head("Content-Length: 5", "Transfer-Encoding: chunked") + chunked("%x" % len(BODY)),
    "negative length": head("Content-Length: -1"),
    "hex length": head("Content-Length: 0x10") + b"x" * 16,
    "arabic digit length": head("Content-Length: \u0665") + b"hello",
    "gzip only": head("Transfer-Encoding: gzip") + b"hello",
    "chunked twice": head("Transfer-Encoding: chunked, chunked") + chunked("%x" % len(BODY)),
    "length above the limit": head(f"Content-Length: {64 * 1024 + 1}"),
    "length of 30 digits": head("Content-Length: " + "9" * 30),
    "length of 5000 digits": head("Content-Length: " + "9" * 5000),
    "length with 18 zeros": head("Content-Length: " + "0" * 18 + str(len(BODY))) + BODY,
    "length with 100 zeros": head("Content-Length: " + "0" * 100 + str(len(BODY))) + BODY,
    "gzip, chunked": head("Transfer-Encoding: gzip, chunked") + chunked("%x" % len(BODY)),
    "identity, chunked": head("Transfer-Encoding: identity, chunked") + chunked("%x" % len(BODY)),
    "deflate,chunked": head("Transfer-Encoding: deflate,chunked") + chunked("%x" % len(BODY)),
    "two coding lines": head("Transfer-Encoding: gzip", "Transfer-Encoding: chunked") + chunked("%x" % len(BODY)),
    **{f"chunk size {size!r}": head("Transfer-Encoding: chunked") + chunked(size % len(BODY))
       for size in ("%x", "0%x", "0" * 16 + "%x", "0" * 40 + "%x", "%x;ext=1", "%x ;ext", "%x\t;ext")},
    "chunk over the limit": head("Transfer-Encoding: chunked") + b"%x\r\n" % (64 * 1024 + 1) + b"x" * (64 * 1024 + 3),
    "many one-byte chunks": head("Transfer-Encoding: chunked") + b"1\r\nx\r\n" * 40000 + b"0\r\n\r\n",
    "request line of 20 KB": b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "a header of 20 KB": head("X-Big: " + "b" * 20000),
    "chunk-size line of 1.1 KiB": head("Transfer-Encoding: chunked") + b"5;" + b"a" * 1126 + b"\r\nhello\r\n0\r\n\r\n",
    "trailers of 17 KiB": head("Transfer-Encoding: chunked") + b"0\r\n" + b"X-T: " + b"t" * 17400 + b"\r\n\r\n",
    # the malformed chunked bodies of issue #25 (a 500 before)
    "bare CR in an extension": head("Transfer-Encoding: chunked") + chunked("%x;a\rb" % len(BODY)),
    "space before the size": head("Transfer-Encoding: chunked") + chunked(" %x" % len(BODY)),
    "0x before the size": head("Transfer-Encoding: chunked") + chunked("0x%x" % len(BODY)),
    "bad chunk terminator": head("Transfer-Encoding: chunked") + chunked("%x" % len(BODY), end=b"XX0\r\n\r\n"),
    "Content-Length trailer": head("Transfer-Encoding: chunked") + chunked(
        "%x" % len(BODY), end=b"\r\n0\r\nContent-Length: 5\r\n\r\n"),
    "Transfer-Encoding trailer": head("Transfer-Encoding: chunked") + chunked(
        "%x" % len(BODY), end=b"\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    "no chunk data": head("Transfer-Encoding: chunked") + b"10\r\nabc\r\n0\r\n\r\n",
    "bare LF lines": b"POST /v1/presign HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}",
    "space before the colon": head("Content-Length : 2") + b"{}",
    "obsolete line folding": head("X-A: a", " folded", "Content-Length: 2") + b"{}",
    "NUL in a header": head("X-A: a\x00b", "Content-Length: 2") + b"{}",
    "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "HTTP/0.9": b"GET /healthz\r\n",
    "absolute URI to elsewhere": b"GET http://evil.example/healthz HTTP/1.1\r\nHost: signer\r\n\r\n",
    "no Host": b"GET /healthz HTTP/1.1\r\n\r\n",
    "two Hosts": b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    tmp_path = tmp_path_factory.mktemp("front")
    with service(tmp_path, SIGNER_WORKERS="1", SIGNER_THREADS="4", SIGNER_REQUEST_TIMEOUT=str(TIMEOUT)) as base:
        yield int(base.rsplit(":", 1)[1]), tmp_path / "gunicorn.log"


def exchange(port: int, data: bytes, wait: float = TIMEOUT + 3) -> tuple[bytes, float]:
    """Send ``data``, read until the server closes (or ``wait`` passes): what came back, and when it closed."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        try:
            sock.sendall(data)
            received = b""
            while time.monotonic() - start < wait:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if b"\r\n\r\n" in received and not received.startswith(b"HTTP/1.1 100"):
                    break  # one answer is enough: its status is what counts
        except (ConnectionResetError, BrokenPipeError):
            pass  # a close is an answer
        except TimeoutError:
            received = b"<nothing within the deadline>"
    return received, time.monotonic() - start


def status_of(received: bytes) -> int | None:
    """The final status of the first answer, or None when the server closed without one."""
    answers = [line for line in received.split(b"\r\n") if line.startswith(b"HTTP/1.1 ")]
    finals = [int(line.split()[1]) for line in answers if not line.startswith(b"HTTP/1.1 100")]
    return finals[0] if finals else None


def test_every_framing_case_whole_or_cut_gets_a_4xx_or_a_close_never_a_5xx(front) -> None:
    port, log = front
    cases = [(name, data) for name, data in FRAMING.items()]
    cuts = [(f"{name} (cut)", data[: max(len(data) - 3, 1)]) for name, data in FRAMING.items()]
    with ThreadPoolExecutor(16) as pool:
        results = dict(zip([name for name, _ in cases + cuts],
                           pool.map(lambda item: exchange(port, item[1]), cases + cuts), strict=True))
    assert len(FRAMING) >= 42
    for name, (received, seconds) in results.items():
        assert received != b"<nothing within the deadline>", f"{name}: no answer and no close in {seconds:.1f}s"
        status = status_of(received)
        assert status is None or status < 500, f"{name}: {received[:300]!r}"
        assert seconds < TIMEOUT + 2.5, f"{name}: held {seconds:.1f}s"
    # well-formed ones reach the app and are answered by it
    for name in ("chunk size '%x'", "chunk size '0%x'", "chunk size '%x;ext=1'", "length with 18 zeros"):
        assert status_of(results[name][0]) == 200, name
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize(("request_bytes", "status", "code"), [
    (b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed_request"),
    (b"GETTTTTTTTTTTTTTTTTTTTTT /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: \x1b[2J\r\n\r\n", 400, "malformed_request"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
])
def test_what_gunicorn_would_refuse_the_front_refuses_in_json(front, request_bytes: bytes, status: int, code: str) -> None:
    """gunicorn's parser answers these with its own HTML page, logged without the client's address:
    the front refuses them first, in the service's JSON, and logs who sent them."""
    port, log = front
    received, _ = exchange(port, request_bytes)
    assert status_of(received) == status, received[:200]
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["code"] == code


def test_many_headers_reach_the_app(front) -> None:
    """60 headers (gunicorn's own limit was 50): the front bounds them (16 KiB, 101), gunicorn does not refuse."""
    port, _ = front
    extra = "".join(f"X-Extra-{n}: {n}\r\n" for n in range(60)).encode()
    received, _ = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
    assert status_of(received) == 200


def test_a_header_of_12_kib_reaches_the_app(front) -> None:
    """A bearer JWT with many claims (roles, groups) runs past 8 KiB: the front admits 16 KiB of
    headers, and gunicorn 27 reads limit_request_field_size = 0 as its default 8190, not as no limit,
    so such a header got gunicorn's HTML 431 instead of the service's answer."""
    port, _ = front
    received, _ = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"j" * 12 * 1024
                           + b"\r\n\r\n")
    assert status_of(received) == 200, received[:300]


def test_expect_100_continue_is_answered_at_once(front) -> None:
    port, _ = front
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head("Expect: 100-continue", f"Content-Length: {len(BODY)}"))
        start = time.monotonic()
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n") and time.monotonic() - start < 0.5
        sock.sendall(BODY)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_front_answers_its_refusals_in_the_services_json(front) -> None:
    port, _ = front
    received, _ = exchange(port, head(f"Content-Length: {64 * 1024 + 1}") + b"x" * (64 * 1024 + 1))
    assert status_of(received) == 413
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["code"] == "body_too_large"
    received, _ = exchange(port, head("X-Big: " + "b" * 20000))
    assert status_of(received) == 431
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["code"] == "headers_too_large"
    received, seconds = exchange(port, head(f"Content-Length: {len(BODY)}") + BODY[:5])
    assert status_of(received) == 408 and TIMEOUT - 0.2 < seconds < TIMEOUT + 1.5
    assert json.loads(received.split(b"\r\n\r\n", 1)[1])["code"] == "request_timeout"


def test_the_app_sees_the_clients_address_and_not_its_forwarded_headers(front) -> None:
    port, log = front
    with socket.socket() as sock:
        sock.bind(("127.0.0.5", 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: signer\r\nX-Forwarded-Proto: https\r\n"
                     b"X-Forwarded-Host: evil.example\r\nX-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b"evil.example" not in answer and b"https://" not in answer
    time.sleep(0.2)
    lines = [json.loads(line) for line in log.read_text().splitlines() if '"/openapi.json"' in line]
    assert lines[-1]["remote"] == "127.0.0.5"  # gunicorn read it from the front's PROXY line


def test_the_configuration_comes_from_the_settings() -> None:
    settings = server_settings({"SIGNER_REQUEST_TIMEOUT": "7", "SIGNER_MAX_CONNECTIONS_PER_PEER": "9",
                                "SIGNER_MAX_BODY": "2000", "SIGNER_TRUSTED_PROXIES": "10.0.0.0/8",
                                "SIGNER_THREADS": "3"}, cpus=1)
    config = haproxy_config(settings, [Listen.from_bind("0.0.0.0:8080")], "/dev/shm/x.sock")
    for line in ("timeout http-request 7s", "wait-for-body time 7s at-least 2001", "bind 0.0.0.0:8080", "acl trusted_proxy src 10.0.0.0/8",
                 "sc0_conn_cur gt 9 }", "src,ipmask(32,64) table per_peer", "req.hdr_val(content-length) gt 2000 }",
                 "server gunicorn unix@/dev/shm/x.sock send-proxy maxconn 6"):
        assert line in config, line
    assert "option http-buffer-request" not in config  # its body clock starts at the headers' end too


@pytest.mark.parametrize(("bind", "listen"), [
    ("0.0.0.0:8080", "0.0.0.0:8080"), ("127.0.0.1:9", "127.0.0.1:9"), ("[::]:8080", "ipv6@:::8080"),
    ("[::1]:80", "ipv6@::1:80"), ("localhost:8080", "localhost:8080"), ("127.0.0.1", "127.0.0.1:8000"),
    ("[::1]", "ipv6@::1:8000")])
def test_gunicorn_bind_addresses_become_the_fronts(bind: str, listen: str) -> None:
    assert Listen.from_bind(bind).address == listen


@pytest.mark.parametrize("bind", ["unix:/run/s.sock", "fd://3", "::1:80", "127.0.0.1:0", "127.0.0.1:99999",
                                  "host:http"])
def test_binds_the_front_cannot_take_are_refused(bind: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bind))):
        Listen.from_bind(bind)


def test_headers_then_body_have_a_deadline_each(front) -> None:
    """Headers trickled for most of the deadline, then the body: the headers had SIGNER_REQUEST_TIMEOUT
    from the opening, the body as long again from their end; answered 408 within twice it in all."""
    port, _ = front
    data = head(f"Content-Length: {len(BODY)}")
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for piece in (data[:20], data[20:60], data[60:]):
            sock.sendall(piece)
            time.sleep(0.25)
        sock.sendall(BODY[:3])
        answer = sock.recv(4096)
    assert status_of(answer) == 408 and TIMEOUT < time.monotonic() - start < 2 * TIMEOUT + 0.5


def test_forwarder_headers_from_a_client_change_nothing(front) -> None:
    """gunicorn trusts SCRIPT_NAME / PATH_INFO headers from any peer on its Unix socket unless told
    not to (forwarder_headers): a client's never reach the app, and never make a 5xx."""
    port, _ = front
    received, _ = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: signer\r\nSCRIPT_NAME: /nope\r\n\r\n")
    assert status_of(received) == 200
    received, _ = exchange(port, b"GET /evil/openapi.json HTTP/1.1\r\nHost: signer\r\nscript_name: /evil\r\n"
                                 b"PATH_INFO: /openapi.json\r\n\r\n")
    assert status_of(received) == 404
