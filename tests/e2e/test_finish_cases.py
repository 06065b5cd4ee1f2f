"""The finish step's marker cases of issue #25, against real SeaweedFS and a real service process:
300 markers for keys the store answers 400 to, and other callers' uploads are still reported and
checked within 30 s; a key the store reads differently is refused before signing; one caller
cannot record more than SIGNER_MAX_PENDING_PER_CALLER uploads; an object already at a key is not
reported as an unused PUT's upload; a complete the store would refuse is refused before it leaves
a marker; a repeated publish tells the same event id."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from signer.service.finish import Expectation, PendingLedger, expect_upload
from signer.service.rules import Rules
from tests.conftest import ALICE_TOKEN, BOB_TOKEN, bearer, env_with
from tests.e2e.test_finish import MIB, SECRET, keys, make_finish, s3
from tests.e2e.test_finish_replicas import second_part, send_complete, signer, start_upload, wait_until
from tests.seaweedfs import SeaweedFS
from tests.webhook_receiver import receiver

CAROL_TOKEN = "carol-token-0123456789abcdef0"
TOKENS = env_with()["SIGNER_API_TOKENS"] + f",carol:{CAROL_TOKEN}"


def poisoned_key(prefix: str) -> str:
    return f"{prefix}mallory/..\\{uuid.uuid4().hex}"


def test_markers_the_store_refuses_stall_no_one(weed: SeaweedFS, tmp_path: Path) -> None:
    prefix = f"p{uuid.uuid4().hex[:12]}/"
    # The premise: SeaweedFS answers 400 to every request on such a key, a HEAD included.
    head = requests.head(f"{weed.path_endpoint}/{weed.bucket}/{poisoned_key(prefix)}", timeout=10)
    assert head.status_code == 400
    # 300 markers for such keys, as an older release let a caller record them (a presigned PUT each)
    finish = make_finish(weed, prefix, "http://127.0.0.1:9/unused")
    finish = type(finish)(**{**finish.__dict__, "pending": PendingLedger(10_000)})
    rules = Rules(key_prefix=prefix, max_size=6 * MIB, allowed_content_types=("image/*",)).for_caller("mallory")
    for _ in range(300):
        expect_upload(finish, Expectation.of(rules, "mallory", poisoned_key(prefix)), protocol="presign",
                      signed_until=datetime.now(UTC) + timedelta(hours=1), clock_skew=0, bounded=True)
    assert len(keys(weed, f"{prefix}.signer/pending/")) == 300

    with receiver() as hook, signer(weed, tmp_path, prefix, SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=SECRET,
                                    SIGNER_FINISH_INTERVAL="10", SIGNER_API_TOKENS=TOKENS) as (url, _):
        # bob: a legitimate upload with a presigned PUT
        answer = requests.post(f"{url}/v1/presign", json={"method": "PUT", "filename": "fine.png",
                                                          "content_type": "image/png", "content_length": 3},
                               headers=bearer(BOB_TOKEN), timeout=10)
        assert answer.status_code == 200, answer.text
        presigned = answer.json()
        assert requests.put(presigned["url"], data=b"png", headers=presigned["headers"], timeout=10).status_code == 200
        # carol: a multipart upload she completes herself, over the size limit
        big = f"{prefix}carol/big.png"
        upload_id, first = start_upload(weed, big, 5 * MIB)
        complete = requests.post(f"{url}/v1/sign-request", json={"method": "POST", "key": big, "uploadId": upload_id},
                                 headers=bearer(CAROL_TOKEN), timeout=30)
        assert complete.status_code == 200, complete.text
        send_complete(complete.json(), [first, second_part(weed, big, upload_id, 2 * MIB)])
        started = datetime.now(UTC)

        assert wait_until(lambda: any(d.event["key"] == presigned["key"] for d in hook.deliveries), 30), \
            (tmp_path / f"service-{url.rsplit(':', 1)[1]}.log").read_text()[-3000:]
        assert wait_until(lambda: big not in keys(weed, f"{prefix}carol/"), 30)
        assert (datetime.now(UTC) - started).total_seconds() < 32
    verified = [d.event for d in hook.deliveries if d.event["key"] == presigned["key"]]
    assert [event["type"] for event in verified] == ["upload.verified"]
    rejected = [d.event for d in hook.deliveries if d.event["key"] == big]
    assert rejected and rejected[0]["type"] == "upload.rejected"
    assert not [d for d in hook.deliveries if "mallory" in d.event["key"]]  # nothing about keys never read
    # the poisoned markers moved behind the others, with backoff, still pending until their deadline
    assert 0 < len(keys(weed, f"{prefix}.signer/pending/")) <= 300


def test_a_key_the_store_reads_differently_is_refused_before_signing(weed: SeaweedFS, tmp_path: Path) -> None:
    prefix = f"p{uuid.uuid4().hex[:12]}/"
    with signer(weed, tmp_path, prefix) as (url, _):
        answer = requests.post(f"{url}/v1/presign", json={"method": "PUT", "key": f"{prefix}alice/..\\x.png",
                                                          "content_type": "image/png", "content_length": 3},
                               headers=bearer(ALICE_TOKEN), timeout=10)
        assert answer.status_code == 403 and answer.json()["code"] == "key_not_allowed"
        fine = requests.post(f"{url}/v1/presign", json={"method": "PUT", "key": f"{prefix}alice/a\\b.png",
                                                        "content_type": "image/png", "content_length": 3},
                             headers=bearer(ALICE_TOKEN), timeout=10)
        assert fine.status_code == 200  # a backslash alone is a character like any other


def test_one_caller_cannot_record_more_than_its_cap(weed: SeaweedFS, tmp_path: Path) -> None:
    prefix = f"p{uuid.uuid4().hex[:12]}/"
    body = {"method": "PUT", "filename": "x.png", "content_type": "image/png", "content_length": 3}
    with receiver() as hook, signer(weed, tmp_path, prefix, SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=SECRET,
                                    SIGNER_MAX_PENDING_PER_CALLER="5") as (url, _):
        answers = [requests.post(f"{url}/v1/presign", json=body, headers=bearer(ALICE_TOKEN), timeout=10)
                   for _ in range(7)]
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
        refused = answers[-1].json()
        assert refused["code"] == "too_many_pending" and "SIGNER_MAX_PENDING_PER_CALLER" not in refused.get("url", "")
        assert "url" not in refused  # nothing signed
        other = requests.post(f"{url}/v1/presign", json=body, headers=bearer(BOB_TOKEN), timeout=10)
        assert other.status_code == 200  # another caller is not held up
        assert len(keys(weed, f"{prefix}.signer/pending/")) == 6
        # a GET signs no upload and records nothing: never capped
        got = requests.post(f"{url}/v1/presign", json={"method": "GET", "key": f"{prefix}alice/x.png"},
                            headers=bearer(ALICE_TOKEN), timeout=10)
        assert got.status_code == 200


def test_an_object_already_at_the_key_is_not_reported_as_an_unused_puts_upload(weed: SeaweedFS, tmp_path: Path) -> None:
    """A presigned PUT never used (or refused 412 under SIGNER_OVERWRITE=deny) onto a key that
    already held an object: the object is older than the marker (the store's Last-Modified), so it
    is not this upload's and is neither reported nor checked. A fresh upload still is."""
    prefix = f"p{uuid.uuid4().hex[:12]}/"
    earlier = f"{prefix}alice/earlier.png"
    s3(weed).put_object(Bucket=weed.bucket, Key=earlier, Body=b"x" * 100, ContentType="text/html")  # breaks the rules
    time.sleep(2.5)  # Last-Modified has whole seconds, and a second of slack is allowed
    body = {"method": "PUT", "content_type": "image/png", "content_length": 3}
    with receiver() as hook, signer(weed, tmp_path, prefix, SIGNER_WEBHOOK_URL=hook.url,
                                    SIGNER_WEBHOOK_SECRET=SECRET) as (url, _):
        unused = requests.post(f"{url}/v1/presign", json={**body, "key": earlier}, headers=bearer(ALICE_TOKEN),
                               timeout=10)
        assert unused.status_code == 200, unused.text
        signed = unused.json()
        assert requests.put(signed["url"], data=b"png", headers=signed["headers"], timeout=10).status_code == 412
        fresh = requests.post(f"{url}/v1/presign", json={**body, "filename": "new.png"}, headers=bearer(ALICE_TOKEN),
                              timeout=10).json()
        assert requests.put(fresh["url"], data=b"png", headers=fresh["headers"], timeout=10).status_code == 200
        assert wait_until(lambda: any(d.event["key"] == fresh["key"] for d in hook.deliveries), 30)
        time.sleep(6)  # the first two looks at the unused one (2 s, then 5 s) have passed
    assert [d.event["type"] for d in hook.deliveries] == ["upload.verified"]
    assert earlier in keys(weed, f"{prefix}alice/")  # the earlier object was not judged, let alone deleted
    assert len(keys(weed, f"{prefix}.signer/pending/")) == 1  # still looked at until its deadline, then dropped


def test_a_sign_request_complete_onto_an_existing_key_is_refused_before_signing(weed: SeaweedFS,
                                                                                tmp_path: Path) -> None:
    """Under SIGNER_OVERWRITE=deny the store would refuse the client's complete (412), and the
    marker written for it would report the object already there: refused first, like Fine Uploader's."""
    prefix = f"p{uuid.uuid4().hex[:12]}/"
    key = f"{prefix}alice/taken.png"
    s3(weed).put_object(Bucket=weed.bucket, Key=key, Body=b"png", ContentType="image/png")
    with receiver() as hook, signer(weed, tmp_path, prefix, SIGNER_WEBHOOK_URL=hook.url,
                                    SIGNER_WEBHOOK_SECRET=SECRET) as (url, _):
        upload_id, _first = start_upload(weed, key, 5 * MIB)
        answer = requests.post(f"{url}/v1/sign-request", json={"method": "POST", "key": key, "uploadId": upload_id},
                               headers=bearer(ALICE_TOKEN), timeout=30)
        assert answer.status_code == 409 and answer.json()["code"] == "object_exists"
        assert "url" not in answer.json()
        assert not keys(weed, f"{prefix}.signer/pending/")  # nothing recorded, nothing to report
    assert not hook.deliveries


def test_a_repeated_publish_tells_the_same_event_id(weed: SeaweedFS, tmp_path: Path) -> None:
    """The publish step queues upload.published on every publish under one id per upload and
    public name: a publish whose event was lost after its copy is told by its retry, and a
    receiver that deduplicates by id sees one publication."""
    prefix = f"p{uuid.uuid4().hex[:12]}/"
    public = f"public-{uuid.uuid4().hex[:8]}"
    weed.create_bucket(public)
    with receiver() as hook, signer(weed, tmp_path, prefix, SIGNER_WEBHOOK_URL=hook.url, SIGNER_WEBHOOK_SECRET=SECRET,
                                    SIGNER_PUBLISH_BUCKET=public) as (url, _):
        signed = requests.post(f"{url}/v1/presign", json={"method": "PUT", "filename": "p.png",
                                                          "content_type": "image/png", "content_length": 3},
                               headers=bearer(ALICE_TOKEN), timeout=10).json()
        assert requests.put(signed["url"], data=b"png", headers=signed["headers"], timeout=10).status_code == 200
        answers = []
        for _ in range(2):  # a second apart: two event markers (within one second, one is written)
            answers.append(requests.post(f"{url}/v1/uploads/publish", json={"key": signed["key"]},
                                         headers=bearer(ALICE_TOKEN), timeout=30))
            time.sleep(1.1)
        assert [a.status_code for a in answers] == [200, 200] and answers[0].json()["key"] == answers[1].json()["key"]
        assert wait_until(lambda: sum(d.event["type"] == "upload.published" for d in hook.deliveries) == 2, 40)
    published = [d for d in hook.deliveries if d.event["type"] == "upload.published"]
    assert len({d.event["id"] for d in published}) == 1
    assert {d.headers["signer-event-id"] for d in published} == {published[0].event["id"]}
