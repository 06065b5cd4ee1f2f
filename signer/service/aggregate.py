"""The totals the aggregator holds for the whole service, and their Prometheus text (version 0.0.4).

Fed the workers' event lines (signer/service/metrics.py); every name, kind and label count is
checked against :data:`METRICS`, and each metric keeps at most :data:`MAX_SERIES` label sets, so
no sender can grow the memory or the scrape without bound. Pure: the process around it is
signer/service/web/metrics_listener.py.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from dataclasses import dataclass, field

from .metrics import COUNT, EXPIRES, METRICS, OBSERVE, SET, SETTLED, SINCE, UNDELIVERED, Metric

MAX_SERIES = 1000
MAX_WAITING = 10_000
"""Undelivered events remembered; past it the newest failures are not added (the oldest matter)."""
FORGET_WAITING = 2 * 3600.0
"""An undelivered event not reported again for this long (two of the finish step's longest backoffs)
was delivered or dropped by another replica, or its worker: forgotten."""
_EVENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_VALUE = re.compile(r"[^\t\n\x1f]{1,200}")


@dataclass
class Histogram:
    buckets: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class Totals:
    """Everything since the service started: counters, histograms, gauges (last report wins)."""

    counters: dict[tuple[str, tuple[str, ...]], float] = field(default_factory=dict)
    histograms: dict[tuple[str, tuple[str, ...]], Histogram] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    expires_at: float | None = None
    since: dict[str, float] = field(default_factory=dict)
    """Gauges of an age: when it began (Unix seconds, 0 for none), rendered as the seconds since."""
    waiting: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Undelivered event id -> (its time, when a failure was last reported), Unix seconds."""
    series: dict[str, int] = field(default_factory=dict)
    heads: dict[str, tuple[str, Metric, tuple[str, ...]]] = field(default_factory=dict)
    """A line's text before its value -> what it was checked to mean."""

    def apply(self, datagram: bytes, now: float) -> None:
        """Apply every line of one datagram; a line that breaks the contract is counted as dropped."""
        for text in datagram.decode("utf-8", "replace").split("\n"):
            if not self._apply(text, now):
                self._count("signer_metrics_dropped_total", (), 1.0)

    def _apply(self, text: str, now: float) -> bool:
        head, _, raw = text.rpartition("\t")
        try:
            value = float(raw)
        except ValueError:
            return False
        if not math.isfinite(value):
            return False
        known = self.heads.get(head)  # a line seen before: checked then (the per-request path)
        if known is not None:
            return self._update(*known, value)
        parts = head.split("\t")
        if len(parts) != 3:
            return False
        op, name, joined = parts
        if op in (UNDELIVERED, SETTLED):
            return self._waiting(op, name, value, now)
        metric = METRICS.get(name)
        labels = tuple(joined.split("\x1f")) if joined else ()
        if metric is None or len(labels) != len(metric.labels) or not all(_VALUE.fullmatch(v) for v in labels):
            return False
        if not self._update(op, metric, labels, value):
            return False
        self.heads[head] = (op, metric, labels)  # bounded: only lines whose series was admitted
        return True

    def _update(self, op: str, metric: Metric, labels: tuple[str, ...], value: float) -> bool:
        if op == COUNT and metric.kind == "counter" and value >= 0:
            return self._count(metric.name, labels, value)
        if op == OBSERVE and metric.kind == "histogram":
            return self._observe(metric, labels, value)
        if op == SET and metric.kind == "gauge" and not labels:
            self.gauges[metric.name] = value
            return True
        if op == SINCE and metric.kind == "gauge" and not labels:
            self.since[metric.name] = value
            return True
        if op == EXPIRES and metric.name == "signer_credentials_expiry_seconds":
            self.expires_at = value
            return True
        return False

    def _admit(self, name: str, known: bool) -> bool:
        if known:
            return True
        if self.series.get(name, 0) >= MAX_SERIES:
            return False
        self.series[name] = self.series.get(name, 0) + 1
        return True

    def _count(self, name: str, labels: tuple[str, ...], value: float) -> bool:
        key = (name, labels)
        if not self._admit(name, key in self.counters):
            return False
        self.counters[key] = self.counters.get(key, 0.0) + value
        return True

    def _observe(self, metric: Metric, labels: tuple[str, ...], value: float) -> bool:
        key = (metric.name, labels)
        found = self.histograms.get(key)
        if found is None:
            if not self._admit(metric.name, False):
                return False
            found = self.histograms[key] = Histogram([0] * len(metric.buckets))
        index = bisect_left(metric.buckets, value)  # the first bound >= value: Prometheus' le
        if index < len(found.buckets):
            found.buckets[index] += 1
        found.total += value
        found.count += 1
        return True

    def _waiting(self, op: str, event_id: str, event_time: float, now: float) -> bool:
        if not _EVENT_ID.fullmatch(event_id):
            return False
        if op == SETTLED:
            self.waiting.pop(event_id, None)
        elif event_id in self.waiting or len(self.waiting) < MAX_WAITING:
            self.waiting[event_id] = (event_time, now)
        return True

    def oldest_undelivered(self, now: float) -> float:
        for event_id, (_, seen) in list(self.waiting.items()):
            if now - seen > FORGET_WAITING:
                del self.waiting[event_id]
        return max((now - at for at, _ in self.waiting.values()), default=0.0)

    def render(self, now: float) -> str:
        """The Prometheus text format, metrics in :data:`METRICS` order, label sets sorted."""
        out: list[str] = []
        for metric in METRICS.values():
            out.append(f"# HELP {metric.name} {metric.help}")
            out.append(f"# TYPE {metric.name} {metric.kind}")
            if metric.kind == "counter":
                out.extend(f"{metric.name}{_labels(metric.labels, labels)} {_number(value)}"
                           for (name, labels), value in sorted(self.counters.items()) if name == metric.name)
            elif metric.kind == "histogram":
                for (name, labels), found in sorted(self.histograms.items(), key=lambda item: item[0]):
                    if name == metric.name:
                        out.extend(_histogram(metric, labels, found))
            elif metric.name == "signer_webhook_oldest_undelivered_seconds":
                out.append(f"{metric.name} {_number(self.oldest_undelivered(now))}")
            elif metric.name == "signer_credentials_expiry_seconds":
                if self.expires_at is not None:
                    out.append(f"{metric.name} {_number(self.expires_at - now)}")
            elif metric.name in self.since:
                began = self.since[metric.name]
                out.append(f"{metric.name} {_number(max(0.0, now - began) if began else 0.0)}")
            else:
                out.append(f"{metric.name} {_number(self.gauges.get(metric.name, 0.0))}")
        return "\n".join(out) + "\n"


def _histogram(metric: Metric, labels: tuple[str, ...], found: Histogram) -> list[str]:
    lines, running = [], 0
    for bound, count in zip(metric.buckets, found.buckets, strict=True):
        running += count
        lines.append(f"{metric.name}_bucket{_labels((*metric.labels, 'le'), (*labels, repr(float(bound))))} {running}")
    lines.append(f"{metric.name}_bucket{_labels((*metric.labels, 'le'), (*labels, '+Inf'))} {found.count}")
    lines.append(f"{metric.name}_sum{_labels(metric.labels, labels)} {_number(found.total)}")
    lines.append(f"{metric.name}_count{_labels(metric.labels, labels)} {found.count}")
    return lines


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for value in values)
    return "{" + ",".join(f'{name}="{value}"' for name, value in zip(names, escaped, strict=True)) + "}"


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e15 else repr(value)
