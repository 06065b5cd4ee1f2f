"""The finish step at scale (issue #30), against SeaweedFS: markers spread over shards with the older
layout still swept; one sweeper per replica, so an idle replica lists the store rarely whatever its
worker count (counted by a proxy); a replica SIGKILLed right after signing has its markers finished
by another; a burst of 1,000 uploads is told within 30 s of the last.

Time, honestly scaled: every pause of an idle sweeper is a multiple of SIGNER_FINISH_INTERVAL
(signer/service/sweeping.py: 3, 6, then 9 intervals, give or take a tenth). With it at 1 s instead
of the default 10 s the whole idle schedule runs ten times faster and nothing else changes, so the
LISTs a proxy counts in 60 s at interval 1 are those of 10 minutes at the default, and "another
replica finishes within 12 s" is "within 2 minutes" at the default (the first look's fixed 2 s only
makes the default case shorter than ten times)."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from signer.service.finish import Expectation, expect_upload, keyed_marker_key, sweep
from tests.conftest import ALICE_TOKEN, bearer
from tests.counting_proxy import counting_proxy
from tests.e2e.test_finish import SECRET, caller, keys, make_finish, s3
from tests.e2e.test_finish_replicas import signer, wait_until
from tests.seaweedfs import SeaweedFS
from tests.webhook_receiver import receiver

SCALE = 10
"""The default SIGNER_FINISH_INTERVAL (10 s) over the one these tests run at (1 s)."""


@pytest.fixture
def prefix() -> str:
    return f"s{uuid.uuid4().hex[:12]}/"


def presign_and_upload(url: str, name: str) -> str:
    answer = requests.post(f"{url}/v1/presign", json={"method": "PUT", "filename": name, "content_type": "image/png",
                                                      "content_length": 3}, headers=bearer(ALICE_TOKEN), timeout=30)
    assert answer.status_code == 200, answer.text
    signed = answer.json()
    put = requests.put(signed["url"], data=b"png", headers=signed["headers"], timeout=30)
    assert put.status_code == 200, put.text
    return str(signed["key"])


def test_markers_spread_over_shards_and_the_older_layout_is_still_swept(weed: SeaweedFS, prefix: str) -> None:
    import dataclasses

    finish = dataclasses.replace(make_finish(weed, prefix), shards=4)
    signed = datetime.now(UTC)
    names = [f"{prefix}alice/{n}.png" for n in range(24)]
    for key in names:
        expect_upload(finish, Expectation.of(caller(prefix), "alice", key), protocol="test", signed_until=signed,
                      clock_skew=0, now=signed)
    pending = f"{prefix}.signer/pending/"
    folders = {key[len(pending):].split("/")[0] for key in keys(weed, pending)}
    assert folders == {"00", "01", "02", "03"}
    older = f"{prefix}alice/older.png"  # a marker as the release before wrote it: pending/<due>-<id>
    marker = {"v": 2, "id": uuid.uuid4().hex, "state": "check", "protocol": "test", "upload_id": None, "looks": 0,
              "attempts": 0, "lease_until": 0, "deadline": int(signed.timestamp()) + 3600,
              "expect": Expectation.of(caller(prefix), "alice", older).as_json()}
    s3(weed).put_object(Bucket=weed.bucket, Key=f"{pending}{int(signed.timestamp()):010d}-{marker['id']}",
                        Body=json.dumps(marker).encode())
    time.sleep(1.1)  # the uploads come after their markers (an object there before is an earlier one)
    for key in [*names, older]:
        s3(weed).put_object(Bucket=weed.bucket, Key=key, Body=b"<html>", ContentType="text/html")  # all break rules
    # Past a page (5 here), each shard is listed on its own; the older layout is its own source.
    claimed = 0
    for _ in range(10):
        claimed += sweep(finish, now=signed + timedelta(seconds=3), page_size=5, limit=10, rng=random.Random(2))
    assert claimed == 25
    assert keys(weed, f"{prefix}alice/") == [] and keys(weed, pending) == []


def test_a_keyed_marker_waits_for_its_event_until_every_signature_has_settled(weed: SeaweedFS, prefix: str) -> None:
    """With store notifications a marker is named by its key; the sweep leaves it to the event until
    the horizon, then finishes it as any other (an event that never came)."""
    import dataclasses

    finish = dataclasses.replace(make_finish(weed, prefix), events=True, horizon=600)
    key = f"{prefix}alice/late.png"
    name = expect_upload(finish, Expectation.of(caller(prefix), "alice", key), protocol="test",
                         signed_until=datetime.now(UTC), clock_skew=0)
    time.sleep(1.1)
    s3(weed).put_object(Bucket=weed.bucket, Key=key, Body=b"<html>", ContentType="text/html")
    assert name == keyed_marker_key(finish, key) and keys(weed, f"{prefix}.signer/") == [name]
    assert sweep(finish, now=datetime.now(UTC) + timedelta(seconds=60)) == 0  # the event's to finish
    assert sweep(finish, now=datetime.now(UTC) + timedelta(seconds=601)) == 1
    assert keys(weed, f"{prefix}alice/") == [] and keys(weed, f"{prefix}.signer/") == []


def test_an_idle_replica_lists_rarely_whatever_its_worker_count(weed: SeaweedFS, tmp_path: Path, prefix: str) -> None:
    """No traffic for 10 (scaled) minutes: at most 10 LISTs per replica, i.e. 60 an hour, with one
    worker and with four (before: one every interval per worker, 240 in 10 minutes with four)."""
    with counting_proxy(weed.path_endpoint) as one, counting_proxy(weed.path_endpoint) as four, \
            signer(weed, tmp_path, prefix, SIGNER_ENDPOINT_URL=one.url), \
            signer(weed, tmp_path, prefix, "--workers", "4", SIGNER_ENDPOINT_URL=four.url):
        one.reset()
        four.reset()
        time.sleep(600 / SCALE)
        counted = {"1 worker": one.count("LIST"), "4 workers": four.count("LIST")}
        print(f"LISTs in 10 scaled minutes: {counted}")
        assert all(1 <= lists <= 10 for lists in counted.values()), counted
        assert one.count() == one.count("LIST") and four.count() == four.count("LIST")  # nothing else when idle


def test_a_replica_killed_right_after_signing_has_its_markers_finished_by_another(
        weed: SeaweedFS, tmp_path: Path, prefix: str) -> None:
    with receiver() as hook, counting_proxy(weed.path_endpoint) as watched:
        hooked = {"SIGNER_WEBHOOK_URL": hook.url, "SIGNER_WEBHOOK_SECRET": SECRET}
        with signer(weed, tmp_path, prefix, "--workers", "2", SIGNER_ENDPOINT_URL=watched.url, **hooked), \
                signer(weed, tmp_path, prefix, "--workers", "2", **hooked) as (url, a):
            assert wait_until(lambda: watched.count("LIST") >= 4, 60)  # B idles: 9 intervals between LISTs now
            lists = watched.count("LIST")
            assert wait_until(lambda: watched.count("LIST") > lists, 15)  # the worst moment: B has just listed
            uploaded = [presign_and_upload(url, f"{n}.png") for n in range(3)]
            os.killpg(a.pid, signal.SIGKILL)
            killed = time.monotonic()
            a.wait(timeout=10)
            assert len(keys(weed, f"{prefix}.signer/pending/")) == 3
            assert wait_until(lambda: len(hook.deliveries) >= 3, 120 / SCALE), "not finished within 2 (scaled) minutes"
            took = time.monotonic() - killed
            assert sorted(d.event["key"] for d in hook.deliveries) == sorted(uploaded)
            assert {d.event["type"] for d in hook.deliveries} == {"upload.verified"}
            print(f"finished by the other replica {took:.1f} s after the kill ({took * SCALE:.0f} s at the default)")


def test_a_burst_of_a_thousand_uploads_is_told_within_30_s_of_the_last(
        weed: SeaweedFS, tmp_path: Path, prefix: str) -> None:
    """One replica of two workers, default interval: 1,000 clients each presign and upload at once
    (16 at a time); every upload.verified arrives within 30 s of the last upload."""
    with receiver() as hook, signer(weed, tmp_path, prefix, "--workers", "2", SIGNER_FINISH_INTERVAL="10",
                                    SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=SECRET,
                                    SIGNER_MAX_PENDING_PER_CALLER="5000") as (url, _):
        started = time.monotonic()
        lock, done = threading.Lock(), [0.0]

        def one(number: int) -> str:
            key = presign_and_upload(url, f"{number}.png")
            with lock:
                done[0] = time.monotonic()
            return key

        with ThreadPoolExecutor(16) as pool:
            uploaded = list(pool.map(one, range(1000)))
        last = done[0]
        assert wait_until(lambda: len(hook.deliveries) >= 1000, 30 + last - time.monotonic()), len(hook.deliveries)
        told = time.monotonic()
        assert {d.event["key"] for d in hook.deliveries} == set(uploaded)
        print(f"1,000 uploads in {last - started:.1f} s; the last told {told - last:.1f} s after the last upload")
        assert told - last <= 30
