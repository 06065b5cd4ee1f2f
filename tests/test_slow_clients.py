"""Slow and hostile clients against the host command, ``gunicorn --config gunicorn.conf.py
wsgi:app``, which runs HAProxy in front (issues #22 and #25; the image: tests/e2e/test_container.py).

Each attack of issue #25 for 12 s, its connections reopened whenever the service cuts them: 120
holding an unfinished 1.1 KiB chunk-size line, 120 an unfinished 17 KiB trailer (each from two
addresses), 150 trickling a body at a byte per 2 s (three addresses), 500 idle or kept-alive ones.
/healthz and a real POST /v1/presign from another address must answer within 2 s every time, and
the service must answer (408) or close every attacking connection within its deadline. And one
peer over its connection cap is refused while another peer's presign answers. Peers are distinct
loopback addresses (127.0.0.2, ...); the checks come from 127.0.0.1.
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

from tests.conftest import ALICE_TOKEN, env_with
from tests.servers import free_port, running

WINDOW = 12.0  # seconds of pressure per attack
CUT_WITHIN = 7.0  # seconds a connection may live: the 5 s deadline (SIGNER_REQUEST_TIMEOUT, or kept alive) and 2 s
ANSWER_WITHIN = 2.0
PRESIGN_BODY = json.dumps({"method": "GET", "key": "uploads/alice/a.txt"}).encode()


def raise_fd_limit() -> None:
    """500 client sockets here, as many in the server (which inherits the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(4096, hard)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.fixture(autouse=True)
def enough_file_descriptors() -> None:
    raise_fd_limit()


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


def chunked_head(port: int) -> bytes:
    return trickling_head(port).replace(f"Content-Length: {len(PRESIGN_BODY)}".encode(), b"Transfer-Encoding: chunked")


# The attacks of issue #25, each for 12 s: (connections, sources, opening, trickle interval)
ATTACKS = {
    "unfinished 1.1 KiB chunk-size line": (120, 2, lambda port: chunked_head(port) + b"5;" + b"a" * 1126, None),
    "unfinished 17 KiB trailer": (120, 2, lambda port: chunked_head(port) + b"0\r\nX-T: " + b"t" * (17 * 1024), None),
    "a body trickled a byte per 2 s": (150, 3, trickling_head, 2.0),
}


def withstands(base: str, attack: str) -> Crowd:
    """Run ``attack`` for WINDOW seconds against ``base``: the checks from 127.0.0.1 answer within
    2 s every time, and the service answers (408) or closes every attacking connection within its
    deadline."""
    port = int(base.rsplit(":", 1)[1])
    if attack == IDLE:
        keep_alive = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        crowd = Crowd(port, 500, [f"127.0.0.{n}" for n in range(2, 22)], [b"", keep_alive])
    else:
        count, sources, opening, trickle = ATTACKS[attack]
        crowd = Crowd(port, count, [f"127.0.0.{n}" for n in range(2, 2 + sources)], [opening(port)], trickle=trickle)
    with crowd.running():
        time.sleep(1.5)  # all open
        assert len(crowd.open()) >= 0.95 * crowd.count
        rounds = keeps_answering(base, time.monotonic() + WINDOW)
        assert len(crowd.open()) >= 0.9 * crowd.count  # the pressure held: cut connections were reopened
    assert_all_cut_by_the_service(crowd)
    assert answer_time(f"{base}/healthz") < ANSWER_WITHIN
    assert rounds >= 5
    assert len(crowd.clients) > 2 * crowd.count  # each was cut (and reopened) within the window
    answers = [status_line(c.received) for c in crowd.clients]
    if attack == IDLE:
        kept = [c for c in crowd.clients if c.received.startswith(b"HTTP/1.1 200 OK")]
        assert kept and all(c.ended - c.opened > 4 for c in kept)  # really kept alive, then closed
        silent = [c for c in crowd.clients if not c.received.startswith(b"HTTP/1.1 200 OK")]
        assert silent and all(c.ended - c.opened < CUT_WITHIN for c in silent)  # closed at the request deadline
    else:
        assert set(answers) <= {b"HTTP/1.1 408 Request Time-out", b""}, set(answers)
        assert answers.count(b"HTTP/1.1 408 Request Time-out") >= 0.9 * len(answers)  # told why, nearly every one
    return crowd


IDLE = "500 idle and kept-alive connections"


@pytest.mark.parametrize("attack", [*ATTACKS, IDLE])
def test_an_attack_does_not_starve_the_service(tmp_path, attack: str) -> None:
    with service(tmp_path) as base:  # gunicorn.conf.py's defaults: SIGNER_REQUEST_TIMEOUT 5 s
        crowd = withstands(base, attack)
    log = (tmp_path / "gunicorn.log").read_text()
    refusals = [json.loads(line) for line in log.splitlines() if line.startswith('{"front":"haproxy"')]
    if attack != IDLE:  # the front logs what it cut (408), naming the client, never the request
        assert refusals and {line["status"] for line in refusals} == {408}
        assert {line["remote"] for line in refusals} == set(crowd.sources)


def status_line(received: bytes) -> bytes:
    return received.split(b"\r\n", 1)[0]


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
        healthz = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        for _ in range(2):  # counted from accept: one more is closed at once, before it can send anything
            over = raw(port, "127.0.0.2")
            with pytest.raises(OSError):  # reset, or closed with nothing said
                over.sendall(healthz)
                if over.recv(4096) == b"":
                    raise ConnectionResetError
            over.close()
        other = raw(port, "127.0.0.3", trickling_head(port) + PRESIGN_BODY)
        assert first_line(other) == b"HTTP/1.1 200 OK"
        assert answer_time(presign_request(base)) < ANSWER_WITHIN  # and from 127.0.0.1
        held.pop().close()
        time.sleep(0.5)
        again = raw(port, "127.0.0.2", healthz)
        assert first_line(again) == b"HTTP/1.1 200 OK"  # one closed: room for one more

        # Behind a trusted proxy (127.0.0.1 by default) the forwarded client counts, per request in
        # progress.
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
        with pytest.raises(OSError):
            last = raw(port, "127.0.0.4", healthz)
            if last.recv(4096) == b"":
                raise ConnectionResetError
        assert len(untrusted) == cap
        # a forwarded address that is not an IP counts as the proxy's own, and its text is never logged
        [forwarded('evil"name') for _ in range(cap)]
        time.sleep(0.5)
        assert first_line(forwarded("evil-again")) == b"HTTP/1.1 429 Too Many Requests"
    log = (tmp_path / "gunicorn.log").read_text()
    refusals = [json.loads(line) for line in log.splitlines() if line.startswith('{"front":"haproxy"')]
    assert {(line["remote"], line["status"]) for line in refusals} >= {("127.0.0.1", 429)}  # the forwarded cap
    assert "evil" not in log


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
