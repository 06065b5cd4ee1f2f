"""Slow and hostile clients against real gunicorn under gunicorn.conf.py, no proxy in front (issue #22).

150 connections that send a presign's headers and trickle its body, or 500 idle ones (half of
them kept alive after a request), reopened whenever the service cuts them, for 30 s: /healthz
and a real POST /v1/presign must answer within 2 s every time, and the service must cut every
one of those connections itself within 60 s. And one peer over its connection cap is refused
while another peer's presign answers. Peers are distinct loopback addresses (127.0.0.2, ...);
the checks come from 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from signer.service.web.worker import PeerLog, peer_name
from tests.conftest import ALICE_TOKEN, env_with
from tests.servers import free_port, running

WINDOW = 30.0  # seconds of pressure
CUT_WITHIN = 60.0  # seconds a connection may live before the service must have cut it
ANSWER_WITHIN = 2.0
PRESIGN_BODY = json.dumps({"method": "GET", "key": "uploads/alice/a.txt"}).encode()


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> None:
    """500 client sockets here, as many in the server (which inherits the limit, and raises its own)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@contextmanager
def service(tmp_path: Path, *extra: str, **env: str) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               *extra, "wsgi:app"]
    environ = {**os.environ, **env_with(**env)}
    with running(command, f"{base}/healthz", env=environ, log_path=tmp_path / "gunicorn.log"):
        yield base


def presign_request(base: str, forwarded_for: str | None = None) -> urllib.request.Request:
    headers = {"Authorization": f"Bearer {ALICE_TOKEN}", "Content-Type": "application/json"}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    return urllib.request.Request(f"{base}/v1/presign", method="POST", data=PRESIGN_BODY, headers=headers)


def answer_time(request: urllib.request.Request | str) -> float:
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=ANSWER_WITHIN + 3) as response:
        assert response.status == 200
        response.read()
    return time.monotonic() - start


def keeps_answering(base: str, until: float) -> int:
    """/healthz and a presign, again and again until ``until``: each must answer within 2 s."""
    rounds = 0
    while time.monotonic() < until:
        for request in (f"{base}/healthz", presign_request(base)):
            seconds = answer_time(request)
            assert seconds < ANSWER_WITHIN, f"{getattr(request, 'full_url', request)} took {seconds:.2f}s"
        rounds += 1
        time.sleep(0.3)
    return rounds


@dataclass
class Client:
    sock: socket.socket
    opened: float
    sent_opening: bool = False
    next_byte: float = 0.0
    received: bytes = b""
    ended: float | None = None


@dataclass
class Crowd:
    """``count`` connections from ``sources``, each sending ``opening`` and then, with a
    ``trickle`` interval, one more body byte per interval; a connection the service closes is
    reopened while ``reopen`` holds. One thread, one selector. Never closes one itself."""

    port: int
    count: int
    sources: list[str]
    openings: list[bytes]
    trickle: float | None = None
    reopen: bool = True
    clients: list[Client] = field(default_factory=list)
    stopping: bool = False
    failure: BaseException | None = None

    def open_one(self, number: int) -> None:
        sock = socket.socket()
        sock.bind((self.sources[number % len(self.sources)], 0))
        sock.connect(("127.0.0.1", self.port))
        sock.setblocking(False)
        now = time.monotonic()
        client = Client(sock, now, next_byte=now + (self.trickle or 0))
        opening = self.openings[number % len(self.openings)]
        if opening:
            sock.sendall(opening)
        self.selector.register(sock, selectors.EVENT_READ, client)
        self.clients.append(client)

    def open(self) -> list[Client]:
        return [c for c in self.clients if c.ended is None]

    def end(self, client: Client) -> None:
        client.ended = time.monotonic()
        self.selector.unregister(client.sock)
        client.sock.close()

    def run(self) -> None:
        try:
            self.selector = selectors.DefaultSelector()
            opened = 0
            while not (self.stopping and not self.open()):
                if not self.stopping or self.reopen:
                    while self.reopen and not self.stopping and len(self.open()) < self.count:
                        self.open_one(opened)
                        opened += 1
                now = time.monotonic()
                for client in self.open():
                    if self.trickle and now >= client.next_byte:
                        client.next_byte = now + self.trickle
                        try:
                            client.sock.send(b"x")
                        except OSError:
                            self.end(client)
                for key, _ in self.selector.select(timeout=0.2):
                    client = key.data
                    try:
                        data = client.sock.recv(4096)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    client.received += data
                    if not data:
                        self.end(client)
                if self.stopping and time.monotonic() > max(c.opened for c in self.clients) + CUT_WITHIN + 5:
                    break  # the test then finds the ones left open
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.failure = exc

    @contextmanager
    def running(self) -> Iterator[Crowd]:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stopping = True
            thread.join(timeout=CUT_WITHIN + 20)
            for client in self.open():
                client.sock.close()


def trickling_head(port: int) -> bytes:
    return (f"POST /v1/presign HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {ALICE_TOKEN}\r\nContent-Length: {len(PRESIGN_BODY)}\r\n\r\n").encode()


def assert_all_cut_by_the_service(crowd: Crowd) -> None:
    assert crowd.failure is None, crowd.failure
    left = crowd.open()
    assert not left, f"{len(left)} connections still open {CUT_WITHIN:.0f}s after they were opened"
    lifetimes = [c.ended - c.opened for c in crowd.clients if c.ended is not None]
    assert max(lifetimes) < CUT_WITHIN, max(lifetimes)


def test_trickling_clients_do_not_starve_the_service(tmp_path) -> None:
    with service(tmp_path) as base:  # gunicorn.conf.py's defaults: SIGNER_REQUEST_TIMEOUT 5 s
        port = int(base.rsplit(":", 1)[1])
        crowd = Crowd(port, 150, [f"127.0.0.{n}" for n in range(2, 12)], [trickling_head(port)], trickle=2.0)
        with crowd.running():
            time.sleep(1.0)  # all 150 open and trickling
            rounds = keeps_answering(base, time.monotonic() + WINDOW)
            assert len(crowd.open()) >= 140  # the pressure held: cut connections were reopened
        assert_all_cut_by_the_service(crowd)
    assert rounds >= 10
    assert len(crowd.clients) > 300  # each was cut (and reopened) several times within the window
    answers = [c.received[:30] for c in crowd.clients]
    assert set(answers) <= {b"HTTP/1.1 408 Request Timeout\r\n", b""}, set(answers)
    # told why, nearly every one (a byte arriving as the 408 leaves can make the close a reset)
    assert answers.count(b"HTTP/1.1 408 Request Timeout\r\n") >= 0.9 * len(answers)
    log = (tmp_path / "gunicorn.log").read_text()
    cut_lines = [line for line in log.splitlines() if '"event": "client_cut"' in line]
    peers = [json.loads(line.split("sigv4-signer: ", 1)[1])["peer"] for line in cut_lines]
    workers = len({line.split("] [")[1] for line in cut_lines})
    # once per peer per minute and worker: the ten peers, each at most once in each worker
    assert set(peers) == {f"127.0.0.{n}" for n in range(2, 12)}
    assert len(peers) <= 10 * workers, cut_lines


def test_idle_and_kept_alive_connections_hold_no_thread(tmp_path) -> None:
    # Keep-alive is off in gunicorn.conf.py; a user may turn it on: idle kept-alive connections then
    # wait in the event loop for 10 s, the others for SIGNER_REQUEST_TIMEOUT.
    with service(tmp_path, "--keep-alive", "10") as base:
        port = int(base.rsplit(":", 1)[1])
        keep_alive = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        crowd = Crowd(port, 500, [f"127.0.0.{n}" for n in range(2, 22)], [b"", keep_alive])
        with crowd.running():
            time.sleep(2.0)
            assert len(crowd.open()) >= 490
            rounds = keeps_answering(base, time.monotonic() + WINDOW)
        assert_all_cut_by_the_service(crowd)
    assert rounds >= 10
    kept = [c for c in crowd.clients if c.received.startswith(b"HTTP/1.1 200 OK")]
    assert kept and all(c.ended - c.opened > 9 for c in kept)  # really kept alive, then closed
    silent = [c for c in crowd.clients if not c.received]
    assert silent and all(c.ended - c.opened < 9 for c in silent)  # nothing sent: closed at the request deadline


OPENED: list[socket.socket] = []


@pytest.fixture(autouse=True)
def close_raw_sockets() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def raw(port: int, source: str, data: bytes = b"") -> socket.socket:
    """A connection from ``source`` (closed after the test), having sent ``data``."""
    sock = socket.socket()
    OPENED.append(sock)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    sock.settimeout(5)
    if data:
        sock.sendall(data)
    return sock


def first_line(sock: socket.socket) -> bytes:
    return sock.recv(4096).split(b"\r\n", 1)[0]


def test_a_peer_over_its_cap_is_refused_while_another_answers(tmp_path) -> None:
    cap = 6
    with service(tmp_path, SIGNER_WORKERS="1", SIGNER_MAX_CONNECTIONS_PER_PEER=str(cap),
                 SIGNER_REQUEST_TIMEOUT="30") as base:
        port = int(base.rsplit(":", 1)[1])
        held = [raw(port, "127.0.0.2") for _ in range(cap)]
        time.sleep(0.5)
        for _ in range(2):
            over = raw(port, "127.0.0.2")
            answer = over.recv(4096)
            assert answer.startswith(b"HTTP/1.1 429 Too Many Requests\r\n"), answer
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "too_many_connections"
        other = raw(port, "127.0.0.3", trickling_head(port) + PRESIGN_BODY)
        assert first_line(other) == b"HTTP/1.1 200 OK"
        assert answer_time(presign_request(base)) < ANSWER_WITHIN  # and from 127.0.0.1
        held.pop().close()
        time.sleep(0.5)
        again = raw(port, "127.0.0.2", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert first_line(again) == b"HTTP/1.1 200 OK"  # one closed: room for one more

        # Behind a trusted proxy (127.0.0.1 by default) the forwarded client counts, per request in
        # progress; a forwarded address that is not an IP counts as the proxy and is never logged.
        def forwarded(client: str) -> socket.socket:
            return raw(port, "127.0.0.1", (
                f"POST /v1/presign HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9, {client}\r\n"
                "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{").encode())

        [forwarded("198.51.100.7") for _ in range(cap)]
        time.sleep(0.5)
        assert first_line(forwarded("198.51.100.7")) == b"HTTP/1.1 429 Too Many Requests"
        assert answer_time(presign_request(base, forwarded_for="198.51.100.8")) < ANSWER_WITHIN
        # an untrusted peer's X-Forwarded-For changes nothing: it is counted by its own address
        untrusted = [raw(port, "127.0.0.4", (
            f"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.{n}\r\n").encode()) for n in range(cap)]
        time.sleep(0.5)
        assert first_line(raw(port, "127.0.0.4")) == b"HTTP/1.1 429 Too Many Requests"
        assert len(untrusted) == cap
        # a forwarded address that is not an IP counts as the proxy's own, and its text is never logged
        [forwarded('evil"\x1b[31mname') for _ in range(cap)]
        time.sleep(0.5)
        assert first_line(forwarded("evil-again")) == b"HTTP/1.1 429 Too Many Requests"
    log = (tmp_path / "gunicorn.log").read_text()
    cut_lines = [json.loads(line.split("sigv4-signer: ", 1)[1]) for line in log.splitlines()
                 if '"event": "client_cut"' in line]
    # once a minute each (127.0.0.2 was refused twice), the not-an-IP one named as its proxy
    assert [line["peer"] for line in cut_lines] == ["127.0.0.2", "198.51.100.7", "127.0.0.4", "127.0.0.1"]
    assert cut_lines[0]["too_many_connections"] == 1
    assert "evil" not in log


def test_a_request_not_all_there_in_time_is_answered_408(tmp_path) -> None:
    with service(tmp_path, SIGNER_WORKERS="1", SIGNER_REQUEST_TIMEOUT="1") as base:
        port = int(base.rsplit(":", 1)[1])
        start = time.monotonic()
        slow = raw(port, "127.0.0.2", trickling_head(port) + PRESIGN_BODY[:5])
        answer = slow.recv(4096)
        assert 0.9 < time.monotonic() - start < 3.0
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["code"] == "request_timeout"
        assert slow.recv(4096) == b""  # and closed
        silent = raw(port, "127.0.0.2")
        assert silent.recv(4096) == b""  # nothing sent, nothing to answer: closed
        huge = raw(port, "127.0.0.2", b"GET /" + b"a" * 20000)
        assert first_line(huge) == b"HTTP/1.1 431 Request Header Fields Too Large"
        chunks = raw(port, "127.0.0.2", b"POST /v1/presign HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + b"%x\r\n" % (64 * 1024 + 1) + b"x" * (64 * 1024 + 3))
        assert first_line(chunks) == b"HTTP/1.1 413 Content Too Large"
        pipelined = raw(port, "127.0.0.2", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        assert first_line(pipelined) == b"HTTP/1.1 200 OK"


def test_cuts_are_logged_once_per_peer_per_minute_with_their_counts() -> None:
    lines: list[str] = []
    clock = [1000.0]
    log = PeerLog(lines.append, now=lambda: clock[0])
    log.event("127.0.0.2", "request_timeout")
    log.event("127.0.0.2", "request_timeout")
    log.event("127.0.0.2", "too_many_connections")
    log.event("127.0.0.3", "too_large")
    clock[0] += 59.9
    log.event("127.0.0.2", "request_timeout")
    assert [json.loads(line) for line in lines] == [
        {"event": "client_cut", "peer": "127.0.0.2", "request_timeout": 1, "since_s": 60.0},
        {"event": "client_cut", "peer": "127.0.0.3", "too_large": 1, "since_s": 60.0}]
    clock[0] += 0.2
    log.event("127.0.0.2", "request_timeout")
    assert json.loads(lines[-1]) == {"event": "client_cut", "peer": "127.0.0.2", "request_timeout": 3,
                                     "too_many_connections": 1, "since_s": 60.0}  # all since its last line


def test_the_log_forgets_the_waiting_counts_of_the_peers_it_forgets() -> None:
    """Each peer's events between its lines wait in the log; a peer that never comes back (an
    attacker with an IPv6 prefix has as many addresses as it likes) must not leave them forever."""
    clock = [1000.0]
    lines: list[str] = []
    log = PeerLog(lines.append, now=lambda: clock[0])
    for number in range(12000):
        peer = f"2001:db8::{number:x}"
        log.event(peer, "too_many_connections")
        log.event(peer, "too_many_connections")  # waits for this peer's next line
    clock[0] += 120
    log.event("198.51.100.7", "request_timeout")
    assert len(log.last) == 1 and len(log.pending) == 0


@pytest.mark.parametrize(("text", "name"), [
    ("198.51.100.7", "198.51.100.7"), (" 2001:DB8::1 ", "2001:db8::1"),
    ("198.51.100.7:443", None), ('evil"\n{', None), ("", None), (None, None)])
def test_a_forwarded_address_is_named_only_as_a_parsed_ip(text: str | None, name: str | None) -> None:
    assert peer_name(text) == name


def test_a_stopping_worker_still_reads_and_answers_the_requests_it_has(tmp_path) -> None:
    """max_requests recycles workers: a request half-read when its worker begins to stop still
    gets its time (within the graceful timeout) and its answer, as with gthread's threads."""
    from concurrent.futures import ThreadPoolExecutor

    with service(tmp_path, "--max-requests", "30", "--max-requests-jitter", "1", SIGNER_WORKERS="1") as base:
        port = int(base.rsplit(":", 1)[1])

        def one(_: int) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
                sock.sendall(trickling_head(port))
                time.sleep(0.05)  # the body a moment later: the request is being read meanwhile
                sock.sendall(PRESIGN_BODY)
                return sock.recv(4096).split(b"\r\n", 1)[0]

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(one, range(120)))
    assert answers == [b"HTTP/1.1 200 OK"] * 120
    assert (tmp_path / "gunicorn.log").read_text().count("Autorestarting worker") >= 3
