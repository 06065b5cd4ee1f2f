"""A counting proxy between the service and its store, on 127.0.0.1 and a free port, in a thread:
every request is passed on unchanged (its Host header too, so the store checks the signature the
service made for the proxy's address) and recorded as (method, path, query). Point
SIGNER_ENDPOINT_URL at ``proxy.url`` and count what the service asked of the store."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tests.servers import serving


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: str

    @property
    def kind(self) -> str:
        """LIST, GET, PUT, HEAD, DELETE, POST: what S3 charges by."""
        if self.method == "GET" and "list-type" in parse_qs(self.query, keep_blank_values=True):
            return "LIST"
        return self.method


@dataclass
class Counter:
    url: str
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str | None = None, under: str = "") -> int:
        """Requests of ``kind`` (all without) whose path has ``under`` in it."""
        with self.lock:
            return sum(1 for seen in self.seen if (kind is None or seen.kind == kind) and under in seen.path)

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()


@contextmanager
def counting_proxy(upstream: str) -> Iterator[Counter]:
    """Forward to ``upstream`` (``http://127.0.0.1:<port>``), counting; yields the counter."""
    target = urlsplit(upstream)
    counter = Counter("")

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            parts = urlsplit(self.path)
            with counter.lock:
                counter.seen.append(Seen(self.command, parts.path, parts.query))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
            try:
                connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    connection.putheader(name, value)
                connection.endheaders(body)
                answer = connection.getresponse()
                data = answer.read()
            finally:
                connection.close()
            self.send_response_only(answer.status, answer.reason)
            for name, value in answer.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        counter.url = url
        yield counter
