"""gunicorn defaults for the signing service; every value can be overridden on the
command line or with GUNICORN_CMD_ARGS.

HAProxy in front (signer/service/web/front.py): gunicorn's master starts it on the addresses gunicorn
was told to bind (SIGNER_BIND or --bind) and itself listens on a private Unix socket behind it, so
every request is read whole by HAProxy before a thread sees it: a client that sends half a request
and stalls, or trickles it, holds an HAProxy socket until SIGNER_REQUEST_TIMEOUT, never a thread
(tests/test_slow_clients.py; see README, Deploy). SIGNER_FRONT=none binds gunicorn itself, for a
deployment whose own buffering proxy is in front.
Default workers: the CPUs this process may use (affinity and cgroup quota) + 1."""

import json
import os
import sys
from typing import Any

from signer.service.config import WARNED, load_config
from signer.service.errors import ConfigError
from signer.service.server import server_settings
from signer.service.web.front import HEADERS_LIMIT, INSTALL_HINT, Fronted, Listen, haproxy_path
from signer.service.web.metrics_listener import Aggregator

# Refuse to start half-configured: check the whole environment once, as gunicorn reads this
# file, before it logs or binds anything. The one line names the variable; the exit code is 2.
try:
    _settings = server_settings(os.environ)
    _warnings = load_config().warnings
except ConfigError as exc:
    print(f"sigv4-signer: configuration error: {exc.message}", file=sys.stderr, flush=True)
    sys.exit(2)
# Said once, here, rather than once per worker among gunicorn's lines (create_app skips them then).
for _warning in _warnings:
    print(f"sigv4-signer: warning: {_warning}", file=sys.stderr, flush=True)
os.environ[WARNED] = "1"
_haproxy = haproxy_path() if _settings.front == "haproxy" else None
if _settings.front == "haproxy" and _haproxy is None:
    print(f"sigv4-signer: SIGNER_FRONT=haproxy but haproxy is not installed: {INSTALL_HINT}", file=sys.stderr,
          flush=True)
    sys.exit(2)

bind = _settings.bind
workers = _settings.workers
# gunicorn's own threaded worker: behind the front, a request reaches it whole, so a thread never
# waits on a client.
worker_class = "gthread"
threads = _settings.threads
worker_connections = 512
# The front keeps the clients' connections alive; each of its requests to gunicorn is a new
# connection on the Unix socket, closed after the answer.
keepalive = 0
# The socket behind the front is the master's own: 0700, so only this user (the front) opens it.
umask = 0o077
# The front names each client in a PROXY protocol line, which gunicorn reads into REMOTE_ADDR.
proxy_protocol = "v1" if _haproxy else "off"
# Scheme, host and prefix from a trusted proxy are the app's to honour (web/proxy.py, by the
# client's address); gunicorn would trust them, and SCRIPT_NAME / PATH_INFO headers, from anyone on
# the Unix socket.
secure_scheme_headers: dict[str, str] = {}
forwarder_headers = ""
timeout = 30
# With the front's FRONT_GRACE before it, below the 10 s a container runtime (docker/podman stop)
# waits before SIGKILL; Kubernetes' terminationGracePeriodSeconds in deploy/kubernetes is above it.
graceful_timeout = 5
max_requests = 10000
max_requests_jitter = 1000
# The front bounds the request line (8000 bytes), the headers (16 KiB, 101 at most) and refuses what
# gunicorn's parser would; these are gunicorn's own bounds behind it (SIGNER_FRONT=none: its only ones).
limit_request_line = 8190
limit_request_fields = 50 if _settings.front == "none" else 32768
# Not 0 behind the front: gunicorn 27 reads 0 as its default 8190, and a header the front admits (a JWT
# with many claims) got gunicorn's HTML 431.
limit_request_field_size = 8190 if _settings.front == "none" else HEADERS_LIMIT
# The worker heartbeat file: /dev/shm is a tmpfs in every container, so a read-only root works.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - a RAM-backed folder for the heartbeat: works with a read-only root
# No control socket: it would need a writable $HOME or $XDG_RUNTIME_DIR, and nothing uses it.
control_socket_disable = True
# Only these proxies may set X-Forwarded-* (scheme, host, prefix); the same list
# decides who may set SIGNER_USER_HEADER (see signer/callers.py).
forwarded_allow_ips = os.environ.get("SIGNER_TRUSTED_PROXIES", "127.0.0.1")
accesslog = "-"
errorlog = "-"
# One JSON object per line. Query strings are left out: they could carry signatures.
# The logger class JSON-escapes every value, so no client text can break a line or forge one.
logger_class = "signer.service.web.accesslog.JsonAccessLogger"
access_log_format = json.dumps(
    {
        "time": "%(t)s",
        "remote": "%(h)s",
        "method": "%(m)s",
        "path": "%(U)s",
        "status": "%(s)s",
        "bytes": "%(B)s",
        "duration_us": "%(D)s",
        "user_agent": "%(a)s",
    }
)



# Of graceful_timeout, the seconds the front may take to pass on what it holds at a stop: both
# together stay below the 10 s a container runtime waits before SIGKILL.
FRONT_GRACE = 4.0
_fronted = Fronted(_settings, _haproxy, FRONT_GRACE) if _haproxy else None
# SIGNER_METRICS_BIND: the aggregator the workers send their metric events to (docs/metrics.md).
_metrics = Aggregator(_settings.metrics_bind) if _settings.metrics_bind else None


_replica: dict[str, str] = {}
"""This replica's private folder, made by the master: its workers elect one finish-step sweeper there
(signer/service/sweeping.py)."""


def on_starting(server: object) -> None:
    """Behind the front, gunicorn binds a private socket; the front takes the addresses gunicorn was
    asked to bind (SIGNER_BIND, or --bind on the command line). signer/service/web/front.py.
    Then the metrics aggregator starts, before any worker forks, so each knows where to send, and the
    replica's folder for its one sweeper is made."""
    from signer.service.sweeping import replica_folder

    public = _ports(server.cfg.bind)  # type: ignore[attr-defined]
    if _fronted is not None:
        _fronted.on_starting(server)
    if _metrics is not None:
        _start_metrics(server, public)
    _replica["folder"] = replica_folder()


def _ports(binds: list[str]) -> set[int]:
    """The TCP ports among gunicorn's binds (one it cannot read is the front's to refuse)."""
    ports = set()
    for address in binds:
        try:
            ports.add(Listen.from_bind(address).port)
        except ValueError:
            continue
    return ports


def _start_metrics(server: Any, public: set[int]) -> None:
    """Start the aggregator (signer/service/web/metrics_listener.py) on its own port, never one
    gunicorn was asked to serve on; the master restarts it if it dies."""
    assert _metrics is not None
    if _metrics.listen.port in public:
        print(f"sigv4-signer: configuration error: SIGNER_METRICS_BIND {_metrics.bind} is the public port",
              file=sys.stderr, flush=True)
        sys.exit(2)
    try:
        _metrics.listen.claim()
        _metrics.start()
    except OSError as exc:
        print(f"sigv4-signer: cannot serve metrics on {_metrics.bind}: {exc.strerror or exc}", file=sys.stderr,
              flush=True)
        sys.exit(2)
    server.log.info("Metrics: /metrics on %s", _metrics.bind)
    reap_workers = server.reap_workers

    def reap_and_watch_metrics() -> None:
        reap_workers()
        if _metrics is not None and _metrics.exited():
            server.log.warning("the metrics aggregator exited; starting it again (its counters start from 0)")
            try:
                _metrics.start()
            except OSError as exc:
                server.log.error("the metrics aggregator did not start again: %s", exc)

    server.reap_workers = reap_and_watch_metrics


def when_ready(server: object) -> None:
    """The private socket is bound: start the front and wait until it listens."""
    if _fronted is not None:
        _fronted.when_ready(server)


def on_exit(server: object) -> None:  # noqa: ARG001 - gunicorn's hook signature
    """gunicorn stops: the front stops with it, its socket's folder goes, and the sweeper's."""
    import shutil

    if _fronted is not None:
        _fronted.on_exit()
    if _metrics is not None:
        _metrics.stop()
    if "folder" in _replica:
        shutil.rmtree(_replica["folder"], ignore_errors=True)


def post_worker_init(worker: object) -> None:
    """The app is loaded: move everything made so far out of the garbage collector's sight.
    Those objects live as long as the worker, yet every full collection walked them all;
    frozen, a collection costs only what requests made. With SIGNER_METRICS_BIND, connect to the
    aggregator and time the app's requests. Then start this worker's finish-step sweeper (after
    the fork: a thread does not survive one); one worker of the replica leads it
    (signer/service/sweeping.py), and with SIGNER_EVENTS_QUEUE_URL polls the queue too."""
    import gc

    from signer.service.events import poller
    from signer.service.sweeping import start_sweeper

    gc.collect()
    gc.freeze()
    app = worker.wsgi  # type: ignore[attr-defined]  # the app gunicorn loaded
    config = getattr(app, "extensions", {}).get("signer_config")  # None: another app (benchmarks/apps.py)
    if config is not None and _metrics is not None:  # before the sweeper: it records too
        from signer.service import metrics
        from signer.service.web.measured import measure

        metrics.connect(_metrics.socket)
        measure(app)
    if config is not None:
        also = poller(config.finish, config.events) if config.events is not None else None
        others = tuple(finish for finish in config.finishes.values() if finish is not config.finish)  # kinds
        worker.signer_sweeper = start_sweeper(config.finish, _replica.get("folder"), also,  # type: ignore[attr-defined]
                                              more=others)


def worker_exit(server: object, worker: object) -> None:  # noqa: ARG001 - gunicorn's hook signature
    """A worker leaving (recycled after max_requests, or stopping) finishes the marker in hand;
    anything it did not get to stays in the store for the next sweep, here or elsewhere. Then the
    audit lines still queued are written (signer/service/grants.py)."""
    from signer.service import grants

    sweeper = getattr(worker, "signer_sweeper", None)
    if sweeper is not None:
        sweeper.stop(timeout=5.0)
    if grants.audit_stream is not None:
        grants.audit_stream.close()
