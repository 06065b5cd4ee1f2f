"""The finish step (signer/service/finish.py) against a real SeaweedFS, in this process: markers
written and swept, claims by conditional writes, bounded sweeps, stale leases, webhook delivery
with retries to a real HTTP receiver. The same against real service processes is in
tests/e2e/test_finish_replicas.py."""

from __future__ import annotations

import json
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from signer import Bucket
from signer.service import finish as finishing
from signer.service.finish import Expectation, Finish, check_object, expect_upload, queue_event, sweep
from signer.service.notify import Webhook
from signer.service.rules import Rules
from tests.conftest import ACCESS_KEY, SECRET_KEY
from tests.seaweedfs import SeaweedFS
from tests.webhook_receiver import receiver

MIB = 1024 * 1024
SECRET = "webhook-secret-for-tests-0123456789abcdef"


def s3(weed: SeaweedFS) -> Any:
    """boto3 on the store (test-only: to arrange and inspect, independently of our storage.py)."""
    return boto3.client("s3", endpoint_url=weed.path_endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY, config=BotoConfig(s3={"addressing_style": "path"}))


def keys(weed: SeaweedFS, prefix: str) -> list[str]:
    return [item["Key"] for item in s3(weed).list_objects_v2(Bucket=weed.bucket, Prefix=prefix).get("Contents", [])]


@pytest.fixture
def prefix() -> str:
    """A fresh SIGNER_KEY_PREFIX per test: its own markers, in the shared bucket."""
    return f"t{uuid.uuid4().hex[:12]}/"


def make_finish(weed: SeaweedFS, prefix: str, url: str | None = None) -> Finish:
    webhook = Webhook(url, SECRET.encode(), timeout=2.0) if url else None
    return Finish(lambda: weed.credentials, Bucket(weed.bucket, "us-east-1", weed.path_endpoint, "path"), prefix,
                  timeout=5.0, interval=1, webhook=webhook)


def caller(prefix: str) -> Any:
    return Rules(key_prefix=prefix, max_size=6 * MIB, allowed_content_types=("image/*",)).for_caller("alice")


def multipart(weed: SeaweedFS, key: str, sizes: list[int], content_type: str = "image/png",
              complete: bool = True) -> str:
    client = s3(weed)
    upload_id: str = client.create_multipart_upload(Bucket=weed.bucket, Key=key, ContentType=content_type)["UploadId"]
    parts = [{"PartNumber": n, "ETag": client.upload_part(Bucket=weed.bucket, Key=key, UploadId=upload_id, PartNumber=n,
                                                          Body=b"x" * size)["ETag"]} for n, size in enumerate(sizes, 1)]
    if complete:
        client.complete_multipart_upload(Bucket=weed.bucket, Key=key, UploadId=upload_id,
                                         MultipartUpload={"Parts": parts})
    return upload_id


def later(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def expect(finish: Finish, prefix: str, key: str, upload_id: str | None = None, bounded: bool = False,
           now: datetime | None = None) -> str | None:
    return expect_upload(finish, Expectation.of(caller(prefix), "alice", key), protocol="test",
                         signed_until=datetime.now(UTC), clock_skew=0, upload_id=upload_id, bounded=bounded, now=now)


def test_seaweedfs_honours_the_conditional_writes_the_claims_rely_on(weed: SeaweedFS) -> None:
    """If-None-Match: * refuses an existing key, If-Match refuses a changed one (both 412)."""
    key = f"conditional/{uuid.uuid4().hex}"
    assert weed.request("PUT", key, body=b"one", headers={"If-None-Match": "*"})[0] == 200
    assert weed.request("PUT", key, body=b"two", headers={"If-None-Match": "*"})[0] == 412
    etag = weed.request("HEAD", key)[1]["etag"]
    assert weed.request("PUT", key, body=b"three", headers={"If-Match": '"0123456789abcdef0123456789abcdef"'})[0] == 412
    assert weed.request("PUT", key, body=b"four", headers={"If-Match": etag})[0] == 200
    assert weed.get_object(key) == b"four"


def test_a_sweep_deletes_what_breaks_the_rules_and_keeps_the_rest(weed: SeaweedFS, prefix: str) -> None:
    finish = make_finish(weed, prefix)
    cases = {"big.png": ([5 * MIB, 2 * MIB], "image/png"), "ok.png": ([10], "image/png"),
             "page.png": ([10], "text/html")}
    signed = datetime.now(UTC)
    for name, (sizes, content_type) in cases.items():
        key = f"{prefix}alice/{name}"
        expect(finish, prefix, key, multipart(weed, key, sizes, content_type), now=signed)
    assert len(keys(weed, f"{prefix}.signer/pending/")) == 3
    assert sweep(finish, now=signed + timedelta(seconds=1)) == 0  # not due yet (2 s after signing)
    assert sweep(finish, now=signed + timedelta(seconds=3)) == 3
    assert keys(weed, f"{prefix}alice/") == [f"{prefix}alice/ok.png"]
    assert keys(weed, f"{prefix}.signer/") == []  # done: no webhook, nothing more to do


def test_an_open_upload_is_looked_at_again_and_an_object_already_at_the_key_does_not_end_it(
        weed: SeaweedFS, prefix: str) -> None:
    """The marker waits for the *upload* to end: a small object placed first is not the upload."""
    finish = make_finish(weed, prefix)
    key = f"{prefix}alice/swap.png"
    s3(weed).put_object(Bucket=weed.bucket, Key=key, Body=b"small", ContentType="image/png")
    upload_id = multipart(weed, key, [5 * MIB, 2 * MIB], complete=False)
    expect_upload(finish, Expectation.of(caller(prefix), "alice", key), protocol="test",
                  signed_until=datetime.now(UTC) + timedelta(seconds=3600), clock_skew=0, upload_id=upload_id)
    base = later(3)
    assert sweep(finish, now=base) == 1
    assert keys(weed, f"{prefix}alice/") == [key]  # still open: kept, looked at again later
    [pending] = keys(weed, f"{prefix}.signer/pending/")
    assert int(pending.rsplit("/", 1)[1][:10]) >= int(base.timestamp()) + 5  # the next look, 5 s on
    client = s3(weed)
    parts = client.list_parts(Bucket=weed.bucket, Key=key, UploadId=upload_id)["Parts"]
    client.complete_multipart_upload(Bucket=weed.bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]})
    assert sweep(finish, now=later(20)) == 1
    assert keys(weed, f"{prefix}alice/") == [] and keys(weed, f"{prefix}.signer/") == []


def test_an_upload_that_never_happens_is_dropped_after_its_deadline(weed: SeaweedFS, prefix: str) -> None:
    finish = make_finish(weed, prefix)
    expect(finish, prefix, f"{prefix}alice/never.png")
    assert sweep(finish, now=later(3)) == 1
    assert len(keys(weed, f"{prefix}.signer/pending/")) == 1  # absent, before the deadline: again later
    assert sweep(finish, now=later(finishing.SETTLE + 60)) == 1
    assert keys(weed, f"{prefix}.signer/") == []


def test_sweepers_racing_for_the_same_markers_claim_each_once(weed: SeaweedFS, prefix: str) -> None:
    with receiver() as hook:
        finish = make_finish(weed, prefix, hook.url)
        for number in range(6):
            key = f"{prefix}alice/{number}.png"
            s3(weed).put_object(Bucket=weed.bucket, Key=key, Body=b"png", ContentType="image/png")
            expect(finish, prefix, key)
        claimed: list[int] = []
        start = threading.Barrier(4)

        def run() -> None:
            start.wait()
            claimed.append(sweep(finish, now=later(3)))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(claimed) == 6
        events = [delivery.event for delivery in hook.wait_for(6)]
        assert sorted(event["key"] for event in events) == sorted(f"{prefix}alice/{n}.png" for n in range(6))
        assert len({event["id"] for event in events}) == 6 and len(hook.deliveries) == 6
        assert keys(weed, f"{prefix}.signer/") == []


def test_a_sweep_does_bounded_work_and_follows_pages(weed: SeaweedFS, prefix: str) -> None:
    finish = make_finish(weed, prefix)
    for number in range(23):
        expect(finish, prefix, f"{prefix}alice/{number}.png")
    expect_upload(finish, Expectation.of(caller(prefix), "alice", f"{prefix}alice/late.png"), protocol="test",
                  signed_until=datetime.now(UTC), clock_skew=0, now=later(3600))  # due in an hour
    base = later(3)
    found = finishing.due_markers(finish, base, 100, page_size=5).keys
    assert len(found) == 23  # five pages, stopped at the first marker not due
    assert sweep(finish, now=base, limit=10, page_size=5, rng=random.Random(1)) == 10
    rescheduled = [key for key in keys(weed, f"{prefix}.signer/pending/")
                   if int(key.rsplit("/", 1)[1][:10]) > int(base.timestamp())]
    assert len(rescheduled) == 11  # the ten looked at (not uploaded yet: later) and the late one


def test_a_lease_keeps_other_sweepers_off_until_it_expires(weed: SeaweedFS, prefix: str) -> None:
    """A sweeper that died holding a marker delays it by the lease, and loses nothing."""
    finish = make_finish(weed, prefix)
    key = f"{prefix}alice/big.png"
    expect(finish, prefix, key, multipart(weed, key, [5 * MIB, 2 * MIB]))
    [marker_key] = keys(weed, f"{prefix}.signer/pending/")
    marker = json.loads(weed.get_object(marker_key) or b"")
    marker["lease_until"] = int(later(3).timestamp()) + finishing.LEASE  # as a sweeper that then died
    weed.request("PUT", marker_key, body=json.dumps(marker).encode())
    assert sweep(finish, now=later(3)) == 0 and keys(weed, f"{prefix}alice/") == [key]
    assert sweep(finish, now=later(4 + finishing.LEASE)) == 1 and keys(weed, f"{prefix}alice/") == []


def test_webhook_retries_with_backoff_until_2xx_with_the_same_event_id(weed: SeaweedFS, prefix: str) -> None:
    with receiver([500, 500]) as hook:
        finish = make_finish(weed, prefix, hook.url)
        key = f"{prefix}alice/big.png"
        expect(finish, prefix, key, multipart(weed, key, [5 * MIB, 2 * MIB]))
        base = later(3)
        step = [base + timedelta(seconds=seconds) for seconds in range(7)]
        assert sweep(finish, now=step[0]) == 1  # checked, deleted, told: 500
        assert sweep(finish, now=step[0]) == 0  # the retry waits (interval 1 s, then doubling)
        assert sweep(finish, now=step[2]) == 1  # 500 again
        assert sweep(finish, now=step[3]) == 0  # 2 s this time
        assert sweep(finish, now=step[5]) == 1  # 200
        assert sweep(finish, now=later(60)) == 0 and keys(weed, f"{prefix}.signer/") == []
        deliveries = hook.wait_for(3)
        event_id = deliveries[0].headers["signer-event-id"]
        assert len(deliveries) == 3 and {d.headers["signer-event-id"] for d in deliveries} == {event_id}
        bodies = {d.body for d in deliveries}
        assert len(bodies) == 1  # the same event each time
        event = deliveries[0].event
        assert event["type"] == "upload.rejected" and event["key"] == key and event["identity"] == "alice"
        assert event["size"] == 7 * MIB and event["reason"]["code"] == "too_large" and event["id"] == event_id
        assert SECRET not in bodies.pop().decode()


def test_check_object_is_the_one_check_for_publish_too(weed: SeaweedFS, prefix: str) -> None:
    """check_object (no Flask): verified, rejected (deleted), absent; a key outside the caller's
    folder or in the service's own is rejected whatever its size."""
    finish = make_finish(weed, prefix)
    client = s3(weed)
    client.put_object(Bucket=weed.bucket, Key=f"{prefix}alice/ok.png", Body=b"png", ContentType="image/png")
    client.put_object(Bucket=weed.bucket, Key=f"{prefix}bob/ok.png", Body=b"png", ContentType="image/png")
    client.put_object(Bucket=weed.bucket, Key=f"{prefix}alice/x.html", Body=b"<p>", ContentType="text/html")
    rules = caller(prefix)
    assert check_object(finish, Expectation.of(rules, "alice", f"{prefix}alice/ok.png")).outcome == "verified"
    wrong = check_object(finish, Expectation.of(rules, "alice", f"{prefix}alice/x.html"))
    assert (wrong.outcome, wrong.code) == ("rejected", "content_type_not_allowed")
    elsewhere = check_object(finish, Expectation.of(rules, "alice", f"{prefix}bob/ok.png"))
    assert (elsewhere.outcome, elsewhere.code) == ("rejected", "key_not_allowed")
    assert check_object(finish, Expectation.of(rules, "alice", f"{prefix}alice/none.png")).outcome == "absent"
    assert keys(weed, prefix) == [f"{prefix}alice/ok.png"]


def test_queue_event_is_delivered_by_the_sweep_not_by_the_caller(weed: SeaweedFS, prefix: str) -> None:
    with receiver() as hook:
        finish = make_finish(weed, prefix, hook.url)
        event_id = queue_event(finish, "upload.published", Expectation.of(caller(prefix), "alice", f"{prefix}a.png"),
                               None, extra={"public_key": "public/a.png"})
        assert hook.deliveries == []
        assert sweep(finish) == 1
        [delivery] = hook.wait_for(1)
        assert delivery.event["id"] == event_id and delivery.event["type"] == "upload.published"
        assert delivery.event["public_key"] == "public/a.png"
    assert queue_event(make_finish(weed, prefix), "upload.published",
                       Expectation.of(caller(prefix), "alice", f"{prefix}a.png"), None) is None  # no webhook


def test_a_bounded_upload_leaves_no_marker_without_a_webhook(weed: SeaweedFS, prefix: str) -> None:
    finish = make_finish(weed, prefix)
    assert expect(finish, prefix, f"{prefix}alice/a.png", bounded=True) is None
    assert keys(weed, f"{prefix}.signer/") == []


def test_sweeps_go_by_the_store_clock_not_this_replicas(weed: SeaweedFS, prefix: str, monkeypatch) -> None:
    """A replica whose clock runs an hour ahead still finds nothing due that the store's clock
    (its Date header) says is not: replicas that disagree agree on the store."""
    finish = make_finish(weed, prefix)
    key = f"{prefix}alice/big.png"
    expect_upload(finish, Expectation.of(caller(prefix), "alice", key), protocol="test",
                  signed_until=later(3600), clock_skew=0, upload_id=multipart(weed, key, [5 * MIB, 2 * MIB]),
                  now=later(60))  # due in a minute
    monkeypatch.setattr(finishing, "current_time", lambda: later(3600))  # this replica's clock
    assert sweep(finish) == 0 and keys(weed, f"{prefix}alice/") == [key]
    monkeypatch.undo()
    assert sweep(finish, now=later(63)) == 1 and keys(weed, f"{prefix}alice/") == []


def test_a_companion_complete_the_store_refuses_onto_an_existing_key_reports_nothing(
        weed: SeaweedFS, prefix: str) -> None:
    """Under SIGNER_OVERWRITE=deny the store refuses the complete and the upload is aborted: the
    object at the key is the earlier one, so no event may call it this upload's (upload.verified)."""
    from signer.service.companion import Companion
    from signer.service.errors import Refused

    with receiver() as hook:
        finish = make_finish(weed, prefix, hook.url)
        rules = Rules(key_prefix=prefix, max_size=6 * MIB, allowed_content_types=("image/*",), overwrite="deny")
        companion = Companion(weed.credentials, finish.bucket, rules.for_caller("alice"), datetime.now(UTC), 5.0,
                              finish=finish, identity="alice")
        created = companion.create("photo.png", "image/png")
        key, upload_id = created["key"], created["uploadId"]
        client = s3(weed)
        etag = client.upload_part(Bucket=weed.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x" * 10)["ETag"]
        client.put_object(Bucket=weed.bucket, Key=key, Body=b"first", ContentType="image/png")  # lands first
        with pytest.raises(Refused) as refused:
            companion.complete(upload_id, key, {"parts": [{"PartNumber": 1, "ETag": etag}]})
        assert refused.value.code == "object_exists"
        sweep(finish, now=later(3))
        assert [delivery.event["type"] for delivery in hook.deliveries] == []
        assert keys(weed, f"{prefix}.signer/") == []
        assert client.get_object(Bucket=weed.bucket, Key=key)["Body"].read() == b"first"


def test_a_marker_the_sweep_cannot_read_is_dropped_and_stops_no_other(weed: SeaweedFS, prefix: str) -> None:
    """A marker whose lease is not a number (written by hand, or by another version) is dropped as
    unreadable; it must neither make every sweep raise nor keep the markers after it waiting."""
    with receiver() as hook:
        finish = make_finish(weed, prefix, hook.url)
        moment = datetime.now(UTC)
        poison = f"{finish.pending_prefix}{int(moment.timestamp()) - 60:010d}-{uuid.uuid4().hex}"  # the earliest
        s3(weed).put_object(Bucket=weed.bucket, Key=poison, Body=b'{"lease_until": "soon", "state": "notify"}')
        nameless = f"{finish.pending_prefix}{int(moment.timestamp()) - 60:010d}-{uuid.uuid4().hex}"
        s3(weed).put_object(Bucket=weed.bucket, Key=nameless, Body=b'{"lease_until": 0, "state": "notify"}')  # no id
        ids = {queue_event(finish, "upload.published", Expectation.of(caller(prefix), "alice", f"{prefix}alice/{n}"),
                           None, now=moment) for n in range(3)}
        seed = next(seed for seed in range(1000) if _first_after_shuffle(seed, 5) in (0, 1))  # a poison first
        assert sweep(finish, now=moment + timedelta(seconds=1), rng=random.Random(seed)) == 3
        assert {delivery.event["id"] for delivery in hook.wait_for(3)} == ids
        assert keys(weed, f"{prefix}.signer/") == []


def _first_after_shuffle(seed: int, count: int) -> int:
    order = list(range(count))
    random.Random(seed).shuffle(order)
    return order[0]
