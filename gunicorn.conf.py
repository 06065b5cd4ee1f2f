"""gunicorn defaults for the signing service; every value can be overridden on the
command line or with GUNICORN_CMD_ARGS."""

import json
import multiprocessing
import os
import sys

bind = os.environ.get("SIGNER_BIND", "0.0.0.0:8080")
workers = int(os.environ.get("SIGNER_WORKERS", multiprocessing.cpu_count() * 2 + 1))
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 10000
max_requests_jitter = 1000
limit_request_line = 8190
limit_request_fields = 50
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


def on_starting(server):  # noqa: ARG001 - gunicorn hook signature
    """Refuse to start half-configured: check the environment once, before any worker."""
    from signer.service.config import load_config
    from signer.service.errors import ConfigError

    try:
        load_config()
    except ConfigError as exc:
        print(f"sigv4-signer: configuration error: {exc.message}", file=sys.stderr, flush=True)
        sys.exit(2)
