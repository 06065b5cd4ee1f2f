"""What the service counts, and how a worker tells it to the one aggregator (docs/metrics.md).

gunicorn runs several worker processes and replaces each after ``max_requests``: totals kept in a
worker would die with it, and files kept per worker (prometheus_client's multiprocess mode) pile
up and slow every scrape. So no worker keeps a total. Each event is one short line written on a
Unix socket to the aggregator that gunicorn's master started (signer/service/web/metrics_listener.py),
which holds the totals in memory for as long as the service runs and answers ``/metrics``.

:data:`METRICS` is the contract: names, kinds and label names are fixed (dashboards and alerts
rely on them). Every label value is chosen by this code, never by a caller: codes from the
refusal table, route patterns, operation names; anything else is sent as ``other``. Until
:func:`connect` (gunicorn's post_worker_init, only with SIGNER_METRICS_BIND) recording costs one
attribute test and sends nothing.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STORE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Metric:
    """One metric of the contract: ``kind`` is ``counter``, ``histogram`` or ``gauge``."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("signer_signatures_total", "counter", ("kind", "protocol", "method"),
           "Signatures handed out (URLs, POST forms, multipart strings), by protocol and signed method"),
    Metric("signer_refusals_total", "counter", ("code",), "Requests refused, by error code (docs: error codes)"),
    Metric("signer_request_seconds", "histogram", ("route",), "Time the app took to answer, by route pattern",
           REQUEST_BUCKETS),
    Metric("signer_store_request_seconds", "histogram", ("operation", "outcome"),
           "The service's own S3 requests, by operation and outcome", STORE_BUCKETS),
    Metric("signer_finish_pending", "gauge", (),
           "Finish-step markers due now, as the last sweep listed them (at most 200 are counted)"),
    Metric("signer_finish_oldest_due_seconds", "gauge", (),
           "How long the oldest due marker has been due, as the last sweep found it (rising until the next)"),
    Metric("signer_finish_checks_total", "counter", ("outcome",),
           "Finished uploads checked by the sweeps: verified, rejected, gone (never came), failed (store error)"),
    Metric("signer_webhook_deliveries_total", "counter", ("outcome",),
           "Webhook delivery attempts: delivered, failed, dropped (given up after three days)"),
    Metric("signer_webhook_oldest_undelivered_seconds", "gauge", (),
           "Age of the oldest event whose last delivery from this service failed; 0 when none is waiting"),
    Metric("signer_credentials_expiry_seconds", "gauge", (),
           "Seconds until the signing credentials expire (absent for credentials without expiry)"),
    Metric("signer_metrics_dropped_total", "counter", (),
           "Metric events lost: the aggregator was busy or gone, or an event broke the contract"),
)}

SEND_BUFFER = 1024 * 1024
"""Asked of the kernel for each worker's connection (capped by net.core.wmem_max; Linux doubles it):
each small write costs about a kilobyte of it, so this queues a thousand requests or more while the
aggregator sleeps between reads (web/metrics_listener.GATHER) or waits for a CPU."""

# The wire: one event per line, fields separated by tabs, label values by \x1f.
COUNT, OBSERVE, SET, SINCE, EXPIRES, UNDELIVERED, SETTLED = "c", "h", "g", "a", "x", "u", "s"
METHODS = frozenset({"GET", "PUT", "POST", "HEAD", "DELETE"})
CHECK_OUTCOMES = frozenset({"verified", "rejected", "gone", "failed"})
OTHER = "other"


def line(op: str, name: str, labels: tuple[str, ...] = (), value: float = 1.0) -> str:
    return f"{op}\t{name}\t{chr(31).join(labels)}\t{value!r}"


class Recorder:
    """A worker's end of the stream to the aggregator. Events recorded between :meth:`begin` and
    :meth:`end` (one request) travel in one write; others (the sweeper's) one each. A stream, not
    datagrams: Linux queues at most ``net.unix.max_dgram_qlen`` (often 10) datagrams on a socket,
    a stream as much as the send buffer holds (:data:`SEND_BUFFER`).
    A write that would wait longer than ``timeout`` (the aggregator is stalled or gone) drops the
    connection, whose half-written line the aggregator discards, and the events, which are counted
    and told with the next write that goes through: a stalled aggregator never holds a request."""

    def __init__(self) -> None:
        self.on = False
        self._path = ""
        self._timeout = 0.05
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._dropped = 0

    def connect(self, path: str, timeout: float = 0.05) -> None:
        """Send to the aggregator's socket at ``path`` (after the fork: this process's own connection)."""
        self._path, self._timeout, self._lock = path, timeout, threading.Lock()
        self.on = True

    def close(self) -> None:
        self.on = False
        with self._lock:
            self._disconnect()

    def _disconnect(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def send(self, event: str) -> None:
        batch: list[str] | None = getattr(self._local, "batch", None)
        if batch is not None:
            batch.append(event)
        else:
            self._write(event)

    def begin(self) -> None:
        """Collect this thread's events from now on (a request starts)."""
        self._local.batch = []

    def end(self) -> None:
        """Send what this thread collected since :meth:`begin` (the request is answered)."""
        events: list[str] | None = getattr(self._local, "batch", None)
        self._local.batch = None
        if events:
            self._write("\n".join(events))

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.begin()
        try:
            yield
        finally:
            self.end()

    def _write(self, text: str) -> None:
        events = text.count("\n") + 1
        with self._lock:
            if self._dropped:
                text = f"{line(COUNT, 'signer_metrics_dropped_total', (), float(self._dropped))}\n{text}"
            data = f"{text}\n".encode("utf-8", "replace")
            for attempt in (1, 2):
                fresh = self._socket is None
                try:
                    if self._socket is None:
                        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
                        self._socket.settimeout(self._timeout)
                        self._socket.connect(self._path)
                    self._socket.sendall(data, socket.MSG_NOSIGNAL)
                    self._dropped = 0
                    return
                except TimeoutError:  # stalled past the timeout: no second wait
                    self._disconnect()
                    break
                except OSError:  # gone: a restarted aggregator takes a new connection at once
                    self._disconnect()
                    if fresh or attempt == 2:
                        break
            self._dropped += events


RECORDER = Recorder()


def connect(path: str) -> None:
    RECORDER.connect(path)


def signed(protocol: str, method: str, count: int = 1, kind: str = "default") -> None:
    """``count`` signatures handed out (after every check passed and the answer is made)."""
    if RECORDER.on:
        verb = method if method in METHODS else OTHER
        RECORDER.send(line(COUNT, "signer_signatures_total", (kind, protocol, verb), float(count)))


def refused(code: str) -> None:
    """A refusal answered; ``code`` comes from the service's code table (web/statuses.py)."""
    if RECORDER.on:
        RECORDER.send(line(COUNT, "signer_refusals_total", (code,)))


def request_took(route: str, seconds: float) -> None:
    if RECORDER.on:
        RECORDER.send(line(OBSERVE, "signer_request_seconds", (route,), seconds))


def store_request(operation: str, outcome: str, seconds: float) -> None:
    if RECORDER.on:
        RECORDER.send(line(OBSERVE, "signer_store_request_seconds", (operation, outcome), seconds))


def finish_backlog(due: int, oldest_due_seconds: float) -> None:
    """What one sweep's listing found: markers due now, and how long the oldest has been due. The
    age is sent as the moment it became due (this host's clock), so it goes on growing until a
    sweep lists again: sweeps that fail (the store is down) leave it rising, not frozen."""
    if RECORDER.on:
        since = time.time() - max(0.0, oldest_due_seconds) if due else 0.0
        RECORDER.send(line(SET, "signer_finish_pending", (), float(due)) + "\n"
                      + line(SINCE, "signer_finish_oldest_due_seconds", (), since))


def finish_checked(outcome: str) -> None:
    if RECORDER.on:
        RECORDER.send(line(COUNT, "signer_finish_checks_total", (outcome if outcome in CHECK_OUTCOMES else OTHER,)))


def webhook_attempt(event_id: str, event_time: float, delivered: bool) -> None:
    """One delivery attempt of the event ``event_id`` (made by this code: a hash or a UUID) that
    happened at ``event_time`` (Unix seconds): the aggregator keeps the failing ones' times."""
    if RECORDER.on:
        outcome = "delivered" if delivered else "failed"
        waiting = line(SETTLED, event_id) if delivered else line(UNDELIVERED, event_id, (), event_time)
        RECORDER.send(line(COUNT, "signer_webhook_deliveries_total", (outcome,)) + "\n" + waiting)


def webhook_dropped(event_id: str) -> None:
    """An event given up on: counted, and no longer waiting."""
    if RECORDER.on:
        RECORDER.send(line(COUNT, "signer_webhook_deliveries_total", ("dropped",)) + "\n" + line(SETTLED, event_id))


def credentials_expire(at: float | None) -> None:
    """When the signing credentials in use expire (Unix seconds), None for none."""
    if RECORDER.on and at is not None:
        RECORDER.send(line(EXPIRES, "signer_credentials_expiry_seconds", (), at))
