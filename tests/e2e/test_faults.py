"""The finish step under faults (issue #31), against SeaweedFS: a store frozen by SIGSTOP (its own
instance, so no other test waits on it) costs each presign one timeout and at most one marker,
and after it thaws no upload is told under two event ids; a service clock 120 s ahead of the
store's delays no check."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from signer.service.finish import Expectation, StoreClock, expect_upload, sweep
from tests.conftest import ACCESS_KEY, ALICE_TOKEN, SECRET_KEY, bearer
from tests.e2e.conftest import BUCKET
from tests.e2e.test_finish import MIB, SECRET, caller, keys, make_finish, s3
from tests.e2e.test_finish_replicas import signer, wait_until
from tests.seaweedfs import SeaweedFS, seaweedfs
from tests.webhook_receiver import receiver

TIMEOUT = 3  # SIGNER_S3_TIMEOUT here


@pytest.fixture
def own_store(tmp_path: Path) -> Iterator[SeaweedFS]:
    with seaweedfs(tmp_path / "store", ACCESS_KEY, SECRET_KEY, BUCKET, log=tmp_path / "seaweedfs.log") as store:
        yield store


def presign(url: str, key: str) -> tuple[int, dict, float]:
    start = time.monotonic()
    answer = requests.post(f"{url}/v1/presign", json={"method": "PUT", "key": key, "content_type": "image/png",
                                                      "content_length": 3}, headers=bearer(ALICE_TOKEN), timeout=30)
    return answer.status_code, answer.json(), time.monotonic() - start


def markers_by_key(store: SeaweedFS, prefix: str) -> dict[str, int]:
    client = s3(store)
    counts: dict[str, int] = {}
    for key in keys(store, f"{prefix}.signer/pending/"):
        marker = json.loads(client.get_object(Bucket=store.bucket, Key=key)["Body"].read())
        counts[marker["expect"]["key"]] = counts.get(marker["expect"]["key"], 0) + 1
    return counts


def test_a_frozen_store_costs_one_timeout_and_one_marker_and_each_upload_is_told_once(
        own_store: SeaweedFS, tmp_path: Path) -> None:
    store, prefix = own_store, f"f{uuid.uuid4().hex[:12]}/"
    results: dict[str, tuple[int, dict, float]] = {}
    with receiver() as hook, signer(store, tmp_path, prefix, SIGNER_S3_TIMEOUT=str(TIMEOUT),
                                    SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=SECRET) as (url, _):
        before = f"{prefix}alice/before.png"
        status, granted, _ = presign(url, before)
        assert status == 200
        assert requests.put(granted["url"], data=b"png", headers=granted["headers"], timeout=10).status_code == 200

        group = os.getpgid(store.process.pid)  # type: ignore[union-attr]
        os.killpg(group, signal.SIGSTOP)
        try:
            def load(worker: int) -> None:  # steady load: a presign after another, 4 at a time
                deadline = time.monotonic() + 10
                number = 0
                while time.monotonic() < deadline:
                    key = f"{prefix}alice/w{worker}-{number}.png"
                    results[key] = presign(url, key)
                    number += 1

            threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
        finally:
            os.killpg(group, signal.SIGCONT)
        frozen = {key: result for key, result in results.items() if result[0] != 200}
        assert len(frozen) >= 8, {key: result[0] for key, result in results.items()}
        for key, (status, body, seconds) in frozen.items():
            assert status in (502, 503) and body["code"] == "storage_error", (key, status, body)
            assert seconds < TIMEOUT + 1, f"{key}: {seconds:.1f}s"

        # thawed: the grants made before the freeze and after it lead to one event each, and so does a
        # presign the client retries for a key whose first marker the store wrote after all
        after = f"{prefix}alice/after.png"
        retried = sorted(frozen)[0]
        for key in (after, retried):
            status, late, _ = presign(url, key)
            assert status == 200
            assert requests.put(late["url"], data=b"png", headers=late["headers"], timeout=10).status_code == 200
        assert wait_until(lambda: {before, after, retried} <= {d.event["key"] for d in hook.deliveries}, 40)
        time.sleep(8)  # more sweeps: a second marker for one upload would tell it now
        counts = markers_by_key(store, prefix)
    assert all(count <= 1 for key, count in counts.items() if key != retried), counts  # one marker per presign
    told: dict[str, set[str]] = {}
    for delivery in hook.deliveries:
        told.setdefault(delivery.event["key"], set()).add(delivery.event["id"])
    assert all(len(ids) == 1 for ids in told.values()), told  # no upload under two event ids
    assert set(told) & set(frozen) == {retried}, "a key no client received was reported"


def test_a_service_clock_ahead_of_the_stores_delays_no_check(weed: SeaweedFS) -> None:
    """The service's clock 120 s ahead (the finish step's own clock, injected): the marker is named in
    the store's time, so the over-size object a client completed is deleted within seconds, as
    without skew. Named in the service's time, it waited 122 s."""
    prefix = f"s{uuid.uuid4().hex[:12]}/"
    ahead = dataclasses.replace(make_finish(weed, prefix), clock=StoreClock(),
                                now=lambda: datetime.now(UTC) + timedelta(seconds=120))
    sweep(ahead)  # a sweep reads the store's clock
    assert -125 <= ahead.clock.offset <= -115
    key = f"{prefix}alice/big.png"
    client = s3(weed)
    upload_id = client.create_multipart_upload(Bucket=weed.bucket, Key=key, ContentType="image/png")["UploadId"]
    first = client.upload_part(Bucket=weed.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"a" * 5 * MIB)
    expect_upload(ahead, Expectation.of(caller(prefix), "alice", key), protocol="test", signed_until=ahead.now(),
                  clock_skew=0, upload_id=upload_id)
    second = client.upload_part(Bucket=weed.bucket, Key=key, UploadId=upload_id, PartNumber=2, Body=b"b" * 2 * MIB)
    client.complete_multipart_upload(Bucket=weed.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": first["ETag"]}, {"PartNumber": 2, "ETag": second["ETag"]}]})
    started = time.monotonic()
    while key in keys(weed, f"{prefix}alice/") and time.monotonic() - started < 20:
        sweep(ahead)
        time.sleep(0.5)
    assert key not in keys(weed, f"{prefix}alice/")
    assert time.monotonic() - started < 8  # the first look is due 2 s after the marker, by the store's clock
