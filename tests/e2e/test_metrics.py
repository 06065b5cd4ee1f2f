"""Metrics end to end (issue #28): the service under gunicorn with two workers that max_requests
recycles during the test, in front of SeaweedFS; /metrics read from the aggregator's own listener
with prometheus_client's parser. And the finish step's gauges from real sweeps over real markers."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from prometheus_client.parser import text_string_to_metric_families

from signer import Bucket
from signer.service import finish as finishing
from signer.service import metrics
from signer.service.finish import Expectation, Finish, expect_upload, sweep
from signer.service.rules import Rules
from signer.service.web.metrics_listener import Aggregator
from tests.conftest import ACCESS_KEY, ALICE_TOKEN, SECRET_KEY, env_with
from tests.counting_proxy import Counter, counting_proxy
from tests.seaweedfs import SeaweedFS
from tests.servers import free_port, running
from tests.webhook_receiver import receiver

SECRET = "webhook-secret-for-tests-0123456789abcdef"
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@dataclass
class Service:
    url: str
    metrics_url: str
    master: int
    log: Path

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = ALICE_TOKEN,
             ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(f"{self.url}{path}", method=method, headers=headers,
                                         data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(request, timeout=15) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as refused:
            with refused:
                return refused.code, json.loads(refused.read() or b"{}")

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return parse(answer.read().decode())

    def recycles(self) -> int:
        return self.log.read_text().count("Autorestarting worker after current request")


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    return sum(value for found, value in samples.get(name, {}).items() if set(labels.items()) <= set(found))


@contextmanager
def service(tmp_path: Path, weed: SeaweedFS, *, workers: int = 2, max_requests: int = 0,
            **overrides: str) -> Iterator[Service]:
    port, metrics_port = free_port(), free_port()
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))},
               **env_with(SIGNER_ALLOWED_CONTENT_TYPES="image/*", SIGNER_METRICS_BIND=f"127.0.0.1:{metrics_port}",
                          **{**weed.signer_env("path"), **overrides})}
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", str(workers), "--max-requests", str(max_requests), "--max-requests-jitter", "0",
               "wsgi:app"]
    log = tmp_path / f"service-{port}.log"
    with running(command, f"http://127.0.0.1:{port}/healthz", env=environ, log_path=log) as process:
        yield Service(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics", process.pid, log)


def aggregator_of(master: int) -> tuple[int, str]:
    """The aggregator the master started: its pid and its socket's folder."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True).stdout
    for pid in out.split():
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"signer.service.web.metrics_listener" in args:
            return int(pid), os.path.dirname(args[-2].decode())
    raise AssertionError(f"no aggregator among the master's children: {out}")


def presign_body(number: int) -> dict[str, Any]:
    return {"method": "PUT", "key": f"uploads/alice/m{number}.png", "content_type": "image/png",
            "content_length": 10}


def settled(signer: Service, store: Counter) -> Samples:
    """A scrape once the store is quiet: a newly elected sweeper may LIST at any time, and the proxy
    counts a request when it arrives, the worker when its answer has come back. The counts must
    then agree exactly (the check after this fails if they never do)."""
    for _ in range(49):
        before = store.count()
        samples = signer.scrape()
        if store.count() == before and total(samples, "signer_store_request_seconds_count") == before:
            return samples
        time.sleep(0.1)
    return signer.scrape()


def test_counts_are_exact_across_recycled_workers_and_the_scrape_stays_fast(weed: SeaweedFS, tmp_path: Path) -> None:
    """N presigns, M refusals, K store calls, with 2 workers recycled after every 3 requests: the
    totals are exactly N, M, K, halfway and at the end, and a scrape after 10+ recycles is fast."""
    # K is counted by a proxy in front of the store: a recycled worker may be elected the replica's
    # sweeper and LIST the pending markers once, beside the /v1/objects LISTs sent here.
    with counting_proxy(weed.path_endpoint) as store, \
            service(tmp_path, weed, max_requests=3, SIGNER_FINISH_INTERVAL="3600", SIGNER_ENDPOINT_URL=store.url) \
            as signer:
        refusals = [("POST", "/v1/presign", presign_body(0), "wrong-token-0123456789abcdef", 401),  # unauthorized
                    ("POST", "/v1/presign", {"method": "GET", "key": "uploads/bob/x.png"}, ALICE_TOKEN, 403),
                    ("GET", "/uploads/alice/m0.png", None, ALICE_TOKEN, 404)]  # no route: a fixed label
        sent = {"presigns": 0, "refusals": 0, "store": 0}

        def round_of_requests(count: int) -> None:
            for number in range(count):
                status, answer = signer.call("POST", "/v1/presign", presign_body(number))
                assert status == 200, answer
                sent["presigns"] += 1
                method, path, body, token, expected = refusals[number % 3]
                assert signer.call(method, path, body, token)[0] == expected
                sent["refusals"] += 1
                if number % 2 == 0:
                    status, answer = signer.call("GET", "/v1/objects")  # one ListObjectsV2 each
                    assert status == 200, answer
                    sent["store"] += 1

        def check(samples: Samples) -> None:
            assert total(samples, "signer_signatures_total") == sent["presigns"]
            assert total(samples, "signer_signatures_total", kind="default", protocol="presign",
                         method="PUT") == sent["presigns"]
            assert total(samples, "signer_refusals_total") == sent["refusals"]
            for code in ("unauthorized", "key_not_allowed", "no_such_route"):
                assert total(samples, "signer_refusals_total", code=code) == sent["refusals"] / 3
            assert total(samples, "signer_store_request_seconds_count") == store.count() >= sent["store"]
            assert total(samples, "signer_store_request_seconds_count", operation="LIST", outcome="ok") == \
                store.count("LIST")
            routes = {dict(labels)["route"] for labels in samples["signer_request_seconds_count"]}
            assert routes <= {"/v1/presign", "/v1/objects", "/healthz", "unmatched"}  # patterns, never a client's path

        round_of_requests(12)
        halfway = signer.recycles()
        assert halfway >= 3
        check(settled(signer, store))
        round_of_requests(12)
        while signer.recycles() < 10:
            assert signer.call("GET", "/healthz", token=None)[0] == 200
        assert signer.recycles() > halfway
        samples = settled(signer, store)
        check(samples)
        assert (sent["presigns"], sent["refusals"], sent["store"]) == (24, 24, 12)

        timings = []
        for _ in range(5):
            started = time.perf_counter()
            signer.scrape()
            timings.append(time.perf_counter() - started)
        assert statistics.median(timings) < 0.05, timings
        aggregator, folder = aggregator_of(signer.master)
        assert os.listdir(folder) == ["metrics.sock"]  # nothing per worker piles up
        assert os.stat(folder).st_mode & 0o777 == 0o700

        # Never on the public port.
        status, answer = signer.call("GET", "/metrics", token=None)
        assert (status, answer["code"]) == (404, "no_such_route")
        with pytest.raises(urllib.error.HTTPError) as other:  # and the metrics listener serves nothing else
            urllib.request.urlopen(signer.metrics_url.replace("/metrics", "/v1/presign"), timeout=10)
        assert other.value.code == 404
        other.value.close()
        # An aggregator that dies is started again by the master (its counts start from zero).
        os.kill(aggregator, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if aggregator_of(signer.master)[0] != aggregator:
                    signer.scrape()
                    break
            except (AssertionError, OSError):
                pass
            time.sleep(0.2)
        else:
            raise AssertionError("the aggregator was not started again")
        assert signer.call("POST", "/v1/presign", presign_body(99))[0] == 200
        assert total(signer.scrape(), "signer_signatures_total") == 1
    assert not os.path.exists(folder)  # the master removed it at exit
    # Restarted once, after the SIGKILL; the stop (SIGTERM to the service's process group) did not
    # reach it: its own session, stopped by the master.
    assert signer.log.read_text().count("the metrics aggregator exited") == 1


def test_failing_webhooks_show_and_clear(weed: SeaweedFS, tmp_path: Path) -> None:
    """A receiver answering 500: failures counted, the oldest undelivered event ages; fixed, it is 0."""
    with receiver([500] * 1000) as hook, service(tmp_path, weed, SIGNER_WEBHOOK_URL=hook.url,
                                                  SIGNER_WEBHOOK_SECRET=SECRET, SIGNER_FINISH_INTERVAL="1") as signer:
        body = b"0123456789"
        status, answer = signer.call("POST", "/v1/presign", presign_body(1))
        assert status == 200, answer
        upload = urllib.request.Request(answer["url"], data=body, method="PUT", headers=answer["headers"])
        assert urllib.request.urlopen(upload, timeout=15).status == 200

        def wait_for(condition: Any, what: str, timeout: float = 60) -> Samples:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                samples = signer.scrape()
                if condition(samples):
                    return samples
                time.sleep(0.2)
            raise AssertionError(f"{what}: {samples}")

        first = wait_for(lambda s: total(s, "signer_webhook_deliveries_total", outcome="failed") >= 2,
                         "two failed deliveries")
        assert total(first, "signer_webhook_deliveries_total", outcome="delivered") == 0
        age = total(first, "signer_webhook_oldest_undelivered_seconds")
        assert age > 0
        time.sleep(1.5)
        later = signer.scrape()
        assert total(later, "signer_webhook_oldest_undelivered_seconds") >= age + 1  # it grows while failing
        assert total(later, "signer_finish_checks_total", outcome="verified") == 1
        hook.statuses.clear()  # fixed: 200 from now on
        done = wait_for(lambda s: total(s, "signer_webhook_deliveries_total", outcome="delivered") == 1,
                        "the delivery once the receiver is fixed")
        assert total(done, "signer_webhook_oldest_undelivered_seconds") == 0
        assert len(hook.deliveries) == total(done, "signer_webhook_deliveries_total")
        assert len({delivery.event["id"] for delivery in hook.deliveries}) == 1


@pytest.fixture
def aggregator() -> Iterator[Aggregator]:
    """The aggregator process on a free port, with this process's recorder sending to it."""
    found = Aggregator(f"127.0.0.1:{free_port()}")
    found.start()
    metrics.connect(found.socket)
    try:
        yield found
    finally:
        metrics.RECORDER.close()
        found.stop()


def test_finish_gauges_rise_when_markers_are_due_and_fall_after_the_sweep(weed: SeaweedFS,
                                                                           aggregator: Aggregator) -> None:
    prefix = f"t{uuid.uuid4().hex[:12]}/"
    finish = Finish(lambda: weed.credentials, Bucket(weed.bucket, "us-east-1", weed.path_endpoint, "path"), prefix,
                    timeout=5.0, interval=1)
    caller = Rules(key_prefix=prefix, max_size=1000, allowed_content_types=("image/*",)).for_caller("alice")
    store = boto3.client("s3", endpoint_url=weed.path_endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                         aws_secret_access_key=SECRET_KEY, config=BotoConfig(s3={"addressing_style": "path"}))
    uploads: dict[str, tuple[str, int] | None] = {"a.png": ("image/png", 10), "b.png": ("image/png", 20),
                                                  "c.png": ("text/plain", 10), "never.png": None}
    for name, uploaded in uploads.items():
        expect_upload(finish, Expectation.of(caller, "alice", f"{prefix}alice/{name}"), protocol="test",
                      signed_until=datetime.now(UTC), clock_skew=0)
        if uploaded:
            store.put_object(Bucket=weed.bucket, Key=f"{prefix}alice/{name}", Body=b"x" * uploaded[1],
                             ContentType=uploaded[0])

    def scrape() -> Samples:
        with urllib.request.urlopen(f"http://127.0.0.1:{aggregator.listen.port}/metrics", timeout=10) as answer:
            return parse(answer.read().decode())

    assert sweep(finish, now=datetime.now(UTC)) == 0  # recorded, not due yet
    before = scrape()
    assert total(before, "signer_finish_pending") == 0 and total(before, "signer_finish_oldest_due_seconds") == 0
    late = datetime.now(UTC) + timedelta(seconds=finishing.SETTLE + 100)  # every signature expired
    assert sweep(finish, now=late) == 4
    due = scrape()
    assert total(due, "signer_finish_pending") == 4
    assert finishing.SETTLE + 90 <= total(due, "signer_finish_oldest_due_seconds") <= finishing.SETTLE + 110
    assert total(due, "signer_finish_checks_total", outcome="verified") == 2
    assert total(due, "signer_finish_checks_total", outcome="rejected") == 1  # the text file, deleted
    assert total(due, "signer_finish_checks_total", outcome="gone") == 1  # never uploaded
    assert sweep(finish, now=late) == 0
    after = scrape()
    assert total(after, "signer_finish_pending") == 0 and total(after, "signer_finish_oldest_due_seconds") == 0
    # Every store call of the finish step was timed: list, get, put (claim), head, delete.
    operations = {dict(labels)["operation"] for labels in after["signer_store_request_seconds_count"]}
    assert operations == {"LIST", "GET", "PUT", "HEAD", "DELETE"}


def test_a_stalled_aggregator_holds_no_request_and_loses_nothing_it_can_hold(aggregator: Aggregator) -> None:
    """SIGSTOP the aggregator: requests go on at full speed, their events wait in the kernel's buffer
    (SEND_BUFFER), and once it runs again every one is counted."""
    assert aggregator.process is not None
    os.kill(aggregator.process.pid, signal.SIGSTOP)
    try:
        slowest = 0.0
        for _ in range(300):
            started = time.perf_counter()
            metrics.RECORDER.begin()
            metrics.signed("presign", "PUT")
            metrics.request_took("/v1/presign", 0.001)
            metrics.RECORDER.end()
            slowest = max(slowest, time.perf_counter() - started)
    finally:
        os.kill(aggregator.process.pid, signal.SIGCONT)
    assert slowest < 0.01
    with urllib.request.urlopen(f"http://127.0.0.1:{aggregator.listen.port}/metrics", timeout=10) as answer:
        samples = parse(answer.read().decode())
    assert total(samples, "signer_signatures_total") == 300
    assert total(samples, "signer_request_seconds_count") == 300
    assert "signer_metrics_dropped_total" not in samples
