"""Publish without a store: the part plan of a copy over 5 GiB, the public names, the settings
(SIGNER_PUBLISH_*), and how a copy's answer is read (200 with an <Error> body is a failure).
The copies themselves run against SeaweedFS in tests/e2e/test_publish.py."""

from __future__ import annotations

import http.client
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signer import Bucket
from signer.service.config import load_config
from signer.service.errors import ConfigError, Refused
from signer.service.publish import (
    PublishSettings,
    extension_for,
    public_key,
    public_slug,
    required,
    template_problem,
)
from signer.service.rules import Rules
from signer.service.storage import Answer, ObjectInfo, SourceChanged, StorageError, _copy_result, copy_part_ranges
from signer.service.web.statuses import status_of
from tests.conftest import env_with

KiB, MiB, GiB, TiB = 1024, 1024**2, 1024**3, 1024**4
SOURCE = Bucket("uploads-bucket")
SECRET = b"k" * 32


# --- the part plan of a multipart copy ---------------------------------------------------

def check_plan(size: int, ranges: list[tuple[int, int]]) -> None:
    """What S3 requires of UploadPartCopy ranges (API_UploadPartCopy, multipart limits): they
    cover every byte once, in order; at most 10000 parts; each at most 5 GiB; all but the last at
    least 5 MiB."""
    assert ranges[0][0] == 0 and ranges[-1][1] == size - 1
    assert all(first <= last for first, last in ranges)
    assert all(ranges[i][1] + 1 == ranges[i + 1][0] for i in range(len(ranges) - 1))
    assert sum(last - first + 1 for first, last in ranges) == size
    assert len(ranges) <= 10000
    assert all(last - first + 1 <= 5 * GiB for first, last in ranges)
    assert all(last - first + 1 >= 5 * MiB for first, last in ranges[:-1])


def test_exactly_5_gib_is_one_copy_object_not_a_multipart_copy() -> None:
    with pytest.raises(ValueError):
        copy_part_ranges(5 * GiB)


def test_5_gib_and_one_byte_is_a_multipart_copy_whose_last_part_is_one_byte() -> None:
    ranges = copy_part_ranges(5 * GiB + 1)
    check_plan(5 * GiB + 1, ranges)
    assert len(ranges) == 11 and ranges[-1] == (5 * GiB, 5 * GiB)


def test_the_largest_object_fits_in_10000_parts() -> None:
    ranges = copy_part_ranges(5 * TiB)
    check_plan(5 * TiB, ranges)
    assert 9000 < len(ranges) <= 10000


def test_above_the_largest_object_is_refused() -> None:
    with pytest.raises(ValueError):
        copy_part_ranges(5 * TiB + 1)


@given(st.integers(min_value=5 * GiB + 1, max_value=5 * TiB),
       st.sampled_from([5 * MiB, 64 * MiB, 512 * MiB, 5 * GiB]))
def test_every_size_gets_a_plan_s3_accepts(size: int, part_size: int) -> None:
    check_plan(size, copy_part_ranges(size, part_size))


# --- a copy's answer -------------------------------------------------------------------

def answer(status: int, body: bytes) -> Answer:
    return Answer(status, http.client.HTTPMessage(), body)


def test_a_200_with_an_error_body_is_a_failure() -> None:
    """API_CopyObject: "If the error occurs during the copy operation, the error response is
    embedded in the 200 OK response"."""
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code><Message>x</Message></Error>'
    with pytest.raises(StorageError, match="InternalError"):
        _copy_result(answer(200, body), "copy object", "CopyObjectResult")


def test_a_200_without_a_result_and_etag_is_a_failure() -> None:
    for body in (b"<CopyObjectResult></CopyObjectResult>", b"<Other><ETag>x</ETag></Other>", b"   "):
        with pytest.raises(StorageError):
            _copy_result(answer(200, body), "copy object", "CopyObjectResult")


def test_a_result_with_its_etag_is_a_success_and_412_means_the_source_changed() -> None:
    ok = b'<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ETag>"abc"</ETag></CopyObjectResult>'
    assert _copy_result(answer(200, ok), "copy object", "CopyObjectResult") == '"abc"'
    with pytest.raises(SourceChanged):
        _copy_result(answer(412, b"<Error><Code>PreconditionFailed</Code></Error>"), "copy object", "CopyObjectResult")
    assert status_of(SourceChanged().code) == 409


# --- public names ------------------------------------------------------------------------

def test_the_slug_names_one_upload_version_and_reveals_nothing() -> None:
    first = public_slug(SECRET, SOURCE, "uploads/alice/cat.png", '"e1"')
    assert re.fullmatch(r"[a-z2-7]{26}", first)
    assert public_slug(SECRET, SOURCE, "uploads/alice/cat.png", '"e1"') == first  # a retry: the same name
    others = {public_slug(SECRET, SOURCE, "uploads/alice/cat.png", '"e2"'),
              public_slug(SECRET, SOURCE, "uploads/alice/dog.png", '"e1"'),
              public_slug(b"j" * 32, SOURCE, "uploads/alice/cat.png", '"e1"'),
              public_slug(SECRET, Bucket("other-bucket"), "uploads/alice/cat.png", '"e1"')}
    assert first not in others and len(others) == 4
    assert "cat" not in first


def test_the_file_name_only_makes_the_slug_readable() -> None:
    code = public_slug(SECRET, SOURCE, "uploads/alice/x", None)
    assert public_slug(SECRET, SOURCE, "uploads/alice/x", None, "Holiday Photo (1).JPG") == f"holiday-photo-1-{code}"
    assert public_slug(SECRET, SOURCE, "uploads/alice/x", None, "../../etc/passwd") == f"passwd-{code}"
    assert public_slug(SECRET, SOURCE, "uploads/alice/x", None, "ünïcødé.png") == f"n-c-d-{code}"
    assert public_slug(SECRET, SOURCE, "uploads/alice/x", None, "....") == code
    assert public_slug(SECRET, SOURCE, "uploads/alice/x", None, "a" * 100 + ".png") == "a" * 40 + f"-{code}"
    with pytest.raises(Refused):
        public_slug(SECRET, SOURCE, "uploads/alice/x", None, "")


def test_the_extension_comes_from_the_checked_type_and_never_makes_a_page() -> None:
    assert extension_for("image/jpeg") == ".jpg" and extension_for("IMAGE/PNG; x=y") == ".png"
    for scriptable in ("text/html", "image/svg+xml", "application/xhtml+xml", "text/xml", None, "weird/type"):
        assert extension_for(scriptable) == ""


def test_the_public_key_follows_the_template_dated_by_the_upload() -> None:
    settings = PublishSettings(Bucket("public-bucket"), SECRET)
    caller = Rules().for_caller("user/alice")
    uploaded = datetime(2025, 3, 4, 23, 59, tzinfo=UTC)
    info = ObjectInfo(10, "image/png", '"e1"', uploaded)
    key = public_key(settings, caller, SOURCE, "uploads/user/alice/a.png", info, None, datetime(2026, 1, 1, tzinfo=UTC))
    slug = public_slug(SECRET, SOURCE, "uploads/user/alice/a.png", '"e1"')
    assert key == f"public/user/alice/2025/03/04/{slug}.png"
    flat = PublishSettings(Bucket("public-bucket"), SECRET, prefix="", template="{slug}{ext}")
    assert public_key(flat, caller, SOURCE, "uploads/user/alice/a.png", info, None, uploaded) == f"{slug}.png"


def test_templates_are_checked() -> None:
    assert template_problem("{identity}/{yyyy}/{mm}/{dd}/{slug}{ext}") is None
    assert "must contain {slug}" in (template_problem("{identity}/{yyyy}/x{ext}") or "")
    for bad in ("{slug}/{user}", "{slug:>10}", "{slug!r}", "{slug", "/{slug}", "{slug}//x", "../{slug}"):
        assert template_problem(bad), bad


def test_not_configured_is_a_clear_refusal() -> None:
    with pytest.raises(Refused) as caught:
        required(None)
    assert caught.value.code == "publish_not_configured" and status_of(caught.value.code) == 403
    assert "SIGNER_PUBLISH_BUCKET" in caught.value.message


# --- SIGNER_PUBLISH_* ----------------------------------------------------------------------

def test_settings_from_the_environment() -> None:
    assert load_config(env_with()).publish is None
    cfg = load_config(env_with(SIGNER_PUBLISH_BUCKET="public-bucket", SIGNER_PUBLISH_URL="https://cdn.example/a",
                               SIGNER_PUBLISH_DELETE_SOURCE="true", SIGNER_PUBLISH_ON_UPLOAD="yes"))
    assert cfg.publish is not None
    assert (cfg.publish.bucket.name, cfg.publish.prefix, cfg.publish.public_url) == ("public-bucket", "public/",
                                                                                     "https://cdn.example/a/")
    assert cfg.publish.delete_source and cfg.publish.on_upload and cfg.publish.secret == cfg.cookie_secret
    assert cfg.publish.url_of("public/a b.png") == "https://cdn.example/a/public/a%20b.png"
    same = load_config(env_with(SIGNER_PUBLISH_BUCKET="uploads-bucket")).publish
    assert same is not None and same.url_of("public/x.png") == "https://uploads-bucket.s3.amazonaws.com/public/x.png"


@pytest.mark.parametrize(("overrides", "message"), [
    ({"SIGNER_PUBLISH_PREFIX": "public/"}, "SIGNER_PUBLISH_PREFIX needs SIGNER_PUBLISH_BUCKET"),
    ({"SIGNER_PUBLISH_ON_UPLOAD": "true"}, "SIGNER_PUBLISH_ON_UPLOAD needs SIGNER_PUBLISH_BUCKET"),
    ({"SIGNER_PUBLISH_BUCKET": "Bad_Bucket"}, "SIGNER_PUBLISH_BUCKET"),
    ({"SIGNER_PUBLISH_BUCKET": "uploads-bucket", "SIGNER_PUBLISH_PREFIX": "uploads/public/"}, "overlaps"),
    ({"SIGNER_PUBLISH_BUCKET": "uploads-bucket", "SIGNER_PUBLISH_PREFIX": ""}, "overlaps"),
    ({"SIGNER_PUBLISH_BUCKET": "uploads-bucket", "SIGNER_KEY_PREFIX": "", "SIGNER_PUBLISH_PREFIX": "p/"}, "overlaps"),
    ({"SIGNER_PUBLISH_BUCKET": "p-bucket", "SIGNER_PUBLISH_PREFIX": "public"}, "must end with '/'"),
    ({"SIGNER_PUBLISH_BUCKET": "p-bucket", "SIGNER_PUBLISH_TEMPLATE": "{identity}/x"}, "SIGNER_PUBLISH_TEMPLATE"),
    ({"SIGNER_PUBLISH_BUCKET": "p-bucket", "SIGNER_PUBLISH_URL": "ftp://cdn.example/"}, "SIGNER_PUBLISH_URL"),
    ({"SIGNER_PUBLISH_BUCKET": "p-bucket", "SIGNER_PUBLISH_URL": "https://cdn.example/?a=b"}, "SIGNER_PUBLISH_URL"),
    ({"SIGNER_PUBLISH_BUCKET": "p-bucket", "SIGNER_PUBLISH_DELETE_SOURCE": "maybe"}, "SIGNER_PUBLISH_DELETE_SOURCE"),
])
def test_bad_settings_stop_start_up_naming_the_variable(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(env_with(**overrides))


def test_rotating_credentials_need_a_stable_key_to_name_public_objects() -> None:
    env = env_with(AWS_ACCESS_KEY_ID=None, AWS_SECRET_ACCESS_KEY=None, AWS_CONTAINER_CREDENTIALS_FULL_URI="http://127.0.0.1:9/creds",
                   SIGNER_PUBLISH_BUCKET="p-bucket")
    with pytest.raises(ConfigError, match="SIGNER_COOKIE_SECRET is required with SIGNER_PUBLISH_BUCKET"):
        load_config(env)
    assert load_config({**env, "SIGNER_COOKIE_SECRET": "s" * 32}).publish is not None


def test_the_endpoint_says_when_publishing_is_not_set_up(client) -> None:
    """Checked before any S3 call: the default configuration has no SIGNER_PUBLISH_BUCKET."""
    from tests.conftest import ALICE_TOKEN

    answer = client.post("/v1/uploads/publish", json={"key": "uploads/alice/a.png"},
                         headers={"Authorization": f"Bearer {ALICE_TOKEN}"})
    assert answer.status_code == 403 and answer.json["code"] == "publish_not_configured", answer.json
    assert "SIGNER_PUBLISH_BUCKET" in answer.json["error"]
    assert client.post("/v1/uploads/publish", json={"key": "uploads/alice/a.png"}).status_code == 401
