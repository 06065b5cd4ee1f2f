"""The front: HAProxy, between clients and gunicorn, so that one well-kept HTTP/1.1 parser reads
every request and no Python thread ever waits on a client (issue #25).

gunicorn's threaded worker hands a connection to a thread, which then blocks on the socket while
the request arrives; gunicorn has no whole-request deadline, and its docs require a buffering proxy
in front. HAProxy reads each request whole (the headers within SIGNER_REQUEST_TIMEOUT of the
connection's opening, the body within as long again: ``timeout http-request`` and ``wait-for-body``,
answered 408), caps the connections of one client address from accept
(SIGNER_MAX_CONNECTIONS_PER_PEER: one more is closed; behind a trusted proxy, per forwarded address,
answered 429), refuses headers over 16 KiB (431) and bodies over SIGNER_MAX_BODY (413), and answers
malformed HTTP, and what gunicorn's parser would refuse, with 400, all before gunicorn sees a byte.
gunicorn then listens on a private Unix socket only the front can open, and learns each client's
address from the PROXY protocol line the front sends, so REMOTE_ADDR (the access log,
SIGNER_TRUSTED_PROXIES, SIGNER_USER_HEADER) stays the client's.

gunicorn's master starts the front once its socket is bound (:class:`Fronted`, through the hooks
of gunicorn.conf.py), stops it when it stops, and stops itself when the front dies, so
``gunicorn --config gunicorn.conf.py wsgi:app`` stays the one command wherever the service runs:
the image, the pod, a VM. The configuration is rendered here from the server settings and handed
to HAProxy on its standard input: nothing is written to disk (the image runs with a read-only root).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from ..server import ServerSettings, private_folder
from .statuses import CODES

HEADERS_LIMIT = 16 * 1024  # the request line and headers, as the service always allowed
# What HAProxy answers itself, each with the service's JSON error body (web/statuses.py).
FRONT_ERRORS = {400: "malformed_request", 408: "request_timeout", 413: "body_too_large",
                422: "malformed_request", 429: "too_many_connections", 500: "internal_error",
                502: "app_unavailable", 503: "app_unavailable", 504: "app_unavailable"}
INSTALL_HINT = ("install it (Debian: apt-get install haproxy), or run behind your own buffering proxy "
                "with SIGNER_FRONT=none")


@dataclass(frozen=True)
class Listen:
    """One TCP address the front listens on: its host as written (empty: every address) and port."""

    host: str
    port: int

    @classmethod
    def from_bind(cls, bind: str) -> Listen:
        """gunicorn's bind syntax (``host:port``, ``[v6]:port``, a bare host on gunicorn's 8000). A
        ``unix:`` or ``fd://`` bind is refused (ValueError): a Unix socket is reached only by a local
        proxy, which is then the front (SIGNER_FRONT=none)."""
        if bind.startswith(("unix:", "fd://")):
            raise ValueError(f"{bind!r} is not a TCP address: behind a local proxy, set SIGNER_FRONT=none")
        if bind.startswith("["):
            host, _, rest = bind[1:].partition("]")
            port = rest.removeprefix(":") or "8000"
        elif bind.count(":") == 1:
            host, _, port = bind.partition(":")
        elif ":" not in bind:
            host, port = bind, "8000"
        else:
            raise ValueError(f"{bind!r}: write an IPv6 address in brackets, [::1]:8080")
        if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{bind!r} has no port from 1 to 65535")
        return cls(host, int(port))

    @property
    def address(self) -> str:
        """As HAProxy's ``bind`` takes it."""
        return f"ipv6@{self.host}:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def claim(self) -> None:
        """Bind it for a moment: a port in use is said before anything starts (OSError)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((self.host, self.port))

    def accepts(self) -> bool:
        """Whether something answers a connect there (loopback for a wildcard host)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "*": "127.0.0.1"}.get(self.host, self.host)  # noqa: S104
        try:
            with socket.create_connection((host, self.port), timeout=0.5):
                return True
        except OSError:
            return False


def private_socket() -> str:
    """Where gunicorn listens behind the front: a Unix socket in a fresh 0700 directory in /dev/shm
    (a tmpfs in every container, writable under a read-only root), its name unguessable, so no
    other user of the host can open it or take its name first."""
    return os.path.join(private_folder("sigv4-signer-"), "gunicorn.sock")


def _quoted_json(code: str) -> str:
    status, message = CODES[code]
    body = json.dumps({"error": message, "code": code})
    if "'" in body:  # HAProxy's single quotes are strong; the table never needs one
        raise ValueError(f"error text for {code} holds a single quote")
    return f"'{body}'"


def _error_pages() -> list[str]:
    """The answers HAProxy makes itself, in the service's JSON: declared on the frontend and the
    backend (HAProxy's own parsing errors do not take them from ``defaults``)."""
    return [f"    http-error status {status} content-type application/json hdr Cache-Control no-store "
            f"string {_quoted_json(code)}" for status, code in FRONT_ERRORS.items()]


def haproxy_config(settings: ServerSettings, listens: Sequence[Listen], upstream: str) -> str:
    """The whole HAProxy configuration for these settings: every limit comes from the service's
    own settings, so ``check-config`` and the front can never disagree."""
    timeout = settings.request_timeout
    cap = settings.connections_per_peer
    trusted = " ".join(str(network) for network in settings.trusted_proxies) or "255.255.255.255/32"
    lines = [
        "global",
        f"    maxconn {settings.max_connections}",
        "    nbthread 1",
        # A buffer holds the headers (at most 16 KiB) and the whole body, so that the request is
        # read before gunicorn sees it; the rewrite reserve covers the headers the front adds.
        f"    tune.bufsize {HEADERS_LIMIT + settings.max_body + 8192}",
        "    tune.maxrewrite 4096",
        "    log stderr format raw local0 info",
        # At a stop, requests still arriving get their deadline, and no more (gunicorn.conf.py).
        f"    hard-stop-after {timeout + 1}s",
        "defaults",
        "    mode http",
        "    log global",
        # One JSON line for what the front refused or cut; nothing for normal requests (gunicorn
        # logs those) nor for connections that sent nothing. No URI: a query carries signatures.
        "    log-format '{\"front\":\"haproxy\",\"time\":\"%t\",\"remote\":\"%ci\",\"status\":%ST,"
        "\"termination\":\"%ts\",\"duration_ms\":%Ta}'",
        "    option dontlognull",
        "    option dontlog-normal",
        f"    timeout http-request {timeout}s",
        f"    timeout http-keep-alive {timeout}s",
        # A client that stops reading its answer is cut after this much silence.
        "    timeout client 10s",
        "    timeout connect 5s",
        # The app's own work (store calls included) is bounded by gunicorn's timeout; this only
        # catches a worker that never answers.
        "    timeout server 60s",
        "    timeout queue 10s",
        *_error_pages(),
        "backend per_peer",
        "    stick-table type ipv6 size 200k expire 60s store conn_cur",
        "backend per_forwarded",
        "    stick-table type ip size 200k expire 60s store conn_cur",
        "frontend public",
        *(f"    bind {listen.address}" for listen in listens),
        f"    acl trusted_proxy src {trusted}",
        # Counted from accept, before any header byte (an IPv6 client by its /64, which one host
        # usually has whole): a connection over the cap is closed at once, so idle connections from
        # a few addresses cannot fill the front (SIGNER_MAX_CONNECTIONS).
        "    tcp-request connection track-sc0 src,ipmask(32,64) table per_peer if !trusted_proxy",
        f"    tcp-request connection reject if !trusted_proxy {{ sc0_conn_cur gt {cap} }}",
        # Behind a trusted proxy, the cap counts requests in progress per forwarded address (the
        # last X-Forwarded-For entry, the one the proxy appended); one that is not an IP counts as
        # the proxy's own.
        "    acl forwarded_ip req.hdr_ip(x-forwarded-for,-1) -m found",
        "    http-request track-sc1 req.hdr_ip(x-forwarded-for,-1) table per_forwarded if trusted_proxy forwarded_ip",
        "    http-request track-sc1 src table per_forwarded if trusted_proxy !forwarded_ip",
        f"    http-request deny deny_status 429 if trusted_proxy {{ sc1_trackers gt {cap} }}",
        # What gunicorn's parser would refuse with its own HTML page, refused here in the service's
        # JSON and logged with the client's address: methods other than 3 to 20 capital letters,
        # control characters in a header, a URL over 8000 bytes (gunicorn's request line: 8190).
        "    http-request deny deny_status 400 if !{ method -m reg ^[A-Z]{3,20}$ }",
        "    http-request deny deny_status 400 if { req.hdrs -m reg [\\\\x01-\\\\x08\\\\x0b\\\\x0c\\\\x0e-\\\\x1f\\\\x7f] }",
        "    http-request return status 414 content-type application/json hdr Cache-Control no-store "
        f"string {_quoted_json('uri_too_long')} if {{ url,length gt 8000 }}",
        # 431 is no status HAProxy 2.6 has an error page for: answered with a return.
        f"    http-request return status 431 content-type application/json hdr Cache-Control no-store "
        f"string {_quoted_json('headers_too_large')} if {{ req.hdrs,length gt {HEADERS_LIMIT} }}",
        f"    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {settings.max_body} }}",
        # Then the whole body: the headers had SIGNER_REQUEST_TIMEOUT from the connection's opening,
        # the body has as long again from their end (HAProxy 2.6 starts a body's clock there, with
        # option http-buffer-request as well: measured). One byte past the limit is enough to refuse.
        f"    http-request wait-for-body time {timeout}s at-least {settings.max_body + 1}",
        f"    http-request deny deny_status 413 if {{ req.body_len gt {settings.max_body} }}",
        "    default_backend app",
        *_error_pages(),
        "backend app",
        # At most as many requests at once as gunicorn has threads; the rest wait here, in C.
        f"    server gunicorn unix@{upstream} send-proxy maxconn {settings.workers * settings.threads}",
        *_error_pages(),
    ]
    return "\n".join(lines) + "\n"


def haproxy_path() -> str | None:
    """The HAProxy binary: PATH, then Debian's /usr/sbin (not on a plain user's PATH)."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the master dies, even by SIGKILL, so a front never
    outlives the app it fronts (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Front:
    """A running HAProxy, started and stopped by gunicorn's master."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.stopping = False

    @classmethod
    def start(cls, config: str, binary: str) -> Front:
        """Start HAProxy in the foreground with ``config`` on its standard input."""
        process = subprocess.Popen(
            [binary, "-db", "-f", "/dev/stdin"], stdin=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )
        assert process.stdin is not None
        process.stdin.write(config.encode())
        process.stdin.close()
        return cls(process)

    def exited(self) -> bool:
        """Whether HAProxy is gone and was not asked to go (gunicorn's master may have reaped it)."""
        return not self.stopping and self.process.poll() is not None

    def begin_stop(self) -> None:
        """HAProxy's soft stop: it closes its listeners and finishes the requests it holds."""
        if not self.stopping and self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)
        self.stopping = True

    def wait_listening(self, listens: Sequence[Listen], timeout: float = 10.0) -> bool:
        """Wait until every address answers a connect, or HAProxy exits."""
        deadline = time.monotonic() + timeout
        pending = list(listens)
        while time.monotonic() < deadline and self.process.poll() is None:
            pending = [listen for listen in pending if not listen.accepts()]
            if not pending:
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop HAProxy: its own soft stop first (it finishes what it is answering and passes on
        what it is reading), then, past ``timeout``, kill."""
        self.begin_stop()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Fronted:
    """gunicorn's master with the front, through gunicorn.conf.py's hooks: the addresses gunicorn was
    asked to bind go to HAProxy, gunicorn binds a private socket; HAProxy starts once that socket is
    bound, stops first when gunicorn stops, and its death stops gunicorn. SIGHUP restarts the workers
    only (gunicorn's reload would re-read the configuration and bind the public port again, which
    HAProxy holds); SIGUSR2 (a second master) is refused for the same reason."""

    def __init__(self, settings: ServerSettings, binary: str, grace: float) -> None:
        self.settings = settings
        self.binary = binary
        self.grace = grace
        self.listens: list[Listen] = []
        self.socket = ""
        self.front: Front | None = None

    def on_starting(self, server: Any) -> None:
        try:
            self.listens = [Listen.from_bind(address) for address in server.cfg.bind]
        except ValueError as exc:
            _refuse(f"configuration error: {exc}")
        for listen in self.listens:
            try:
                listen.claim()
            except OSError as exc:
                _refuse(f"cannot listen on {listen.address}: {exc.strerror} (another service there?)")
        self.socket = private_socket()
        server.cfg.set("bind", [f"unix:{self.socket}"])
        server.address = server.cfg.address
        reap_workers, stop = server.reap_workers, server.stop

        def reap_and_watch_front() -> None:
            """The master reaps every child on SIGCHLD, the front too: when the front is gone, stop."""
            reap_workers()
            if self.front is not None and self.front.exited():
                from gunicorn.errors import HaltServer  # type: ignore[import-untyped]

                self.front = None  # halting reaps again
                raise HaltServer("the front (haproxy) exited; stopping", 1)

        def stop_front_first(graceful: bool = True) -> None:
            """The front stops taking connections and hands gunicorn, which still listens, the requests
            it holds (within the grace); then gunicorn's workers finish theirs."""
            if self.front is not None:
                self.front.stop(timeout=self.grace if graceful else 0.1)
            stop(graceful)

        def restart_workers() -> None:
            server.log.info("Hang up: new workers, which read the app and its environment anew; the front stays")
            for _ in range(server.num_workers):
                server.spawn_worker()
            server.manage_workers()

        def refuse_second_master() -> None:
            server.log.warning("SIGUSR2 (a second master) is not supported behind the front: restart the service")

        server.reap_workers = reap_and_watch_front
        server.stop = stop_front_first
        server.handle_hup = restart_workers
        server.handle_usr2 = refuse_second_master

    def when_ready(self, server: Any) -> None:
        self.front = Front.start(haproxy_config(self.settings, self.listens, self.socket), self.binary)
        if not self.front.wait_listening(self.listens):
            self.front.stop()
            self.front = None
            server.halt("the front (haproxy) did not start; its own line above says why", 2)
        server.log.info("Front: haproxy on %s, in front of %s", ", ".join(listen.address for listen in self.listens),
                        self.socket)

    def on_exit(self) -> None:
        if self.front is not None:
            self.front.stop()
        if self.socket:
            shutil.rmtree(os.path.dirname(self.socket), ignore_errors=True)


def _refuse(line: str) -> NoReturn:
    print(f"sigv4-signer: {line}", file=sys.stderr, flush=True)
    sys.exit(2)
