"""The metrics: what a worker sends (signer/service/metrics.py), what the aggregator makes of it
(signer/service/aggregate.py), read back with prometheus_client's own parser (an independent
reader of the text format), and the app's events through the aggregator's real Unix socket."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from signer.service import metrics
from signer.service.aggregate import FORGET_WAITING, MAX_SERIES, Totals
from signer.service.errors import ConfigError
from signer.service.metrics import METRICS, Recorder, line
from signer.service.server import server_settings
from signer.service.storage import operation_of, outcome_of
from signer.service.web.measured import UNMATCHED, measure
from signer.service.web.metrics_listener import MAX_LINE, Inbox
from signer.service.web.statuses import CODES
from tests.conftest import ALICE_TOKEN, env_with

NOW = 1_800_000_000.0


def parsed(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """sample name -> sorted labels -> value, as prometheus_client reads the text."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[str, Any], name: str, **labels: str) -> float:
    return float(samples[name][tuple(sorted(labels.items()))])


def test_the_text_format_reads_back_with_prometheus_clients_parser() -> None:
    totals = Totals()
    totals.apply("\n".join([
        line("c", "signer_signatures_total", ("default", "presign", "PUT")),
        line("c", "signer_signatures_total", ("default", "presign", "PUT"), 2.0),
        line("c", "signer_refusals_total", ("key_not_allowed",)),
        line("h", "signer_request_seconds", ("/v1/presign",), 0.005),  # on a bound: counted in it (le)
        line("h", "signer_request_seconds", ("/v1/presign",), 0.3),
        line("h", "signer_store_request_seconds", ("HEAD", "ok"), 20.0),
        line("g", "signer_finish_pending", (), 7.0),
        line("x", "signer_credentials_expiry_seconds", (), NOW + 600),
    ]).encode(), NOW)
    samples = parsed(totals.render(NOW + 100))
    assert value(samples, "signer_signatures_total", kind="default", protocol="presign", method="PUT") == 3
    assert value(samples, "signer_refusals_total", code="key_not_allowed") == 1
    assert value(samples, "signer_request_seconds_bucket", route="/v1/presign", le="0.001") == 0
    assert value(samples, "signer_request_seconds_bucket", route="/v1/presign", le="0.005") == 1
    assert value(samples, "signer_request_seconds_bucket", route="/v1/presign", le="0.25") == 1
    assert value(samples, "signer_request_seconds_bucket", route="/v1/presign", le="0.5") == 2
    assert value(samples, "signer_request_seconds_bucket", route="/v1/presign", le="+Inf") == 2
    assert value(samples, "signer_request_seconds_count", route="/v1/presign") == 2
    assert value(samples, "signer_request_seconds_sum", route="/v1/presign") == pytest.approx(0.305)
    assert value(samples, "signer_store_request_seconds_bucket", operation="HEAD", outcome="ok", le="10.0") == 0
    assert value(samples, "signer_store_request_seconds_bucket", operation="HEAD", outcome="ok", le="30.0") == 1
    assert value(samples, "signer_finish_pending") == 7
    assert value(samples, "signer_finish_oldest_due_seconds") == 0
    assert value(samples, "signer_credentials_expiry_seconds") == 500
    assert value(samples, "signer_webhook_oldest_undelivered_seconds") == 0
    families = {family.name: family.type for family in text_string_to_metric_families(totals.render(NOW))}
    for metric in METRICS.values():  # every metric of the contract is described, with its type
        assert families[metric.name.removesuffix("_total")] == metric.kind


def test_an_age_grows_until_reported_again() -> None:
    totals = Totals()
    totals.apply(line("a", "signer_finish_oldest_due_seconds", (), NOW - 30).encode(), NOW)
    assert value(parsed(totals.render(NOW)), "signer_finish_oldest_due_seconds") == 30
    assert value(parsed(totals.render(NOW + 10)), "signer_finish_oldest_due_seconds") == 40  # no sweep since
    totals.apply(line("a", "signer_finish_oldest_due_seconds", (), 0.0).encode(), NOW + 10)  # none due
    assert value(parsed(totals.render(NOW + 20)), "signer_finish_oldest_due_seconds") == 0


def test_label_values_are_escaped() -> None:
    totals = Totals()
    totals.apply(line("c", "signer_refusals_total", ('a"b\\c',)).encode(), NOW)
    assert value(parsed(totals.render(NOW)), "signer_refusals_total", code='a"b\\c') == 1


@pytest.mark.parametrize("text", [
    "c\tsigner_unknown_total\t\t1.0",  # not in the contract
    "c\tsigner_refusals_total\t\t1.0",  # a label missing
    "c\tsigner_refusals_total\ta\x1fb\t1.0",  # one too many
    "c\tsigner_refusals_total\tx\t-1.0",  # a counter never goes down
    "c\tsigner_refusals_total\tx\tnan",
    "c\tsigner_refusals_total\tx\tlots",
    "g\tsigner_refusals_total\tx\t1.0",  # a counter is not set
    "h\tsigner_finish_pending\t\t1.0",  # a gauge is not observed
    "u\tnot an id!\t\t1.0",
    "c\tsigner_refusals_total\t" + "x" * 201 + "\t1.0",
    "garbage",
])
def test_a_line_that_breaks_the_contract_is_dropped_and_counted(text: str) -> None:
    totals = Totals()
    totals.apply(text.encode(), NOW)
    samples = parsed(totals.render(NOW))
    assert "signer_refusals_total" not in samples and "signer_unknown_total" not in samples
    assert value(samples, "signer_metrics_dropped_total") == 1


def test_each_metric_keeps_a_bounded_number_of_label_sets() -> None:
    totals = Totals()
    totals.apply("\n".join(line("c", "signer_refusals_total", (f"code{n}",)) for n in range(MAX_SERIES + 50)).encode(),
                 NOW)
    samples = parsed(totals.render(NOW))
    assert len(samples["signer_refusals_total"]) == MAX_SERIES
    assert value(samples, "signer_metrics_dropped_total") == 50
    totals.apply(line("c", "signer_refusals_total", ("code0",)).encode(), NOW)  # a known one still counts
    assert value(parsed(totals.render(NOW)), "signer_refusals_total", code="code0") == 2


def test_the_oldest_undelivered_event_ages_until_delivered_or_forgotten() -> None:
    totals = Totals()
    totals.apply(f"u\tevent1\t\t{NOW - 30!r}\nu\tevent2\t\t{NOW - 5!r}".encode(), NOW)
    assert value(parsed(totals.render(NOW + 10)), "signer_webhook_oldest_undelivered_seconds") == 40
    totals.apply(b"s\tevent1\t\t1.0", NOW + 10)
    assert value(parsed(totals.render(NOW + 10)), "signer_webhook_oldest_undelivered_seconds") == 15
    # Not reported again for longer than two of the longest backoffs: another replica delivered it.
    later = NOW + FORGET_WAITING + 1
    assert value(parsed(totals.render(later)), "signer_webhook_oldest_undelivered_seconds") == 0


@pytest.mark.parametrize(("method", "url", "headers", "operation"), [
    ("HEAD", "http://s3/b/k", {}, "HEAD"),
    ("GET", "http://s3/b/k", {}, "GET"),
    ("GET", "http://s3/b/?continuation-token=x&list-type=2&max-keys=5&prefix=a", {}, "LIST"),
    ("GET", "http://s3/b/k?uploadId=u", {}, "LIST_PARTS"),
    ("GET", "http://s3/b/?prefix=a&uploads=", {}, "LIST_MULTIPART"),
    ("PUT", "http://s3/b/k", {}, "PUT"),
    ("PUT", "http://s3/b/k", {"x-amz-copy-source": "/b/s"}, "COPY"),
    ("PUT", "http://s3/b/k?partNumber=2&uploadId=u", {"x-amz-copy-source": "/b/s"}, "COPY_PART"),
    ("POST", "http://s3/b/k?uploads=", {}, "CREATE_MULTIPART"),
    ("POST", "http://s3/b/k?uploadId=u", {}, "COMPLETE_MULTIPART"),
    ("DELETE", "http://s3/b/k?uploadId=u", {}, "ABORT_MULTIPART"),
    ("DELETE", "http://s3/b/k", {}, "DELETE"),
    ("PATCH", "http://s3/b/k", {}, "other"),
])
def test_store_operations_are_named_by_method_query_and_headers(method: str, url: str, headers: dict[str, str],
                                                                  operation: str) -> None:
    assert operation_of(method, url, headers) == operation


def test_store_outcomes() -> None:
    assert [outcome_of(status) for status in (200, 204, 404, 409, 412, 403, 500, 503)] == [
        "ok", "ok", "not_found", "conflict", "conflict", "client_error", "server_error", "server_error"]


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    """The aggregator's own inbox (a real Unix stream socket, read in this process when scraped),
    and the module's recorder connected to it."""
    found = Inbox(str(tmp_path / "metrics.sock"))
    metrics.connect(str(tmp_path / "metrics.sock"))
    try:
        yield found
    finally:
        metrics.RECORDER.close()
        close(found)


def close(inbox: Inbox) -> None:
    for connection in list(inbox.partial):
        inbox._forget(connection)
    inbox.listener.close()


def scraped(inbox: Inbox) -> dict[str, Any]:
    return parsed(inbox.scrape().decode())


def test_a_requests_events_go_at_its_end_and_lost_ones_are_told_later(inbox: Inbox, tmp_path: Path) -> None:
    recorder = metrics.RECORDER
    recorder.begin()
    metrics.signed("presign", "PUT")
    metrics.refused("too_large")
    assert "signer_signatures_total" not in scraped(inbox)  # not before the request ends
    recorder.end()
    metrics.finish_checked("verified")  # outside a request: at once
    samples = scraped(inbox)
    assert value(samples, "signer_signatures_total", kind="default", protocol="presign", method="PUT") == 1
    assert value(samples, "signer_refusals_total", code="too_large") == 1
    assert value(samples, "signer_finish_checks_total", outcome="verified") == 1
    close(inbox)
    (tmp_path / "metrics.sock").unlink()  # the aggregator is gone (restarting)
    metrics.signed("presign", "GET")
    metrics.signed("presign", "GET", 2)
    again = Inbox(str(tmp_path / "metrics.sock"))
    try:
        metrics.signed("presign", "GET")
        samples = scraped(again)
    finally:
        close(again)
    assert value(samples, "signer_metrics_dropped_total") == 2
    assert value(samples, "signer_signatures_total", kind="default", protocol="presign", method="GET") == 1


def test_what_a_worker_wrote_before_it_exited_is_all_read(inbox: Inbox, tmp_path: Path) -> None:
    """A recycled worker writes its last lines and closes at once: the end of its connection comes in
    the same read as they do, and they count, all of them."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as worker:
        worker.connect(str(tmp_path / "metrics.sock"))
        worker.sendall(b"c\tsigner_refusals_total\tx\t1.0\n" * 500)
    assert value(scraped(inbox), "signer_refusals_total", code="x") == 500 and not inbox.partial


def test_a_half_written_line_is_dropped_with_its_connection(inbox: Inbox, tmp_path: Path) -> None:
    """A worker that gives up mid-line (its write timed out) closes: the rest of the line never comes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as worker:
        worker.connect(str(tmp_path / "metrics.sock"))
        worker.sendall(b"c\tsigner_refusals_total\tx\t1.0\nc\tsigner_refusals_tot")
        assert value(scraped(inbox), "signer_refusals_total", code="x") == 1  # the whole line, not the half
    samples = scraped(inbox)
    assert value(samples, "signer_refusals_total", code="x") == 1 and "signer_metrics_dropped_total" not in samples
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as endless:
        endless.connect(str(tmp_path / "metrics.sock"))
        endless.sendall(b"x" * (MAX_LINE + 10))
        scraped(inbox)
        endless.settimeout(5)
        assert endless.recv(1) == b"" and not inbox.partial  # cut off


def test_recording_does_nothing_until_connected() -> None:
    recorder = Recorder()
    assert not recorder.on
    with recorder.batch():
        recorder.send("anything")  # no socket: nothing sent, nothing raised


def test_the_app_counts_what_it_signs_and_refuses_by_route_pattern(inbox: Inbox) -> None:
    from signer.service.config import load_config
    from signer.service.web.app import create_app

    app = create_app(load_config(env_with()))
    measure(app)
    client = app.test_client()
    bearer = {"Authorization": f"Bearer {ALICE_TOKEN}"}
    for _ in range(3):
        answer = client.post("/v1/presign", json={"method": "GET", "key": "uploads/alice/a.png"}, headers=bearer)
        assert answer.status_code == 200
    assert client.post("/v1/presign", json={"method": "GET", "key": "uploads/bob/a.png"}, headers=bearer).status_code == 403
    assert client.post("/v1/presign", json={"method": "GET", "key": "uploads/alice/a"}).status_code == 401
    assert client.get("/uploads/alice/secret-name.png").status_code == 404  # a path no route takes
    assert client.get("/s3/multipart/some-upload-id/batch?key=uploads/alice/a&partNumbers=1",
                      headers=bearer).status_code in (400, 404)
    assert client.post("/s3/signature?v4=true", json={"conditions": []}, headers=bearer).status_code == 400
    samples = scraped(inbox)
    assert samples["signer_signatures_total"] == {
        (("kind", "default"), ("method", "GET"), ("protocol", "presign")): 3}
    refusals = samples["signer_refusals_total"]
    assert value(samples, "signer_refusals_total", code="key_not_allowed") == 1
    assert value(samples, "signer_refusals_total", code="unauthorized") == 1
    assert value(samples, "signer_refusals_total", code="no_such_route") == 1
    assert sum(refusals.values()) == 5
    assert {dict(labels)["code"] for labels in refusals} <= set(CODES)
    routes = {dict(labels)["route"]: count for labels, count in samples["signer_request_seconds_count"].items()}
    assert routes == {"/v1/presign": 5, UNMATCHED: 1, "/s3/multipart/<upload_id>/batch": 1, "/s3/signature": 1}
    assert "signer_metrics_dropped_total" not in samples  # nothing lost on the way


def test_the_setting_is_host_and_port_and_never_the_public_port() -> None:
    base = {"SIGNER_BIND": "0.0.0.0:8080"}
    assert server_settings(base, cpus=1).metrics_bind is None
    assert server_settings({**base, "SIGNER_METRICS_BIND": "127.0.0.1:9102"}, cpus=1).metrics_bind == "127.0.0.1:9102"
    assert server_settings({**base, "SIGNER_METRICS_BIND": "[::1]:9102"}, cpus=1).metrics_bind == "[::1]:9102"
    for bad, words in (("9102", "host:port"), ("unix:/tmp/m.sock", "host:port"), ("127.0.0.1:99999", "host:port"),
                       ("127.0.0.1:8080", "SIGNER_BIND's port")):
        with pytest.raises(ConfigError, match="SIGNER_METRICS_BIND") as caught:
            server_settings({**base, "SIGNER_METRICS_BIND": bad}, cpus=1)
        assert words in caught.value.message


def test_the_docs_page_lists_the_contract() -> None:
    """docs/metrics.md's table names every metric with its type and labels, and no other."""
    import re

    from tests.servers import ROOT

    rows = re.findall(r"^\| `(signer_[a-z_]+)` \| (\w+) \|([^|]*)\|", (ROOT / "docs" / "metrics.md").read_text(), re.M)
    assert {name: (kind, tuple(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows} == {
        metric.name: (metric.kind, metric.labels) for metric in METRICS.values()}


def test_the_credentials_expiry_is_told_at_most_every_ten_seconds(inbox: Inbox) -> None:
    from datetime import UTC, datetime, timedelta

    from werkzeug.routing import Map

    from signer.service.web.measured import Measured

    def empty(environ: dict[str, Any], start_response: Any) -> list[bytes]:  # noqa: ARG001 - WSGI's signature
        return [b""]

    def request() -> None:
        app({"PATH_INFO": "/", "REQUEST_METHOD": "GET"}, None)  # type: ignore[arg-type]

    expires = [datetime.now(UTC) + timedelta(minutes=30)]
    app = Measured(empty, Map(), lambda: expires[0])
    request()
    seconds = value(scraped(inbox), "signer_credentials_expiry_seconds")
    assert 1790 < seconds <= 1800
    expires[0] += timedelta(hours=1)  # refreshed
    request()
    assert value(scraped(inbox), "signer_credentials_expiry_seconds") <= 1800  # not asked again yet
    app.next_report = 0.0  # ten seconds later
    request()
    assert value(scraped(inbox), "signer_credentials_expiry_seconds") > 5000
