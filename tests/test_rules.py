"""Every rule, and every refusal, in isolation."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from signer.errors import InvalidInput, RuleViolation, SigningError
from signer.rules import Rules

NOW = datetime(2026, 11, 23, 8, 0, 0, tzinfo=timezone.utc)
RULES = Rules(
    key_prefix="uploads/", max_size=1000, allowed_content_types=("image/*", "application/pdf"), max_expires=900
)


def test_prefix_per_identity() -> None:
    assert RULES.prefix_for(None) == "uploads/"
    assert RULES.prefix_for("alice") == "uploads/alice/"


@pytest.mark.parametrize("key", ["uploads/alice/a.png", "uploads/alice/sub/dir/ü b+c%.png", "uploads/alice/a//b"])
def test_keys_allowed(key: str) -> None:
    assert RULES.check_key(key, "alice") == key


@pytest.mark.parametrize(
    "key, error",
    [
        ("uploads/bob/a.png", RuleViolation),
        ("uploads/alice/", RuleViolation),
        ("uploads/alicex/a.png", RuleViolation),
        ("other/alice/a.png", RuleViolation),
        ("uploads/alice/../bob/a.png", RuleViolation),
        ("uploads/alice/./a.png", RuleViolation),
        ("uploads/alice/a\nb", RuleViolation),
        ("uploads/alice/a\x00b", RuleViolation),
        ("uploads/alice/a\x7fb", RuleViolation),
        ("uploads/alice/" + "é" * 510, RuleViolation),
        ("", InvalidInput),
        (None, InvalidInput),
        (42, InvalidInput),
        ("uploads/alice/\ud800", InvalidInput),
    ],
)
def test_keys_refused(key, error) -> None:
    with pytest.raises(error):
        RULES.check_key(key, "alice")


def test_anonymous_callers_stay_under_the_shared_prefix() -> None:
    assert RULES.check_key("uploads/x.png", None) == "uploads/x.png"
    with pytest.raises(RuleViolation):
        RULES.check_key("private/x.png", None)


def test_new_key_shape() -> None:
    key = RULES.new_key("../../etc/Cat Photo.JPEG", "alice", NOW)
    assert re.fullmatch(r"uploads/alice/2026/11/23/[0-9a-f-]{36}\.jpeg", key)
    assert RULES.new_key("noext", None, NOW).startswith("uploads/2026/11/23/")
    assert "." not in RULES.new_key("weird.ext!!", None, NOW).rsplit("/", 1)[1]
    assert RULES.new_key("a.png", None, NOW) != RULES.new_key("a.png", None, NOW)
    for bad in ("", None, "a\nb.png", "x" * 1025):
        with pytest.raises(InvalidInput):
            RULES.new_key(bad, None, NOW)


def test_content_types() -> None:
    assert RULES.check_content_type("image/png") == "image/png"
    assert RULES.check_content_type("IMAGE/PNG") == "IMAGE/PNG"
    assert RULES.check_content_type("application/pdf; charset=binary")
    with pytest.raises(RuleViolation):
        RULES.check_content_type("text/html")
    with pytest.raises(RuleViolation):
        RULES.check_content_type(None)
    assert RULES.check_content_type(None, required=False) is None
    for bad in ("image", "image/png\r\nX: y", 5, "a" * 300):
        with pytest.raises(SigningError):
            RULES.check_content_type(bad)
    assert Rules().check_content_type(None) is None
    assert Rules().check_content_type("text/html") == "text/html"
    assert RULES.check_content_type_prefix("image/") == "image/"
    with pytest.raises(RuleViolation):
        RULES.check_content_type_prefix("")
    with pytest.raises(RuleViolation):
        RULES.check_content_type_prefix("application/")


def test_expiry() -> None:
    assert RULES.check_expires(None) == 300
    assert RULES.check_expires(900) == 900
    assert Rules(max_expires=60).check_expires(None) == 60
    with pytest.raises(RuleViolation):
        RULES.check_expires(901)
    for bad in (0, -5, 1.5, "60", True):
        with pytest.raises(InvalidInput):
            RULES.check_expires(bad)
    with pytest.raises(InvalidInput):
        Rules(max_expires=604801)


def test_sizes() -> None:
    assert RULES.size_range(0, 1000) == (0, 1000)
    with pytest.raises(RuleViolation):
        RULES.size_range(0, 1001)
    with pytest.raises(InvalidInput):
        RULES.size_range(10, 5)
    with pytest.raises(InvalidInput):
        RULES.check_size(-1)
    assert Rules().check_size(10**12) == 10**12


def test_methods_and_acls() -> None:
    assert RULES.check_method("put") == "PUT"
    with pytest.raises(RuleViolation):
        RULES.check_method("DELETE")
    assert RULES.check_acl("private") == "private"
    with pytest.raises(RuleViolation):
        RULES.check_acl("public-read")


def test_client_dates_must_be_near_server_time() -> None:
    assert RULES.check_amz_date("20261123T081000Z", NOW)
    with pytest.raises(RuleViolation):
        RULES.check_amz_date("20261123T081501Z", NOW)
    with pytest.raises(RuleViolation):
        RULES.check_amz_date("20200101T000000Z", NOW)
    for bad in ("2026-11-23", "20261399T000000Z", None):
        with pytest.raises(InvalidInput):
            RULES.check_amz_date(bad, NOW)
