"""The finish step across real service processes (gunicorn) sharing one SeaweedFS bucket: a
process that signed and was SIGKILLed loses nothing (another, started later, finishes its
uploads); a worker recycled after max_requests loses nothing; the webhook gets exactly one
signed event per upload, verified with docs/finish.md's own snippet; a receiver that never
answers does not hold up /v1/presign."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import ALICE_TOKEN, bearer, env_with
from tests.e2e.test_finish import MIB, SECRET, keys, s3
from tests.seaweedfs import SeaweedFS
from tests.servers import ROOT, free_port, running
from tests.webhook_receiver import receiver


def readme_verify() -> Any:
    """docs/finish.md's verification snippet, run as written."""
    text = (ROOT / "docs" / "finish.md").read_text(encoding="utf-8").split("## Tell the app", 1)[1]
    code = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    scope: dict[str, Any] = {}
    exec(code, scope)  # noqa: S102 - our own docs' example
    return scope["verify"]


@pytest.fixture
def prefix() -> str:
    return f"r{uuid.uuid4().hex[:12]}/"


@contextmanager
def signer(weed: SeaweedFS, tmp_path: Path, prefix: str, *extra: str, **overrides: str) -> Iterator[tuple[str, Any]]:
    """One service process (gunicorn, the project's config file) on the shared bucket; yields
    its URL and its process (to SIGKILL)."""
    port = free_port()
    settings = {"SIGNER_KEY_PREFIX": prefix, "SIGNER_FINISH_INTERVAL": "1", "SIGNER_MAX_SIZE": str(6 * MIB),
                "SIGNER_ALLOWED_CONTENT_TYPES": "image/*", "SIGNER_S3_TIMEOUT": "5", **weed.signer_env("path"),
                **overrides}
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))}, **env_with(**settings)}
    command = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
               "--workers", "1", *extra, "wsgi:app"]
    with running(command, f"http://127.0.0.1:{port}/healthz", env=environ,
                 log_path=tmp_path / f"service-{port}.log") as process:
        yield f"http://127.0.0.1:{port}", process


def sign(url: str, **body: object) -> dict[str, Any]:
    answer = requests.post(f"{url}/v1/sign-request", json=body, headers=bearer(ALICE_TOKEN), timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def start_upload(weed: SeaweedFS, key: str, first_part: int) -> tuple[str, str]:
    client = s3(weed)
    upload_id = client.create_multipart_upload(Bucket=weed.bucket, Key=key, ContentType="image/png")["UploadId"]
    etag = client.upload_part(Bucket=weed.bucket, Key=key, UploadId=upload_id, PartNumber=1,
                              Body=b"a" * first_part)["ETag"]
    return upload_id, etag


def send_complete(signed: dict, etags: list[str]) -> None:
    """The client's complete, with the URL and headers the service signed (its body is not signed)."""
    body = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>" for n, etag in enumerate(etags, 1)
    ) + "</CompleteMultipartUpload>"
    answer = requests.post(signed["url"], data=body.encode(), headers=signed["headers"], timeout=60)
    assert answer.status_code == 200 and b"<Error>" not in answer.content, answer.text


def second_part(weed: SeaweedFS, key: str, upload_id: str, size: int) -> str:
    etag: str = s3(weed).upload_part(Bucket=weed.bucket, Key=key, UploadId=upload_id, PartNumber=2,
                                     Body=b"b" * size)["ETag"]
    return etag


def wait_until(condition: Any, timeout: float = 40.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return bool(condition())


def test_a_replica_started_later_finishes_what_a_killed_one_signed(weed: SeaweedFS, tmp_path: Path, prefix: str) -> None:
    folder = f"{prefix}alice/"
    big, fits = f"{folder}big.png", f"{folder}fits.png"
    with receiver() as hook:
        with signer(weed, tmp_path, prefix, SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=SECRET) as (url, a):
            big_id, big_first = start_upload(weed, big, 5 * MIB)
            fits_id, fits_first = start_upload(weed, fits, 5 * MIB)
            big_complete = sign(url, method="POST", key=big, uploadId=big_id)  # 5 MiB so far: signed
            fits_complete = sign(url, method="POST", key=fits, uploadId=fits_id)
            posted = requests.post(f"{url}/v1/post-policy", json={"filename": "cat.png", "content_type": "image/png"},
                                   headers=bearer(ALICE_TOKEN), timeout=30).json()
            kept = requests.post(f"{url}/v1/post-policy", json={"filename": "dog.png", "content_type": "image/png"},
                                 headers=bearer(ALICE_TOKEN), timeout=30).json()
            os.killpg(a.pid, signal.SIGKILL)  # right after signing: no sweep of A ever ran on these
            a.wait(timeout=10)
        assert len(keys(weed, f"{prefix}.signer/pending/")) == 4

        # The clients go on without A: one more part makes `big` 7 MiB, over the 6 MiB limit.
        send_complete(big_complete, [big_first, second_part(weed, big, big_id, 2 * MIB)])
        send_complete(fits_complete, [fits_first, second_part(weed, fits, fits_id, 1000)])
        # A store that does not enforce the policy's Content-Type (simulated: written with the store's
        # own credentials) lets a wrong-type simple upload through; the other one is as signed.
        s3(weed).put_object(Bucket=weed.bucket, Key=posted["key"], Body=b"<script>", ContentType="text/html")
        s3(weed).put_object(Bucket=weed.bucket, Key=kept["key"], Body=b"png", ContentType="image/png")
        assert sorted(keys(weed, folder)) == sorted([big, fits, posted["key"], kept["key"]])

        with signer(weed, tmp_path, prefix, SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=SECRET):
            assert wait_until(lambda: not keys(weed, f"{prefix}.signer/"))
            time.sleep(2.5)  # two more sweeps: nothing is sent twice
        assert sorted(keys(weed, folder)) == sorted([fits, kept["key"]])
        verify = readme_verify()
        deliveries = hook.deliveries
        assert len(deliveries) == 4
        for delivery in deliveries:
            assert verify(SECRET.encode(), {"Signer-Signature": delivery.headers["signer-signature"]}, delivery.body)
            assert not verify(b"another-secret-another-secret-00", {"Signer-Signature": delivery.headers[
                "signer-signature"]}, delivery.body)
        outcome = {d.event["key"]: (d.event["type"], (d.event.get("reason") or {}).get("code")) for d in deliveries}
        assert outcome == {big: ("upload.rejected", "too_large"), fits: ("upload.verified", None),
                           posted["key"]: ("upload.rejected", "content_type_not_allowed"),
                           kept["key"]: ("upload.verified", None)}
        assert {d.event["size"] for d in deliveries if d.event["key"] == big} == {7 * MIB}


def test_a_recycled_worker_loses_no_pending_check(weed: SeaweedFS, tmp_path: Path, prefix: str) -> None:
    key = f"{prefix}alice/big.png"
    with signer(weed, tmp_path, prefix, "--max-requests", "3", "--max-requests-jitter", "0") as (url, process):
        upload_id, first = start_upload(weed, key, 5 * MIB)
        complete = sign(url, method="POST", key=key, uploadId=upload_id)
        for _ in range(6):  # the worker that signed is recycled after 3 requests
            requests.get(f"{url}/healthz", timeout=10)
        log = (tmp_path / f"service-{url.rsplit(':', 1)[1]}.log")
        assert wait_until(lambda: log.read_text().count("Booting worker") >= 2, 20), log.read_text()[-2000:]
        send_complete(complete, [first, second_part(weed, key, upload_id, 2 * MIB)])
        assert wait_until(lambda: keys(weed, f"{prefix}alice/") == [] and not keys(weed, f"{prefix}.signer/"))
        assert "Autorestarting worker" in log.read_text()


def test_a_receiver_that_never_answers_does_not_hold_up_presign(weed: SeaweedFS, tmp_path: Path, prefix: str) -> None:
    """The receiver takes the connection and says nothing (worse than down: the webhook waits
    its 5 s timeout). /v1/presign only records a marker in the store; each answer comes
    within 3 s, and all 10 uploads wait in the store for delivery."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        hook = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
        with signer(weed, tmp_path, prefix, SIGNER_WEBHOOK_URL=hook, SIGNER_WEBHOOK_SECRET=SECRET) as (url, _):
            for number in range(10):
                answer = requests.post(f"{url}/v1/presign", json={"method": "PUT", "filename": f"{number}.png",
                                                                  "content_type": "image/png", "content_length": 3},
                                       headers=bearer(ALICE_TOKEN), timeout=3)
                assert answer.status_code == 200, answer.text
                time.sleep(0.3)  # sweeps run meanwhile, each stuck on the silent receiver
            assert len(keys(weed, f"{prefix}.signer/pending/")) == 10


def test_the_service_refuses_a_webhook_url_without_a_secret() -> None:
    environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))},
               **env_with(SIGNER_WEBHOOK_URL="https://hooks.example/uploads")}
    done = subprocess.run([sys.executable, "-m", "signer", "check-config"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "SIGNER_WEBHOOK_SECRET" in done.stderr + done.stdout
