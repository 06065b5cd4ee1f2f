"""Every rule, and every refusal, in isolation."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from signer.errors import SigningError
from signer.service.errors import Refused
from tests.helpers import FORBIDDEN, MALFORMED, refused
from signer.service.rules import Rules

NOW = datetime(2026, 11, 23, 8, 0, 0, tzinfo=timezone.utc)
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
