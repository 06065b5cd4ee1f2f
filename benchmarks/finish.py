"""The finish step, sweeping against store events, side by side (issue #30): per flow, the store
requests the service makes per finished upload, and finished uploads per second per worker.

Run from the repository root:
    .venv/bin/python -m benchmarks.finish [--uploads 200] [--clients 8]
Needs the test requirements (moto's server, boto3 to set the bucket up, gunicorn, HAProxy).

One moto server holds the bucket and an SQS queue; the bucket sends ``s3:ObjectCreated:*`` under
``events/`` to the queue (as docs/events.md tells an operator). For each flow (a presigned PUT, a
POST form) and each mode (sweeping: no queue; events: SIGNER_EVENTS_QUEUE_URL), a fresh service of
ONE gunicorn worker, with a webhook, sits behind a counting proxy to the store; ``--clients``
clients each presign and upload (straight to moto) until ``--uploads`` are done, every fourth of a
type the rules refuse (deleted by the finish step). Store requests per upload: every request the
service made to the store, divided by the uploads. Uploads per second: uploads over the time from
the first presign to the last webhook delivery (one worker, so per worker).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from urllib.parse import urlsplit, urlunsplit

import boto3
import requests

from tests.conftest import ACCESS_KEY, ALICE_TOKEN, SECRET_KEY, bearer, env_with
from tests.counting_proxy import counting_proxy
from tests.servers import free_port, moto_server, running
from tests.webhook_receiver import receiver

BUCKET = "bench-finish"
SECRET = "benchmark-webhook-secret-0123456789abcdef"


def client(service: str, url: str) -> object:
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY)


def set_up(url: str) -> str:
    """The bucket, the queue, the bucket's notification to it; the queue's URL."""
    s3, sqs = client("s3", url), client("sqs", url)
    s3.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    queue = sqs.create_queue(QueueName="bench-events")["QueueUrl"]  # type: ignore[attr-defined]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[  # type: ignore[attr-defined]
        "Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration={  # type: ignore[attr-defined]
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
                                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "events/"}]}}}]})
    sqs.purge_queue(QueueUrl=queue)  # type: ignore[attr-defined]
    return str(queue)


def upload(url: str, store: str, flow: str, number: int) -> None:
    """One client: ask the service, then upload straight to the store (moto checks no signature)."""
    content_type = "text/html" if number % 4 == 3 else "image/png"
    headers = bearer(ALICE_TOKEN)
    netloc = urlsplit(store).netloc
    if flow == "presign PUT":
        signed = requests.post(f"{url}/v1/presign", json={"method": "PUT", "filename": f"{number}.png",
                                                          "content_type": "image/png", "content_length": 3},
                               headers=headers, timeout=30).json()
        direct = urlunsplit(urlsplit(signed["url"])._replace(netloc=netloc))
        answer = requests.put(direct, data=b"png", headers={"Content-Type": content_type}, timeout=30)
    else:
        form = requests.post(f"{url}/v1/post-policy", json={"filename": f"{number}.png", "content_type": "image/png"},
                             headers=headers, timeout=30).json()
        direct = urlunsplit(urlsplit(form["url"])._replace(netloc=netloc))
        fields = {**form["fields"], "Content-Type": content_type}
        answer = requests.post(direct, data=fields, files={"file": ("x.png", b"png", content_type)}, timeout=30)
    answer.raise_for_status()


def measure(store: str, queue: str | None, flow: str, uploads: int, clients: int, logs: Path) -> tuple[float, float]:
    prefix = "events/" if queue else "sweeping/"
    with ExitStack() as stack:
        hook = stack.enter_context(receiver())
        proxy = stack.enter_context(counting_proxy(store))
        port = free_port()
        settings = env_with(SIGNER_BUCKET=BUCKET, SIGNER_ENDPOINT_URL=proxy.url, SIGNER_ADDRESSING_STYLE="path",
                            SIGNER_KEY_PREFIX=f"{prefix}{flow.split()[0]}/", SIGNER_ALLOWED_CONTENT_TYPES="image/*",
                            SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=SECRET,
                            SIGNER_MAX_PENDING_PER_CALLER="100000", SIGNER_EVENTS_QUEUE_URL=queue)
        environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))}, **settings}
        stack.enter_context(running([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind",
                                     f"127.0.0.1:{port}", "--workers", "1", "wsgi:app"],
                                    f"http://127.0.0.1:{port}/healthz", env=environ,
                                    log_path=logs / f"service-{port}.log"))
        url = f"http://127.0.0.1:{port}"
        time.sleep(1.0)
        proxy.reset()
        started = time.monotonic()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(lambda number: upload(url, store, flow, number), range(uploads)))
        hook.wait_for(uploads, 300)
        took = time.monotonic() - started
        if len(hook.deliveries) < uploads:
            raise SystemExit(f"{flow}: only {len(hook.deliveries)} of {uploads} uploads were told")
        time.sleep(1.0)  # what the finish step does after telling (deleting the marker)
        return proxy.count() / uploads, uploads / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    options = parser.parse_args()
    rows = []
    with TemporaryDirectory() as folder, moto_server() as store:
        queue = set_up(store)
        for flow in ("presign PUT", "POST form"):
            sweeping = measure(store, None, flow, options.uploads, options.clients, Path(folder))
            events = measure(store, queue, flow, options.uploads, options.clients, Path(folder))
            rows.append((flow, sweeping, events))
    print(f"{options.uploads} uploads per run, {options.clients} clients, one worker, webhook set; store: moto")
    print("| flow | store requests per upload: sweeping | events | ratio | uploads/s per worker: sweeping | events |")
    print("|---|---:|---:|---:|---:|---:|")
    for flow, (sweep_requests, sweep_rate), (event_requests, event_rate) in rows:
        print(f"| {flow} | {sweep_requests:.2f} | {event_requests:.2f} | {event_requests / sweep_requests:.2f}× "
              f"| {sweep_rate:.0f} | {event_rate:.0f} |")


if __name__ == "__main__":
    main()
