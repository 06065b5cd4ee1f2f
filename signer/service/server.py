"""The server's own settings: where gunicorn listens, how many workers and threads it runs (sized
from the CPUs this process may really use: affinity and cgroup quota), and what the front
(:mod:`signer.service.web.front`) allows a client. Read by gunicorn.conf.py, the front and
``check-config``; the service's own configuration is :mod:`signer.service.config`."""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

from ..environment import choice, integer
from ..errors import InvalidSetting
from .config import max_body, trusted_proxies
from .errors import ConfigError
from .networks import Network

DEFAULT_THREADS = 32
DEFAULT_REQUEST_TIMEOUT = 5
DEFAULT_CONNECTIONS_PER_PEER = 64
DEFAULT_MAX_CONNECTIONS = 4096
FRONTS = ("haproxy", "none")


@dataclass(frozen=True)
class ServerSettings:
    """Where gunicorn listens, how many workers and threads per worker it runs, and what the
    front (signer.service.web.front) allows a client: the seconds a whole request may take to arrive,
    the connections one peer may hold open, all connections together, the largest body."""

    bind: str
    workers: int
    threads: int
    request_timeout: int = DEFAULT_REQUEST_TIMEOUT
    connections_per_peer: int = DEFAULT_CONNECTIONS_PER_PEER
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    front: str = "haproxy"
    max_body: int = 64 * 1024
    trusted_proxies: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.1/32"),)
    metrics_bind: str | None = None


def available_cpus(affinity: int, quota: int | None, period: int | None) -> int:
    """CPUs this process may really use: its affinity set, capped by a cgroup CPU quota
    (``cpu.max`` "200000 100000" is 2 CPUs), rounded up, at least 1. ``os.cpu_count()`` counts
    the host's CPUs, which in a container overstates what the quota allows."""
    cpus = max(affinity, 1)
    if quota and period and quota > 0 and period > 0:
        cpus = min(cpus, -(-quota // period))
    return max(cpus, 1)


def _cgroup_quota(root: str = "/sys/fs/cgroup") -> tuple[int | None, int | None]:
    """The CPU quota and period of this process's cgroup (v2 ``cpu.max`` or v1 CFS), if any."""
    candidates = ((f"{root}/cpu.max", None), (f"{root}/cpu/cpu.cfs_quota_us", f"{root}/cpu/cpu.cfs_period_us"),
                  (f"{root}/cpu,cpuacct/cpu.cfs_quota_us", f"{root}/cpu,cpuacct/cpu.cfs_period_us"))
    for quota_file, period_file in candidates:
        try:
            with open(quota_file, encoding="ascii") as handle:
                fields = handle.read().split()
            if period_file is not None:
                with open(period_file, encoding="ascii") as handle:
                    fields.append(handle.read().strip())
        except OSError:
            continue
        if len(fields) == 2 and fields[0] not in ("max", "-1") and fields[0].isascii() and fields[0].isdigit():
            return int(fields[0]), int(fields[1]) if fields[1].isascii() and fields[1].isdigit() else None
        return None, None
    return None, None


def cpus_of_this_process() -> int:
    """:func:`available_cpus` for the running process."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return available_cpus(affinity, *_cgroup_quota())


_BIND = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<port>[0-9]{1,5})|unix:/\S+")


def metrics_bind(environ: Mapping[str, str], public: str) -> str | None:
    """The metrics setting (docs/metrics.md), read here with the server's own:
    SIGNER_METRICS_BIND: host:port where /metrics is served, its own listener (unset: no metrics);
    never the public port."""
    bind = environ.get("SIGNER_METRICS_BIND", "").strip()
    if not bind:
        return None
    match = _BIND.fullmatch(bind)
    if not match or match["port"] is None or not 1 <= int(match["port"]) <= 65535:
        raise ConfigError(f"SIGNER_METRICS_BIND must be host:port (e.g. 127.0.0.1:9102), got {bind!r}")
    if public.rpartition(":")[2] == match["port"]:
        raise ConfigError(f"SIGNER_METRICS_BIND must not use SIGNER_BIND's port ({match['port']}): "
                          "/metrics has a listener of its own")
    return bind


def server_settings(environ: Mapping[str, str], cpus: int | None = None) -> ServerSettings:
    """Read ``SIGNER_BIND``, ``SIGNER_WORKERS``, ``SIGNER_THREADS``, ``SIGNER_REQUEST_TIMEOUT``,
    ``SIGNER_MAX_CONNECTIONS_PER_PEER``, ``SIGNER_MAX_CONNECTIONS``, ``SIGNER_FRONT`` (and the body
    limit and trusted proxies the front applies too); :class:`ConfigError` names
    the variable. Default workers: the available CPUs + 1 (threaded workers; the CPU-bound
    signing gains nothing from more processes than cores)."""
    bind = environ.get("SIGNER_BIND", "").strip() or "0.0.0.0:8080"
    match = _BIND.fullmatch(bind)
    if not match or (match["port"] is not None and not 1 <= int(match["port"]) <= 65535):
        raise ConfigError(f"SIGNER_BIND must be host:port (e.g. 0.0.0.0:8080) or unix:/path, got {bind!r}")
    try:
        default_workers = (cpus if cpus is not None else cpus_of_this_process()) + 1
        settings = ServerSettings(
            bind=bind,
            workers=integer(environ, "SIGNER_WORKERS", default_workers, 1, 256),
            threads=integer(environ, "SIGNER_THREADS", DEFAULT_THREADS, 1, 1024),
            request_timeout=integer(environ, "SIGNER_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT, 1, 300),
            connections_per_peer=integer(environ, "SIGNER_MAX_CONNECTIONS_PER_PEER", DEFAULT_CONNECTIONS_PER_PEER,
                                         1, 100000),
            max_connections=integer(environ, "SIGNER_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, 16, 1000000),
            front=choice(environ, "SIGNER_FRONT", FRONTS, "haproxy"),
            max_body=max_body(environ),
            trusted_proxies=trusted_proxies(environ),
            metrics_bind=metrics_bind(environ, bind),
        )
    except InvalidSetting as exc:
        raise ConfigError(exc.message) from None
    if settings.front == "haproxy" and bind.startswith("unix:"):
        raise ConfigError("SIGNER_BIND unix:/path is for a local proxy in front, which then is the front: "
                          "set SIGNER_FRONT=none too")
    return settings


def private_folder(prefix: str) -> str:
    """A fresh folder only this user may enter (0700, an unguessable name) for a replica's own
    sockets and locks: the front's, the finish-step sweeper's, the metrics aggregator's. In /dev/shm
    where there is one: a tmpfs in every container, writable under a read-only root."""
    shared = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - a RAM-backed folder, made private
    return tempfile.mkdtemp(prefix=prefix, dir=shared)
