"""`doctor` against two real stores: SeaweedFS, which passes every check, and moto's server,
which verifies no signature, enforces no POST policy and has no CORS (so it fails those);
plus wrong credentials, a missing bucket, an unreachable endpoint and a skewed clock.
Each run must leave the bucket as it found it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from signer.service.config import load_config
from signer.service.doctor import check_clock, healthy, report, run_doctor
from signer.service.web.app import create_app
from signer.sigv4 import current_time
from tests.conftest import ACCESS_KEY, ALICE_TOKEN, SECRET_KEY, bearer, env_with
from tests.servers import ROOT, moto_server


def by_check(findings) -> dict:
    return {finding.check: finding for finding in findings}


def keys_in(store) -> list[bytes]:
    status, _, body = store.request("GET", "", "list-type=2")
    assert status == 200
    return [part.split(b"</Key>")[0] for part in body.split(b"<Key>")[1:]]


@pytest.fixture(scope="module")
def moto():
    with moto_server() as url:
        boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                     aws_secret_access_key=SECRET_KEY).create_bucket(Bucket="uploads-bucket")
        yield url


def moto_keys(url: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY)
    return [item["Key"] for item in s3.list_objects_v2(Bucket="uploads-bucket").get("Contents", [])]


@pytest.mark.parametrize("style", ["path", "virtual"])
def test_seaweedfs_passes_every_check_and_keeps_nothing(weed, style) -> None:
    before = keys_in(weed)
    findings = run_doctor(load_config(env_with(**weed.signer_env(style))))
    assert healthy(findings), report(findings)
    assert [f.check for f in findings] == ["bucket", "clock", "tampered signature", "unsigned x-amz header",
                                           "checksum", "no overwrite", "conditional writes", "post policy size", "cors",
                                           "markers elsewhere", "cleanup"]
    assert all(f.ok for f in findings), report(findings)
    assert "EntityTooLarge" in by_check(findings)["post policy size"].message
    assert "BadDigest" in by_check(findings)["checksum"].message
    assert "PreconditionFailed" in by_check(findings)["no overwrite"].message
    assert keys_in(weed) == before


def test_seaweedfs_with_cors_for_another_origin_fails_cors_with_the_json_to_apply(weed) -> None:
    body = (b"<CORSConfiguration><CORSRule><AllowedOrigin>https://other.example</AllowedOrigin>"
            b"<AllowedMethod>GET</AllowedMethod><AllowedHeader>*</AllowedHeader></CORSRule></CORSConfiguration>")
    import base64
    import hashlib

    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()  # S3's Content-MD5
    assert weed.request("PUT", "", "cors", body, {"Content-MD5": md5})[0] == 200
    try:
        findings = by_check(run_doctor(load_config(env_with(**weed.signer_env("path")))))
    finally:
        assert weed.request("DELETE", "", "cors")[0] in (200, 204)
    cors = findings["cors"]
    assert cors.ok is False and "https://app.example may not PUT" in cors.message
    applied = json.loads(cors.fix[cors.fix.index("{"):])
    assert applied["CORSRules"][0]["AllowedOrigins"] == ["https://app.example"]
    assert applied["CORSRules"][0]["ExposeHeaders"] == ["ETag"]
    assert all(findings[name].ok for name in ("tampered signature", "unsigned x-amz header", "post policy size"))


@pytest.mark.parametrize(("overrides", "words"), [
    ({"AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789abcdefghijklmn"}, "AWS_SECRET_ACCESS_KEY"),
    ({"AWS_ACCESS_KEY_ID": "AKIDNOTKNOWN0000"}, "AWS_ACCESS_KEY_ID"),
    ({"SIGNER_BUCKET": "no-such-bucket"}, "SIGNER_BUCKET"),
])
def test_seaweedfs_with_wrong_settings_says_which_to_fix(weed, overrides, words) -> None:
    env = env_with(**{**weed.signer_env("path"), **overrides})
    findings = run_doctor(load_config(env))
    bucket = by_check(findings)["bucket"]
    assert bucket.ok is False and words in bucket.fix, report(findings)
    assert not healthy(findings)
    assert {f.check for f in findings if f.ok is None} >= {"tampered signature", "cors"}


def test_an_unreachable_endpoint_is_named() -> None:
    from tests.servers import free_port

    env = env_with(SIGNER_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", SIGNER_S3_TIMEOUT="2")
    findings = run_doctor(load_config(env))
    assert by_check(findings)["bucket"].ok is False and "SIGNER_ENDPOINT_URL" in by_check(findings)["bucket"].fix


def test_moto_fails_the_laxness_checks_and_keeps_nothing(moto) -> None:
    findings = by_check(run_doctor(load_config(env_with(SIGNER_ENDPOINT_URL=moto))))
    assert findings["bucket"].ok and findings["clock"].ok and findings["conditional writes"].ok
    for name in ("tampered signature", "unsigned x-amz header", "checksum", "post policy size", "cors"):
        assert findings[name].ok is False and findings[name].fix, name
    assert "x-amz-checksum-sha256" in findings["checksum"].message  # moto 5.2.1 stores other bytes
    assert findings["no overwrite"].ok is True  # and honours If-None-Match
    assert "x-amz-copy-source" in findings["unsigned x-amz header"].message
    assert '"ExposeHeaders"' in findings["cors"].fix
    assert findings["cleanup"].ok
    assert moto_keys(moto) == []


def test_a_skewed_clock_is_reported(moto) -> None:
    later = lambda: current_time() + timedelta(hours=2)  # noqa: E731 - moto checks no signature, so all else runs
    findings = by_check(run_doctor(load_config(env_with(SIGNER_ENDPOINT_URL=moto)), now=later))
    assert findings["clock"].ok is False and re.search(r"\+7[12]\d\d s from the store", findings["clock"].message)
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert check_clock("Mon, 23 Nov 2026 08:00:30 GMT", now, 60).ok is True
    assert check_clock("Mon, 23 Nov 2026 08:02:00 GMT", now, 60).ok is False
    assert check_clock(None, now, 60).ok is None and check_clock("garbage", now, 60).ok is None


def test_cli_doctor_exit_codes(weed, moto) -> None:
    def run(**overrides: str) -> subprocess.CompletedProcess:
        environ = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SIGNER_"))},
                   **env_with(**overrides)}
        return subprocess.run([sys.executable, "-m", "signer", "doctor"], cwd=ROOT, env=environ, capture_output=True,
                              text=True, timeout=120)

    good = run(**weed.signer_env("virtual"))
    assert good.returncode == 0 and "[FAIL]" not in good.stdout, good.stdout + good.stderr
    bad = run(SIGNER_ENDPOINT_URL=moto)
    assert bad.returncode == 1 and "[FAIL] tampered signature" in bad.stdout and "fix:" in bad.stdout
    assert SECRET_KEY not in good.stdout + bad.stdout


def test_doctor_endpoint_for_token_callers_only(moto) -> None:
    client = create_app(load_config(env_with(SIGNER_ENDPOINT_URL=moto, SIGNER_ALLOW_ANONYMOUS="true",
                                             SIGNER_USER_HEADER="X-Auth-User"))).test_client()
    answer = client.get("/v1/doctor", headers=bearer(ALICE_TOKEN))
    assert answer.status_code == 200 and answer.json["healthy"] is False
    assert {f["check"] for f in answer.json["findings"] if f["ok"] is False} == {
        "tampered signature", "unsigned x-amz header", "checksum", "post policy size", "cors"}
    anonymous = client.get("/v1/doctor")
    assert anonymous.status_code == 403 and anonymous.json["code"] == "doctor_not_allowed"
    gateway = client.get("/v1/doctor", headers={"X-Auth-User": "carol"})
    assert gateway.status_code == 403
    assert client.get("/v1/doctor", headers=bearer("not-a-token-at-all-000")).status_code == 401
    assert moto_keys(moto) == []


def test_markers_left_under_another_key_prefix_are_named(weed) -> None:
    """SIGNER_KEY_PREFIX changed with uploads still waiting for the finish step under the old one:
    no replica sweeps them, so doctor names the old prefix and the way to finish them (issue #25)."""
    import uuid

    old = f"old{uuid.uuid4().hex[:8]}/"
    client = boto3.client("s3", endpoint_url=weed.path_endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                          aws_secret_access_key=SECRET_KEY)
    client.put_object(Bucket=weed.bucket, Key=f"{old}.signer/pending/0000000001-{uuid.uuid4().hex}", Body=b"{}")
    try:
        finding = by_check(run_doctor(load_config(env_with(**weed.signer_env("path")))))["markers elsewhere"]
        assert finding.ok and repr(old) in finding.message and "run one replica with that SIGNER_KEY_PREFIX" in \
            finding.message
        current = by_check(run_doctor(load_config(env_with(SIGNER_KEY_PREFIX=old, **weed.signer_env("path")))))
        assert repr(old) not in current["markers elsewhere"].message  # its own markers are not "elsewhere"
    finally:
        for item in client.list_objects_v2(Bucket=weed.bucket, Prefix=old).get("Contents", []):
            client.delete_object(Bucket=weed.bucket, Key=item["Key"])
