"""The finish step from the store's own notifications (signer/service/events.py), against moto's
server (S3 and SQS in one process, a real process on 127.0.0.1): the bucket's ObjectCreated events go
to a queue, configured with boto3 as an operator would; the service (gunicorn, two workers) long-polls
it with its own SigV4 for ``sqs``. A counting proxy between the service and the store counts the
store requests per upload, with events and with sweeping, side by side."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus, urlsplit, urlunsplit

import boto3
import pytest
import requests

from tests.conftest import ACCESS_KEY, ALICE_TOKEN, SECRET_KEY, bearer, env_with
from tests.counting_proxy import Counter, counting_proxy
from tests.docblocks import doc_block
from tests.e2e.test_finish import SECRET
from tests.servers import ROOT, free_port, moto_server, running
from tests.webhook_receiver import Receiver, receiver

BUCKET = "events-bucket"


def client(service: str, url: str) -> Any:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY)


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[str, str]]:
    """moto's server with the bucket, a queue and the bucket's notification of ObjectCreated under
    ``events/`` to that queue (what docs/events.md tells an operator to set); yields (url, queue url)."""
    with moto_server() as url:
        s3, sqs = client("s3", url), client("sqs", url)
        s3.create_bucket(Bucket=BUCKET)
        queue_url = sqs.create_queue(QueueName="upload-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={"QueueConfigurations": [{
            "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "events/"}]}}}]})
        sqs.purge_queue(QueueUrl=queue_url)  # S3's test event, if any
        yield url, queue_url


@contextmanager
def service(tmp_path: Path, store: str, prefix: str, hook: str, **extra: str) -> Iterator[tuple[str, Path]]:
    """The service under gunicorn (two workers) on the bucket, through ``store`` (the counting proxy)."""
    port = free_port()
    settings = env_with(SIGNER_BUCKET=BUCKET, SIGNER_ENDPOINT_URL=store, SIGNER_ADDRESSING_STYLE="path",
                        SIGNER_KEY_PREFIX=prefix, SIGNER_ALLOWED_CONTENT_TYPES="image/*", SIGNER_WEBHOOK_URL=hook,
                        SIGNER_WEBHOOK_SECRET=SECRET, **extra)
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))}, **settings}
    log = tmp_path / f"service-{port}.log"
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", "2", "wsgi:app"]
    with running(command, f"http://127.0.0.1:{port}/healthz", env=environ, log_path=log):
        yield f"http://127.0.0.1:{port}", log


def upload(url: str, moto_url: str, name: str, content_type: str, body: bytes = b"png") -> str:
    """Presign a PUT for ``name`` (as image/png) and upload ``body`` as ``content_type`` straight to
    moto (which checks no signature, so a wrong type goes through, as from a store that let it)."""
    answer = requests.post(f"{url}/v1/presign", json={"method": "PUT", "filename": name, "content_type": "image/png",
                                                      "content_length": len(body)},
                           headers=bearer(ALICE_TOKEN), timeout=30)
    assert answer.status_code == 200, answer.text
    signed = answer.json()
    direct = urlunsplit(urlsplit(signed["url"])._replace(netloc=urlsplit(moto_url).netloc))
    put = requests.put(direct, data=body, headers={"Content-Type": content_type}, timeout=30)
    assert put.status_code == 200, put.text
    return str(signed["key"])


def keys(moto_url: str, prefix: str) -> list[str]:
    return [item["Key"] for item in client("s3", moto_url).list_objects_v2(Bucket=BUCKET, Prefix=prefix)
            .get("Contents", [])]


def run_flow(url: str, moto_url: str, hook: Receiver, store: Counter, count: int) -> tuple[list[str], float]:
    """``count`` uploads, every other one of the wrong type; store requests per upload once every
    event has arrived (and a moment more, for what the service does after telling)."""
    store.reset()
    uploaded = [upload(url, moto_url, f"{n}.png", "image/png" if n % 2 == 0 else "text/html") for n in range(count)]
    deliveries = hook.wait_for(count, 60)
    assert len(deliveries) == count, [d.event["key"] for d in deliveries]
    time.sleep(1.5)
    return uploaded, store.count() / count


def test_an_objectcreated_event_finishes_the_upload_with_fewer_store_requests_than_sweeping(
        moto: tuple[str, str], tmp_path: Path) -> None:
    moto_url, queue_url = moto
    with receiver() as hook, counting_proxy(moto_url) as store, \
            service(tmp_path, store.url, "events/", hook.url, SIGNER_EVENTS_QUEUE_URL=queue_url) as (url, log):
        uploaded, per_upload = run_flow(url, moto_url, hook, store, 4)
        outcome = {d.event["key"]: (d.event["type"], (d.event.get("reason") or {}).get("code"))
                   for d in hook.deliveries}
        assert outcome == {key: ("upload.verified", None) if n % 2 == 0 else
                           ("upload.rejected", "content_type_not_allowed") for n, key in enumerate(uploaded)}
        assert sorted(keys(moto_url, "events/alice/")) == sorted(uploaded[0::2])  # the wrong types deleted
        assert keys(moto_url, "events/.signer/") == []
        assert store.count("LIST") <= 2  # the sweep did not do it: at most its first look at an empty folder
        print(f"events: {per_upload:.2f} store requests per upload")

        # An object nobody signed for: ignored and logged; then the same event twice: nothing twice.
        client("s3", moto_url).put_object(Bucket=BUCKET, Key="events/alice/unsigned.png", Body=b"x",
                                          ContentType="text/html")
        duplicate = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {
            "bucket": {"name": BUCKET}, "object": {"key": uploaded[0].replace("/", "%2F"), "size": 3}}}]}
        client("sqs", moto_url).send_message(QueueUrl=queue_url, MessageBody=json.dumps(duplicate))
        deadline = time.monotonic() + 30
        while log.read_text().count("never signed here") < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert log.read_text().count("never signed here") == 2
        assert len(hook.deliveries) == 4
        assert "events/alice/unsigned.png" in keys(moto_url, "events/alice/")  # not ours to judge
        assert client("sqs", moto_url).get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
            "ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"] == "0"

    with receiver() as hook, counting_proxy(moto_url) as store, \
            service(tmp_path, store.url, "sweeping/", hook.url) as (url, _):
        _, sweeping = run_flow(url, moto_url, hook, store, 4)
        print(f"sweeping: {sweeping:.2f} store requests per upload")
    assert per_upload < sweeping


DOC = ROOT / "docs" / "events.md"


def doc_blocks(language: str) -> list[str]:
    """docs/events.md's ```<language> blocks, in order."""
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_the_operators_documents_in_the_docs_apply_as_written(moto: tuple[str, str]) -> None:
    """The queue policy and the bucket notification of docs/events.md, with the placeholders filled,
    set on moto: a new object under the prefix arrives on the queue as an ObjectCreated record."""
    moto_url, _ = moto
    policy, notification = doc_blocks("json")
    fill = {"REGION": "us-east-1", "ACCOUNT": "123456789012", "BUCKET": "doc-bucket", "upload-events": "doc-events"}
    for placeholder, value in fill.items():
        policy, notification = policy.replace(placeholder, value), notification.replace(placeholder, value)
    s3, sqs = client("s3", moto_url), client("sqs", moto_url)
    queue = sqs.create_queue(QueueName="doc-events")["QueueUrl"]
    assert json.loads(policy)["Statement"][0]["Resource"] == sqs.get_queue_attributes(
        QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": policy})
    s3.create_bucket(Bucket="doc-bucket")
    s3.put_bucket_notification_configuration(Bucket="doc-bucket", NotificationConfiguration=json.loads(notification))
    sqs.purge_queue(QueueUrl=queue)
    s3.put_object(Bucket="doc-bucket", Key="uploads/alice/cat.png", Body=b"png")
    s3.put_object(Bucket="doc-bucket", Key="elsewhere/dog.png", Body=b"png")
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=5).get("Messages", [])
    records = [record for message in messages for record in json.loads(message["Body"]).get("Records", [])]
    assert [(r["eventName"], unquote_plus(r["s3"]["object"]["key"])) for r in records] == [
        ("ObjectCreated:Put", "uploads/alice/cat.png")]  # keys come URL-encoded, as from S3


def test_the_sh_blocks_of_the_docs_run() -> None:
    """Every ```sh block of docs/events.md, run by bash as written (``python`` is this venv's)."""
    check = doc_block("docs/events.md", "give the service the queue's URL and check the configuration")
    bench = doc_block("docs/events.md", "## Benchmark")
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))},
               **env_with(), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", check], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert ("finish step: 16 shard(s), events from https://sqs.eu-west-3.amazonaws.com/123456789012/upload-events "
            "(region eu-west-3)") in done.stdout
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", bench], cwd=ROOT, env=environ, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| presign PUT", "| POST form"))]
    assert len(rows) == 2, done.stdout
    for row in rows:
        sweeping, events = (float(cell) for cell in row.split("|")[2:4])
        assert events < sweeping
