"""Every rule, and every refusal, in isolation."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from signer.errors import SigningError
from signer.service.errors import Refused
from signer.service.rules import Rules
from signer.service.web.statuses import status_of
from tests.helpers import (
    FORBIDDEN,
    MALFORMED,
    NOW,
    refused,
)

RULES = Rules(
    key_prefix="uploads/", max_size=1000, allowed_content_types=("image/*", "application/pdf"), max_expires=900
)


def test_prefix_per_identity() -> None:
    assert RULES.prefix_for(None) == "uploads/"
    assert RULES.prefix_for("alice") == "uploads/alice/"


@pytest.mark.parametrize("key", ["uploads/alice/a.png", "uploads/alice/sub/dir/ü b+c%.png", "uploads/alice/a//b"])
def test_keys_allowed(key: str) -> None:
    assert RULES.for_caller("alice").check_key(key) == key


@pytest.mark.parametrize(
    "key, error",
    [
        ("uploads/bob/a.png", FORBIDDEN),
        ("uploads/alice/", FORBIDDEN),
        ("uploads/alicex/a.png", FORBIDDEN),
        ("other/alice/a.png", FORBIDDEN),
        ("uploads/alice/../bob/a.png", FORBIDDEN),
        ("uploads/alice/./a.png", FORBIDDEN),
        ("uploads/alice/a\nb", FORBIDDEN),
        ("uploads/alice/a\x00b", FORBIDDEN),
        ("uploads/alice/a\x7fb", FORBIDDEN),
        ("uploads/alice/" + "é" * 510, FORBIDDEN),
        ("", MALFORMED),
        (None, MALFORMED),
        (42, MALFORMED),
        ("uploads/alice/\ud800", MALFORMED),
    ],
)
def test_keys_refused(key, error) -> None:
    with refused(error):
        RULES.for_caller("alice").check_key(key)


def test_anonymous_callers_stay_under_the_shared_prefix() -> None:
    assert RULES.for_caller(None).check_key("uploads/x.png") == "uploads/x.png"
    with refused(FORBIDDEN):
        RULES.for_caller(None).check_key("private/x.png")


def test_new_key_shape() -> None:
    key = RULES.for_caller("alice").new_key("../../etc/Cat Photo.JPEG", NOW)
    assert re.fullmatch(r"uploads/alice/2026/11/23/[0-9a-f-]{36}\.jpeg", key)
    assert RULES.for_caller(None).new_key("noext", NOW).startswith("uploads/2026/11/23/")
    assert "." not in RULES.for_caller(None).new_key("weird.ext!!", NOW).rsplit("/", 1)[1]
    assert RULES.for_caller(None).new_key("a.png", NOW) != RULES.for_caller(None).new_key("a.png", NOW)
    for bad in ("", None, "a\nb.png", "x" * 1025):
        with refused(MALFORMED):
            RULES.for_caller(None).new_key(bad, NOW)


def test_content_types() -> None:
    assert RULES.check_content_type("image/png") == "image/png"
    assert RULES.check_content_type("IMAGE/PNG") == "IMAGE/PNG"
    assert RULES.check_content_type("application/pdf; charset=binary")
    with refused(FORBIDDEN):
        RULES.check_content_type("text/html")
    with refused(FORBIDDEN):
        RULES.check_content_type(None)
    assert RULES.check_content_type(None, required=False) is None
    for bad in ("image", "image/png\r\nX: y", 5, "a" * 300):
        with pytest.raises((SigningError, Refused)):
            RULES.check_content_type(bad)
    assert Rules().check_content_type(None) is None
    assert Rules().check_content_type("text/html") == "text/html"
    with refused(FORBIDDEN):
        RULES.check_content_type_prefix("")
    with refused(FORBIDDEN):
        RULES.check_content_type_prefix("application/")


def test_image_wildcard_does_not_admit_svg() -> None:
    """SVG can carry script: ``image/*`` admits it only when listed by name (or ``*/*``)."""
    for svg in ("image/svg+xml", "IMAGE/SVG+XML", "image/svg+xml; charset=utf-8"):
        with refused(FORBIDDEN):
            RULES.check_content_type(svg)
    # and a starts-with "image/" policy condition would admit it, so that is refused too
    with refused(FORBIDDEN):
        RULES.check_content_type_prefix("image/")
    with refused(FORBIDDEN):
        RULES.check_content_type_prefix("image/s")
    listed = Rules(allowed_content_types=("image/*", "image/svg+xml"))
    assert listed.check_content_type("image/svg+xml") == "image/svg+xml"
    assert listed.check_content_type_prefix("image/") == "image/"
    assert Rules(allowed_content_types=("*/*",)).check_content_type("image/svg+xml")
    assert Rules(allowed_content_types=("image/svg+xml",)).check_content_type("image/svg+xml")
    assert RULES.check_content_type("image/png") == "image/png"


def test_expiry() -> None:
    assert RULES.check_expires(None) == 300
    assert RULES.check_expires(900) == 900
    assert Rules(max_expires=60).check_expires(None) == 60
    with refused(FORBIDDEN):
        RULES.check_expires(901)
    for bad in (0, -5, 1.5, "60", True):
        with refused(MALFORMED):
            RULES.check_expires(bad)
    with pytest.raises(ValueError):
        Rules(max_expires=604801)


def test_sizes() -> None:
    assert RULES.size_range(0, 1000) == (0, 1000)
    with refused(FORBIDDEN):
        RULES.size_range(0, 1001)
    with refused(MALFORMED):
        RULES.size_range(10, 5)
    with refused(MALFORMED):
        RULES.check_size(-1)
    assert Rules().check_size(10**12) == 10**12


def test_methods_and_acls() -> None:
    assert RULES.check_method("put") == "PUT"
    with refused(FORBIDDEN):
        RULES.check_method("DELETE")
    assert RULES.check_acl("private") == "private"
    with refused(FORBIDDEN):
        RULES.check_acl("public-read")


def test_client_dates_must_be_near_server_time() -> None:
    assert RULES.check_amz_date("20261123T081000Z", NOW)
    with refused(FORBIDDEN):
        RULES.check_amz_date("20261123T081501Z", NOW)
    with refused(FORBIDDEN):
        RULES.check_amz_date("20200101T000000Z", NOW)
    for bad in ("2026-11-23", "20261399T000000Z", None):
        with refused(MALFORMED):
            RULES.check_amz_date(bad, NOW)


def test_the_plan_caps_expiry_at_the_credentials_lifetime() -> None:
    """Temporary credentials: a URL never outlives them (capped, counted from X-Amz-Date's whole second)."""
    from datetime import timedelta

    caller = RULES.for_caller("alice")
    now = NOW.replace(microsecond=700000)
    get = {"method": "GET", "key": "uploads/alice/a.png", "now": now}
    assert caller.plan_presign(**get, expires_in=900).expires_in == 900
    assert caller.plan_presign(**get, expires_in=900, valid_until=NOW + timedelta(hours=1)).expires_in == 900
    assert caller.plan_presign(**get, expires_in=900, valid_until=NOW + timedelta(seconds=120.9)).expires_in == 120
    assert caller.plan_presign(**get, valid_until=NOW + timedelta(seconds=60)).expires_in == 60  # the default, capped
    post = caller.plan_post_policy(key="uploads/alice/a.png", content_type="image/png", expires_in=600, now=now,
                                   valid_until=NOW + timedelta(seconds=30))
    assert post.expires_in == 30
    with pytest.raises(Refused) as caught:
        caller.plan_presign(**get, valid_until=NOW + timedelta(seconds=0.9))
    assert caught.value.code == "credentials_unavailable" and status_of(caught.value.code) == 503
    with refused(403):  # the rules' own maximum still refuses, whatever the credentials allow
        caller.plan_presign(**get, expires_in=901, valid_until=NOW + timedelta(hours=1))

# --- multipart plans (Companion protocol, signRequest mode) ---------------------------------

def test_part_numbers_are_bounded_by_the_size_limit_over_the_minimum_part_size() -> None:
    from signer.service.rules import MIN_PART_SIZE

    assert Rules().for_caller("alice").max_part_number == 10000
    assert Rules(max_size=1000).for_caller("alice").max_part_number == 1
    assert Rules(max_size=12 * 1024 * 1024).for_caller("alice").max_part_number == 3  # 5 + 5 + 2 MiB
    assert Rules(max_size=10**15).for_caller("alice").max_part_number == 10000
    caller = Rules(max_size=2 * MIN_PART_SIZE).for_caller("alice")
    assert [caller.check_part_number(n) for n in (1, "2", "3")] == [1, 2, 3]
    for wrong in (0, 4, "4", -1, True, 1.0, "\u0661", "1 ", "", None):
        with pytest.raises(Refused):
            caller.check_part_number(wrong)


def test_sign_request_plans_each_step() -> None:
    caller = Rules(max_size=100, allowed_content_types=("image/*",)).for_caller("alice")
    now = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    put = caller.plan_sign_request(method="PUT", key="abc-cat.PNG", content_type="image/png", now=now)
    assert put.operation == "post_object" and put.plan.key.startswith("uploads/alice/2026/11/23/")
    assert put.plan.key.endswith(".png") and put.plan.length_range == (0, 100)
    create = caller.plan_sign_request(method="POST", key="uploads/alice/x.png", now=now)
    assert (create.operation, create.plan.key, create.plan.query) == ("create", "uploads/alice/x.png", (("uploads", ""),))
    part = caller.plan_sign_request(method="PUT", key="uploads/alice/x.png", upload_id="u1", part_number=1, now=now)
    assert part.plan.query == (("partNumber", "1"), ("uploadId", "u1"))
    for method, operation in (("GET", "list_parts"), ("POST", "complete")):
        step = caller.plan_sign_request(method=method, key="uploads/alice/x.png", upload_id="u1", now=now)
        assert (step.operation, step.plan.method, step.upload_id) == (operation, method, "u1")
    # aborting one's own upload deletes no object: the default SIGNER_ALLOWED_METHODS (no DELETE) allows it
    step = caller.plan_sign_request(method="DELETE", key="uploads/alice/x.png", upload_id="u1", now=now)
    assert (step.operation, step.plan.method, step.plan.query) == ("abort", "DELETE", (("uploadId", "u1"),))
    with refused(403, match="must be one of GET, HEAD, PUT"):  # an object DELETE still needs DELETE listed
        caller.plan_sign_request(method="DELETE", key="uploads/alice/x.png", now=now)
    read_only = Rules(max_size=100, allowed_methods=frozenset({"GET", "HEAD"})).for_caller("alice")
    with refused(403, match="no PUT"):  # no uploads at all: no abort either
        read_only.plan_sign_request(method="DELETE", key="uploads/alice/x.png", upload_id="u1", now=now)
    with pytest.raises(Refused):
        caller.plan_sign_request(method="PUT", key="uploads/alice/x.png", upload_id="u1", part_number=2, now=now)
    with pytest.raises(Refused):
        caller.plan_sign_request(method="POST", key="uploads/bob/x.png", upload_id="u1", now=now)


def test_uploads_need_put_everywhere() -> None:
    """Without PUT in SIGNER_ALLOWED_METHODS no upload is signed in any form: presigned PUT,
    POST policy, multipart create, signRequest."""
    caller = Rules(allowed_methods=frozenset({"GET", "HEAD"})).for_caller("alice")
    attempts = [
        lambda: caller.plan_presign(method="PUT", key="uploads/alice/x.png", now=NOW),
        lambda: caller.plan_post_policy(key="uploads/alice/x.png", now=NOW),
        lambda: caller.plan_multipart_create(filename="x.png", content_type="image/png", now=NOW),
        lambda: caller.plan_sign_request(method="PUT", key="x.png", now=NOW),
        lambda: caller.plan_sign_request(method="POST", key="uploads/alice/x.png", upload_id="u1", now=NOW),
    ]
    for attempt in attempts:
        with refused(403):
            attempt()


def test_completed_size_is_the_sum_of_the_parts() -> None:
    caller = Rules(max_size=10).for_caller(None)
    assert caller.check_completed_size([5, 5]) == 10
    with pytest.raises(Refused) as refused:
        caller.check_completed_size([5, 6])
    assert refused.value.code == "too_large"
