"""signer/environment.py: one parser per kind of value, each refusal naming the variable."""

from __future__ import annotations

import re

import pytest

from signer.environment import choice, flag, integer, items, optional_integer, text
from signer.errors import InvalidSetting
from signer.service.config import ConfigError, load_config
from tests.conftest import env_with


@pytest.mark.parametrize(("raw", "expected"), [("", False), (" 0 ", False), ("False", False), ("no", False),
                                                ("off", False), ("1", True), ("TRUE", True), ("yes", True),
                                                ("On", True)])
def test_flags_read_the_usual_spellings(raw: str, expected: bool) -> None:
    assert flag({"X_FLAG": raw}, "X_FLAG") is expected
    assert flag({}, "X_FLAG") is False


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "ja"])
def test_a_flag_typo_is_refused_not_read_as_false(raw: str) -> None:
    with pytest.raises(InvalidSetting, match="^X_FLAG must be true or false"):
        flag({"X_FLAG": raw}, "X_FLAG")


def test_integers_are_ascii_whole_numbers_within_bounds() -> None:
    assert integer({}, "N", 7, 1, 10) == 7
    assert integer({"N": " 10 "}, "N", 7, 1, 10) == 10
    assert optional_integer({}, "N", 1, 10) is None
    assert optional_integer({"N": "3"}, "N", 1, 10) == 3
    for raw in ("1.5", "ten", "１", "1_0", "+5", "0x1"):  # int() takes some of these; a setting does not
        with pytest.raises(InvalidSetting, match=re.escape(f"N must be a whole number, got {raw!r}")):
            integer({"N": raw}, "N", 7, 1, 10)
    for raw, value in (("0", 0), ("11", 11), ("-3", -3)):
        with pytest.raises(InvalidSetting, match=f"^N must be between 1 and 10, got {value}$"):
            integer({"N": raw}, "N", 7, 1, 10)


def test_choices_texts_and_lists() -> None:
    assert choice({}, "MODE", ("deny", "allow"), "deny") == "deny"
    assert choice({"MODE": " ALLOW "}, "MODE", ("deny", "allow"), "deny") == "allow"
    with pytest.raises(InvalidSetting, match="^MODE must be 'deny' or 'allow'$"):
        choice({"MODE": "sometimes"}, "MODE", ("deny", "allow"), "deny")
    assert text({"T": "  "}, "T") is None and text({"T": " a b "}, "T") == "a b"
    assert items({"L": " a, ,b ,"}, "L") == ["a", "b"] and items({}, "L") == []


def test_the_service_refuses_to_start_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="^SIGNER_DEMO_PAGE must be true or false"):
        load_config(env_with(SIGNER_DEMO_PAGE="sure"))
    with pytest.raises(ConfigError, match="^SIGNER_MAX_SIZE must be a whole number"):
        load_config(env_with(SIGNER_MAX_SIZE="10MB"))


def test_the_credential_chain_uses_the_same_flag_parser() -> None:
    """A typo in AWS_EC2_METADATA_DISABLED no longer leaves instance metadata on silently."""
    environ = {"SIGNER_BUCKET": "uploads", "SIGNER_API_TOKENS": "alice:" + "a" * 20,
               "AWS_EC2_METADATA_DISABLED": "ture"}
    with pytest.raises(ConfigError, match="^AWS_EC2_METADATA_DISABLED must be true or false"):
        load_config(environ)
