"""The aggregator: one small process, started by gunicorn's master, that holds the service's metric
totals and answers ``GET /metrics`` on SIGNER_METRICS_BIND (never the public port).

Why a process of the master's and not the workers' own files (prometheus_client's multiprocess
mode): a worker recycled by ``max_requests`` takes nothing with it here, since it never held a
total; and nothing is written per worker, so the scrape costs the same after a thousand recycles
as after none (docs/metrics.md, measured by tests/e2e/test_metrics.py). Why a process and not a
thread in the master: gunicorn forks its workers from the master, and a fork copies no thread but
every lock a thread holds; an exec'd process shares nothing with the workers but the socket name.

Each worker writes event lines on its own connection to a Unix socket in a fresh 0700 folder (only
this user can connect). One thread applies them as they come; a scrape first applies what is
queued, so it sees every event written before it began. A worker that exits (recycled) closes its
connection after its last line: what it wrote is read all the same. The master restarts the
aggregator if it dies (the counters then start again from zero, which Prometheus' ``rate()`` reads
as a reset), and it dies with the master.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from ..aggregate import Totals

if TYPE_CHECKING:  # the master's side only: the aggregator process does not load the front
    from .front import Listen

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GATHER = 0.005
"""After a wake-up, the aggregator waits this long before reading, so one wake-up reads many
requests' lines (at most 200 wake-ups a second however busy the service: measured, a wake-up per
request cost more than the rest of the metrics together). A scrape reads at once."""
MAX_LINE = 64 * 1024
"""A sender whose line grows past this without an end is not one of ours: it is cut off."""


class Inbox:
    """The Unix socket the workers write to, their connections, and the totals they feed, behind
    one lock. Everything is read inside the lock, so a scrape sees every line written before it."""

    def __init__(self, path: str) -> None:
        self.totals = Totals()
        self.lock = threading.Lock()
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(128)
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.partial: dict[socket.socket, bytes] = {}

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except BlockingIOError:
                return
            connection.setblocking(False)
            self.partial[connection] = b""
            self.selector.register(connection, selectors.EVENT_READ)

    def _read(self, connection: socket.socket) -> None:
        """Apply the complete lines waiting on ``connection``; at its end, drop a half-written one."""
        chunks = [self.partial[connection]]
        ended = False
        while True:
            try:
                chunk = connection.recv(1 << 20)
            except BlockingIOError:
                break
            except OSError:
                chunk = b""
            if not chunk:  # the worker is gone (recycled) or gave up on this connection
                ended = True
                break
            chunks.append(chunk)
        done, _, pending = b"".join(chunks).rpartition(b"\n")
        if done:
            self.totals.apply(done, time.time())
        if ended or len(pending) > MAX_LINE:  # a half-written line has no end coming
            self._forget(connection)
        else:
            self.partial[connection] = pending

    def _forget(self, connection: socket.socket) -> None:
        self.selector.unregister(connection)
        del self.partial[connection]
        connection.close()

    def drain(self) -> None:
        """Take new connections and read every one (the lock held)."""
        self._accept()
        for connection in list(self.partial):
            if connection in self.partial:
                self._read(connection)

    def run(self) -> None:
        while True:
            self.selector.select()
            time.sleep(GATHER)
            with self.lock:
                self.drain()

    def scrape(self) -> bytes:
        with self.lock:
            self.drain()
            return self.totals.render(time.time()).encode("utf-8")


def _handler(inbox: Inbox) -> type[BaseHTTPRequestHandler]:
    class Scrape(BaseHTTPRequestHandler):
        timeout = 10  # a scraper that stalls holds one thread, for this long

        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self._answer(404, b'{"error":"no endpoint at this path","code":"no_such_route"}\n', "application/json")
                return
            self._answer(200, inbox.scrape(), CONTENT_TYPE)

        def _answer(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass  # a scrape every 15 s is not news

    return Scrape


def serve(bind: str, path: str) -> None:
    """The aggregator's main: totals from ``path``, ``/metrics`` on ``bind`` (``host:port`` or
    ``[v6]:port``, checked by the master already). Neither the front nor the service's configuration
    is loaded here: about 25 MiB resident, most of it Python and http.server."""
    host, _, port = bind.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    inbox = Inbox(path)

    class Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        daemon_threads = True

    server = Server((host, int(port)), _handler(inbox))
    threading.Thread(target=inbox.run, name="metrics-inbox", daemon=True).start()
    server.serve_forever()


class Aggregator:
    """The aggregator process, seen from gunicorn's master (gunicorn.conf.py's hooks): started in
    on_starting (before any worker forks, so each worker knows the socket), restarted if it dies,
    stopped at on_exit."""

    def __init__(self, bind: str) -> None:
        from .front import Listen

        self.bind = bind
        self.listen: Listen = Listen.from_bind(bind)
        self.folder = ""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> str:
        return os.path.join(self.folder, "metrics.sock")

    def start(self, timeout: float = 10.0) -> None:
        """Start it and wait until it answers; OSError if it does not."""
        if not self.folder:
            from ..server import private_folder  # here: the aggregator's own process need not load the service

            self.folder = private_folder("sigv4-signer-metrics-")
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        from .front import _die_with_parent

        # Its own session: a signal to the service's process group (Ctrl-C, a supervisor's SIGTERM)
        # reaches the master, which stops it after the workers; it dies with the master in any case.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "signer.service.web.metrics_listener", self.bind, self.socket],
            preexec_fn=_die_with_parent, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if os.path.exists(self.socket) and self.listen.accepts():
                return
            time.sleep(0.05)
        self.stop()
        raise OSError(f"the metrics listener did not start on {self.bind}")

    def exited(self) -> bool:
        """Whether it is gone (gunicorn's master may have reaped it: poll() then says 0)."""
        return self.process is not None and self.process.poll() is not None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = ""


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
