"""The service's own folder (``<SIGNER_KEY_PREFIX>.signer/``, where the finish step keeps its
markers) is refused by every rule path: key, key prefix, POST policies, Uppy's signRequest and
Companion, Fine Uploader's policies and multipart strings, and the CLI; in any letter case.
Only a caller without a folder (the CLI's default) could otherwise reach it: HTTP callers all
have one, and no identity may start with '.'."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from signer import Bucket, Credentials
from signer.service.companion import Companion
from signer.service.errors import Refused
from signer.service.fineuploader import FineUploader
from signer.service.rules import IDENTITY, Rules
from tests import fineuploader_samples as fu
from tests.conftest import env_with
from tests.helpers import ACCESS_KEY, NOW, SECRET_KEY
from tests.servers import ROOT

RULES = Rules(allowed_methods=frozenset({"GET", "PUT", "HEAD", "DELETE"}))
NOBODY = RULES.for_caller(None)  # folder-less: may write anywhere under uploads/
RESERVED = ["uploads/.signer/pending/0000000001-" + "0" * 32, "uploads/.signer/x", "uploads/.SIGNER/pending/a",
            "uploads/.Signer/a.png"]
CREDS = Credentials(ACCESS_KEY, SECRET_KEY)
BUCKET = Bucket("uploads-bucket", endpoint_url="http://s3.localhost:9000", addressing_style="virtual")


@contextmanager
def refused_key() -> Iterator[None]:
    with pytest.raises(Refused) as caught:
        yield
    assert caught.value.code == "key_not_allowed", caught.value.message


@pytest.mark.parametrize("key", RESERVED)
def test_keys_in_the_service_folder_are_refused(key: str) -> None:
    with refused_key():
        NOBODY.check_key(key)
    for method in ("PUT", "GET", "HEAD", "DELETE"):
        with refused_key():
            NOBODY.plan_presign(method=method, key=key, now=NOW)
    with refused_key():
        NOBODY.plan_post_policy(key=key, now=NOW)


def test_key_prefixes_that_would_admit_the_service_folder_are_refused() -> None:
    for prefix in ("uploads/", "uploads/.", "uploads/.sig", "uploads/.signer/", "uploads/.SIGNER/pending/"):
        with refused_key():
            NOBODY.check_key_prefix(prefix)
    assert NOBODY.check_key_prefix("uploads/photos/") == "uploads/photos/"
    assert NOBODY.check_key("uploads/.signerish/a.png") == "uploads/.signerish/a.png"  # another folder


@pytest.mark.parametrize("key", RESERVED)
def test_sign_request_refuses_the_service_folder_for_every_step(key: str) -> None:
    for method in ("GET", "HEAD", "DELETE"):
        with refused_key():
            NOBODY.plan_sign_request(method=method, key=key, now=NOW)
    for method, part in (("PUT", 1), ("GET", None), ("POST", None), ("DELETE", None)):
        with refused_key():
            NOBODY.plan_sign_request(method=method, key=key, upload_id="u1", part_number=part, now=NOW)
    # a simple PUT or a create is given a key of ours instead, never the one asked for
    for method in ("PUT", "POST"):
        step = NOBODY.plan_sign_request(method=method, key="x.png", now=NOW)
        assert not RULES.is_reserved_key(step.plan.key)


@pytest.mark.parametrize("key", RESERVED)
def test_companion_refuses_the_service_folder(key: str) -> None:
    companion = Companion(CREDS, BUCKET, NOBODY, NOW)
    with refused_key():
        companion.sign_part("u1", "1", key)
    with refused_key():
        companion.sign_batch("u1", "1,2", key)
    with refused_key():
        companion.complete("u1", key, {"parts": [{"PartNumber": 1, "ETag": "e"}]})
    with refused_key():
        companion.abort("u1", key)
    with refused_key():
        companion.list_parts("u1", key)


@pytest.mark.parametrize("key", RESERVED)
def test_fine_uploader_refuses_the_service_folder(key: str) -> None:
    adapter = FineUploader(CREDS, BUCKET, NOBODY, NOW)
    with refused_key():
        adapter.sign_policy(fu.policy(NOW, access_key=ACCESS_KEY, bucket=BUCKET.name, key=key))
    for kind in ("initiate", "part", "complete", "abort"):
        with refused_key():
            adapter.sign_headers(fu.headers_string(kind, NOW, host=BUCKET.host, key=key))


def test_no_identity_can_be_the_service_folder() -> None:
    assert not IDENTITY.fullmatch(".signer")
    assert Rules(key_prefix="").for_caller(None).rules.is_reserved_key(".signer/pending/x")


def test_the_cli_refuses_the_service_folder() -> None:
    environ = {**env_with(), "PATH": "/usr/bin:/bin"}
    for key in ("uploads/.signer/pending/x", "uploads/.SIGNER/x"):
        done = subprocess.run([sys.executable, "-m", "signer", "presign", "GET", key], cwd=ROOT, env=environ,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "the service's own folder" in done.stderr, done.stderr
    ok = subprocess.run([sys.executable, "-m", "signer", "presign", "GET", "uploads/a.png"], cwd=ROOT, env=environ,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
