"""gunicorn's threaded worker, with threads only for whole requests (issue #22).

gthread hands a connection to a thread as soon as it is accepted, and the thread then blocks
on the socket while the request arrives: seventy clients trickling a body held every thread.
Gunicorn has no whole-request deadline. This worker reads each request in its event loop,
without a thread, until signer.service.web.framing says it is all there (headers and a body of
at most SIGNER_MAX_BODY), then gives the bytes to gunicorn's parser and a thread; the
response is gthread's own. A request that is not all there within SIGNER_REQUEST_TIMEOUT
seconds of its connection (or, kept alive, of its first byte) is answered 408 and closed; a
connection that sent nothing is closed. Kept-alive idle connections wait in the event loop,
as in gthread.

One TCP peer holds at most SIGNER_MAX_CONNECTIONS_PER_PEER connections in a worker; more are
answered 429 and closed. A trusted proxy (SIGNER_TRUSTED_PROXIES, as for X-Forwarded-*) carries
many clients, so there the cap counts requests in progress per forwarded address (the last
X-Forwarded-For entry, the one the proxy appended), from their headers on. Cuts and refusals are
logged once per peer per minute with how many there were, naming the peer only as a parsed IP.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import resource
import selectors
import socket
import time
from collections import Counter
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker  # type: ignore[import-untyped]

from ..networks import is_trusted
from ..server import server_settings
from .framing import Progress, Ready, readiness
from .statuses import CODES

LOG_INTERVAL = 60.0  # seconds: one line per peer and interval
SWEEP_INTERVAL = 0.5  # seconds between looks for requests past their deadline
LINGER = 2.0  # seconds a closed connection is drained for the client's FIN (gunicorn's close_graceful)
LINGER_DRAIN = 65536  # bytes drained at most
FD_MARGIN = 64  # descriptors kept for listeners, logs, pipes beyond the connections

_REASONS = {408: "Request Timeout", 413: "Content Too Large", 429: "Too Many Requests",
            431: "Request Header Fields Too Large"}


def refusal(code: str) -> bytes:
    """A whole HTTP/1.1 answer that closes the connection, with the service's JSON error body:
    the status and message are the code's own (web/statuses.py)."""
    status, message = CODES[code]
    body = json.dumps({"error": message, "code": code}).encode()
    head = (f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n")
    return head.encode() + body


TIMED_OUT = refusal("request_timeout")
TOO_MANY = refusal("too_many_connections")
BODY_TOO_LARGE = refusal("body_too_large")
HEAD_TOO_LARGE = refusal("headers_too_large")


def address_of(client: object) -> str | None:
    """The IP of a TCP peer as accept() gave it; None for a Unix socket."""
    return client[0] if isinstance(client, tuple) and client and isinstance(client[0], str) else None


@lru_cache(maxsize=4096)
def peer_name(text: str | None) -> str | None:
    """A forwarded address as a parsed IP (never the client's own text), or None."""
    try:
        return str(ipaddress.ip_address((text or "").strip()))
    except ValueError:
        return None


class PeerLog:
    """At most one line per peer per interval, saying how many events it had since its last."""

    def __init__(self, write: Callable[[str], None], interval: float = LOG_INTERVAL,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.write, self.interval, self.now = write, interval, now
        self.last: dict[str, float] = {}
        self.pending: Counter[tuple[str, str]] = Counter()

    def event(self, peer: str, what: str) -> None:
        self.pending[(peer, what)] += 1
        now = self.now()
        if now - self.last.get(peer, -self.interval) < self.interval:
            return
        self.last[peer] = now
        counts = {kind: self.pending.pop((peer, kind)) for kind in ("request_timeout", "too_many_connections",
                                                                     "too_large") if (peer, kind) in self.pending}
        self.write(json.dumps({"event": "client_cut", "peer": peer, **counts, "since_s": self.interval}))
        if len(self.last) > 10000:  # forget peers quiet for an interval, and what waits for their next line
            self.last = {p: t for p, t in self.last.items() if now - t < self.interval}
            self.pending = Counter({key: count for key, count in self.pending.items() if key[0] in self.last})


class PeerCounts:
    """How many connections (or requests) each peer has, against one cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.counts: Counter[str] = Counter()

    def take(self, peer: str) -> bool:
        """Count one more for ``peer``; False (and nothing counted) when it is at the cap."""
        if self.counts[peer] >= self.cap:
            return False
        self.counts[peer] += 1
        return True

    def give_back(self, peer: str) -> None:
        self.counts[peer] -= 1
        if self.counts[peer] <= 0:
            del self.counts[peer]


class Connection(TConn):  # type: ignore[misc]
    """gthread's connection, with the bytes of the request being read and whom it is counted for."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any, peer: str | None,
                 release: Callable[[Connection], None], linger: Callable[[socket.socket], None]) -> None:
        super().__init__(cfg, sock, client, server)
        self.linger = linger
        self.peer = peer  # counted against the per-peer cap while open (untrusted TCP peers)
        self.forwarded: str | None = None  # counted while its request is in progress (behind a trusted proxy)
        self.release = release
        self.buffer = bytearray()
        self.progress = Progress()
        self.deadline = 0.0
        self.whole: bytes | None = None  # the request read, for the thread
        self.registered = False  # with the worker's poller, while it waits for request bytes

    def close(self, graceful: bool = False) -> None:
        """gthread closes gracefully (FIN, then drain until the client's FIN, up to 2 s) in its event
        loop, blocking it: a client that never closes stalled every connection of the worker. Here
        the drain waits in the event loop instead."""
        self.release(self)
        if graceful:
            self.linger(self.sock)
        else:
            super().close()


class WholeRequestWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, reading whole requests in the event loop (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = server_settings(os.environ)  # checked by gunicorn.conf.py already
        self.request_timeout = float(settings.request_timeout)
        self.max_body = settings.max_body
        self.trusted = settings.trusted_proxies
        self.reading: dict[Connection, None] = {}  # in order of deadline (each is now + the same timeout)
        self.open_per_peer = PeerCounts(settings.connections_per_peer)  # direct peers: open connections
        self.in_progress = PeerCounts(settings.connections_per_peer)  # behind a proxy: requests being read or served
        self.next_sweep = 0.0
        self.lingering: dict[socket.socket, tuple[float, int]] = {}  # socket -> (deadline, bytes drained)
        self.peer_log = PeerLog(lambda line: self.log.warning("sigv4-signer: %s", line))
        self.is_trusted = lru_cache(maxsize=4096)(partial(is_trusted, networks=self.trusted))  # per connection

    def init_process(self) -> None:
        self.worker_connections = fd_room(int(self.cfg.worker_connections))
        super().init_process()

    # --- accepting: the per-peer cap for direct peers -------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK, errno.EMFILE, errno.ENFILE):
                return
            raise
        address = address_of(client)
        peer = None
        if address and not self.is_trusted(address):
            if not self.open_per_peer.take(address):
                self.say(sock, TOO_MANY)
                self.linger(sock)
                self.peer_log.event(address, "too_many_connections")
                return
            peer = address
        self.nr_conns += 1
        self.start_reading(Connection(self.cfg, sock, client, listener.getsockname(), peer, self.release,
                                      self.linger))

    def release(self, conn: Connection) -> None:
        """The connection closes: it no longer counts for its peer."""
        if conn.peer is not None:
            self.open_per_peer.give_back(conn.peer)
            conn.peer = None
        self.end_request(conn)

    def end_request(self, conn: Connection) -> None:
        if conn.forwarded is not None:
            self.in_progress.give_back(conn.forwarded)
            conn.forwarded = None

    # --- reading the request without a thread ---------------------------------------------------

    def enqueue_req(self, conn: Connection) -> None:
        """gthread calls this for a new request on a connection (kept alive, or bytes read ahead):
        read it first; only a whole one goes to a thread."""
        if conn.whole is not None:
            super().enqueue_req(conn)
            return
        ahead = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        self.start_reading(conn, ahead)

    def start_reading(self, conn: Connection, ahead: bytes = b"") -> None:
        conn.sock.setblocking(False)
        conn.buffer, conn.progress = bytearray(ahead), Progress()
        conn.deadline = time.monotonic() + self.request_timeout
        self.reading[conn] = None
        if not self.cfg.is_ssl:  # TLS is read by the thread (the service's config has none)
            data = received(conn.sock)  # often the whole request is here already: no turn of the loop
            if data:
                conn.buffer += data
            elif data == b"" and not conn.buffer:
                self.drop(conn)  # the client went away
                return
        if self.advance(conn):
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_request_bytes, conn))
            conn.registered = True

    def on_request_bytes(self, conn: Connection, sock: socket.socket) -> None:
        data = received(sock)
        if data is None:
            return
        if not data:
            self.drop(conn)  # the client went away
            return
        conn.buffer += data
        self.advance(conn)

    def advance(self, conn: Connection) -> bool:
        """Look at what has arrived: wait for more (True), or refuse, or hand the whole request on."""
        ready = Ready.WHOLE if self.cfg.is_ssl else readiness(conn.buffer, self.max_body, conn.progress)
        head = conn.progress.head
        if head is not None and conn.peer is None and conn.forwarded is None and not self.cfg.is_ssl:
            # behind a trusted proxy: the forwarded client counts, per request, from its headers on
            client = peer_name(head.forwarded_for) or peer_name(address_of(conn.client))
            if client is not None:
                if not self.in_progress.take(client):
                    self.refuse(conn, TOO_MANY, client, "too_many_connections")
                    return False
                conn.forwarded = client
        if ready is Ready.WAIT:
            return True
        if ready is Ready.HEAD_TOO_LARGE or ready is Ready.BODY_TOO_LARGE:
            self.refuse(conn, HEAD_TOO_LARGE if ready is Ready.HEAD_TOO_LARGE else BODY_TOO_LARGE,
                        self.peer_of(conn), "too_large")
            return False
        self.stop_reading(conn)
        conn.whole, conn.buffer = bytes(conn.buffer), bytearray()
        self.enqueue_req(conn)
        return False

    def handle(self, conn: Connection) -> Any:
        """In the thread: gunicorn's parser reads the request from the bytes already here."""
        if conn.whole is not None:
            whole, conn.whole = conn.whole, None
            conn.sock.setblocking(True)
            conn.init()
            conn.parser.unreader.unread(whole)
            conn.data_ready = True
        return super().handle(conn)

    def finish_request(self, conn: Connection, fs: Any) -> None:
        self.end_request(conn)  # answered: a kept-alive connection counts again from its next headers
        super().finish_request(conn, fs)

    # --- deadlines, refusals ----------------------------------------------------------------------

    def murder_pending(self) -> None:
        """gthread's sweep, once a loop turn: also cut requests past their deadline. A stopping
        worker (max_requests, SIGTERM) does the same: requests being read still get their time,
        within gunicorn's graceful timeout, as gthread's threads gave theirs."""
        super().murder_pending()
        now = time.monotonic()
        if now < self.next_sweep:
            return
        self.next_sweep = now + SWEEP_INTERVAL
        for sock, (deadline, _) in list(self.lingering.items()):  # in order of deadline too
            if deadline > now:
                break
            self.end_linger(sock)
        for conn in list(self.reading):
            if conn.deadline > now:
                break
            if conn.buffer:
                self.refuse(conn, TIMED_OUT, self.peer_of(conn), "request_timeout")
            else:
                self.drop(conn)  # nothing sent: nothing to answer

    def peer_of(self, conn: Connection) -> str:
        return conn.forwarded or conn.peer or peer_name(address_of(conn.client)) or "unix"

    def refuse(self, conn: Connection, answer: bytes, peer: str, what: str) -> None:
        self.say(conn.sock, answer)
        self.peer_log.event(peer, what)
        self.drop(conn, graceful=True)

    @staticmethod
    def say(sock: socket.socket, answer: bytes) -> None:
        """Send a short answer if the socket takes it now (never wait for a slow reader)."""
        try:
            sock.setblocking(False)
            sock.send(answer)
        except OSError:
            pass

    def stop_reading(self, conn: Connection) -> None:
        self.reading.pop(conn, None)
        if conn.registered:
            conn.registered = False
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def drop(self, conn: Connection, graceful: bool = False) -> None:
        self.stop_reading(conn)
        self.nr_conns -= 1
        conn.close(graceful)

    # --- closing without blocking the loop --------------------------------------------------------

    def linger(self, sock: socket.socket) -> None:
        """Send FIN, then read until the client's (or LINGER seconds, LINGER_DRAIN bytes), so
        unread bytes do not make the kernel answer with a reset that can destroy the answer."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            if received(sock) == b"":  # the client has closed already (as most have by now): done
                sock.close()
                return
            self.poller.register(sock, selectors.EVENT_READ, self.on_linger_readable)
        except (OSError, ValueError, KeyError):
            sock.close()
            return
        self.lingering[sock] = (time.monotonic() + LINGER, 0)

    def on_linger_readable(self, sock: socket.socket) -> None:
        data = received(sock)
        if data is None:
            return
        deadline, drained = self.lingering[sock]
        if not data or drained + len(data) >= LINGER_DRAIN:
            self.end_linger(sock)
        else:
            self.lingering[sock] = (deadline, drained + len(data))

    def end_linger(self, sock: socket.socket) -> None:
        self.lingering.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        sock.close()


def received(sock: socket.socket) -> bytes | None:
    """What a readable socket has: bytes, b"" once the client has gone (closed or reset), None
    when nothing after all."""
    try:
        return sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


def fd_room(connections: int) -> int:
    """Raise this process's open-file limit to what ``connections`` need, as far as the hard
    limit allows, and return how many connections then fit (accept() must not hit EMFILE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + FD_MARGIN
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return connections
    return max(1, min(connections, soft - FD_MARGIN))
