"""gunicorn defaults for the signing service; every value can be overridden on the
command line or with GUNICORN_CMD_ARGS.

Threaded workers that read each whole request before a thread sees it: a client that sends half a
request and stalls, or trickles it, holds a socket until SIGNER_REQUEST_TIMEOUT, never a thread, so
/healthz and /v1/presign keep answering (tests/test_server.py; see README, Deploy).
Default workers: the CPUs this process may use (affinity and cgroup quota) + 1."""

import json
import os
import sys

from signer.service.config import load_config
from signer.service.errors import ConfigError
from signer.service.server import server_settings

# Refuse to start half-configured: check the whole environment once, as gunicorn reads this
# file, before it logs or binds anything. The one line names the variable; the exit code is 2.
try:
    _settings = server_settings(os.environ)
    load_config()
except ConfigError as exc:
    print(f"sigv4-signer: configuration error: {exc.message}", file=sys.stderr, flush=True)
    sys.exit(2)

bind = _settings.bind
workers = _settings.workers
# gthread, except that a request is read whole (headers and body, under SIGNER_REQUEST_TIMEOUT) in
# the worker's event loop before a thread sees it, and one peer holds at most
# SIGNER_MAX_CONNECTIONS_PER_PEER connections per worker (signer/service/web/worker.py).
worker_class = "signer.service.web.worker.WholeRequestWorker"
threads = _settings.threads
# Connections being read, or kept alive, hold a socket and at most SIGNER_MAX_BODY + 16 KiB of
# memory, not a thread: a worker holds this many (the worker raises its open-file limit to fit).
worker_connections = 512
# No kept-alive idle connections by default (a proxy in front keeps its own client connections
# alive); with --keep-alive N they wait in the event loop, not in a thread, and are closed after N s.
keepalive = 0
timeout = 30
# Below the 10 s a container runtime (docker/podman stop) waits before SIGKILL; Kubernetes'
# terminationGracePeriodSeconds in deploy/kubernetes is above it as well.
graceful_timeout = 8
max_requests = 10000
max_requests_jitter = 1000
limit_request_line = 8190
limit_request_fields = 50
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



def post_worker_init(worker: object) -> None:
    """The app is loaded: move everything made so far out of the garbage collector's sight.
    Those objects live as long as the worker, yet every full collection walked them all;
    frozen, a collection costs only what requests made. Then start this worker's finish-step
    sweeper (after the fork: a thread does not survive one; signer/service/finish.py)."""
    import gc

    from signer.service.finish import start_sweeper

    gc.collect()
    gc.freeze()
    app = worker.wsgi  # type: ignore[attr-defined]  # the app gunicorn loaded
    config = getattr(app, "extensions", {}).get("signer_config")  # None: another app (benchmarks/apps.py)
    if config is not None:
        worker.signer_sweeper = start_sweeper(config.finish)  # type: ignore[attr-defined]


def worker_exit(server: object, worker: object) -> None:  # noqa: ARG001 - gunicorn's hook signature
    """A worker leaving (recycled after max_requests, or stopping) finishes the marker in hand;
    anything it did not get to stays in the store for the next sweep, here or elsewhere."""
    sweeper = getattr(worker, "signer_sweeper", None)
    if sweeper is not None:
        sweeper.stop(timeout=5.0)
