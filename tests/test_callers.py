"""Who is calling (signer/service/callers.py), without HTTP: bearer tokens, a trusted gateway's
user header, anonymous visitors and their signed cookies. tests/test_app.py checks the same
through the API."""

from __future__ import annotations

import pytest
from itsdangerous import Signer

from signer.service.callers import Caller, VisitorCookies, identify
from signer.service.config import load_config
from signer.service.errors import Refused
from tests.conftest import ALICE_TOKEN, BOB_TOKEN, env_with

TOKENS = load_config(env_with())
GATEWAY = load_config(env_with(SIGNER_USER_HEADER="X-Auth-User", SIGNER_TRUSTED_PROXIES="10.0.0.0/8"))
ANONYMOUS = load_config(env_with(SIGNER_API_TOKENS=None, SIGNER_ALLOW_ANONYMOUS="true", SIGNER_COOKIE_SECRET="c" * 32))


def refusal(config, headers: dict[str, str], peer: str | None = "127.0.0.1") -> str:
    with pytest.raises(Refused) as refused:
        identify(config, headers, peer)
    assert refused.value.code == "unauthorized"
    return refused.value.message


@pytest.mark.parametrize("authorization", [f"Bearer {ALICE_TOKEN}", f"bearer {ALICE_TOKEN}", f"BEARER  {ALICE_TOKEN} "])
def test_a_bearer_token_names_its_caller(authorization: str) -> None:
    assert identify(TOKENS, {"Authorization": authorization}, "127.0.0.1") == Caller("alice", "token", "alice")
    assert identify(TOKENS, {"Authorization": f"Bearer {BOB_TOKEN}"}, None) == Caller("bob", "token", "bob")


@pytest.mark.parametrize(("authorization", "words"), [
    (None, "authentication required"), ("", "authentication required"),
    ("Bearer", "must be 'Bearer <token>'"), ("Bearer   ", "must be 'Bearer <token>'"),
    (f"Basic {ALICE_TOKEN}", "must be 'Bearer <token>'"), ("Bearer nope", "not valid"),
    (f"Bearer {ALICE_TOKEN[:-1]}", "not valid"), (f"Bearer {ALICE_TOKEN}x", "not valid"),
    ("Bearer \udcff", "not valid"),
])
def test_anything_but_a_configured_token_is_refused(authorization: str | None, words: str) -> None:
    message = refusal(TOKENS, {} if authorization is None else {"Authorization": authorization})
    assert words in message and ALICE_TOKEN not in message


def test_the_gateway_user_counts_only_from_a_trusted_peer_and_wins_there() -> None:
    headers = {"X-Auth-User": "carol", "Authorization": f"Bearer {ALICE_TOKEN}"}
    assert identify(GATEWAY, headers, "10.1.2.3") == Caller("carol", "gateway", "user/carol")
    assert identify(GATEWAY, headers, "192.0.2.1") == Caller("alice", "token", "alice")  # ignored, not trusted
    assert identify(GATEWAY, headers, None) == Caller("alice", "token", "alice")
    assert "authentication required" in refusal(GATEWAY, {"X-Auth-User": "carol"}, "192.0.2.1")
    assert identify(TOKENS, headers, "10.1.2.3") == Caller("alice", "token", "alice")  # no user header configured


@pytest.mark.parametrize("user", ["", "a b", "x" * 65, "../alice", "anonymous", "Anonymous", "é"])
def test_a_gateway_user_that_cannot_be_a_folder_is_refused(user: str) -> None:
    assert "X-Auth-User must be" in refusal(GATEWAY, {"X-Auth-User": user}, "10.1.2.3")


def test_a_visitor_keeps_its_folder_by_its_cookie_and_cannot_choose_another() -> None:
    first = identify(ANONYMOUS, {}, "127.0.0.1")
    assert first.via == "anonymous" and first.folder.startswith("anonymous/") and first.new_cookie
    again = identify(ANONYMOUS, {}, "127.0.0.1", first.new_cookie)
    assert again == Caller(first.identity, "anonymous", first.folder, None)
    visitor = first.folder.removeprefix("anonymous/")
    forged = Signer(b"another secret", salt="sigv4-signer anonymous visitor").sign(visitor.encode()).decode()
    for cookie in (forged, first.new_cookie + "x", visitor, "", "x" * 300):
        stranger = identify(ANONYMOUS, {}, "127.0.0.1", cookie)
        assert stranger.folder != first.folder and stranger.new_cookie
    assert "not valid" in refusal(ANONYMOUS, {"Authorization": "Bearer nope"})  # a token sent is checked, not ignored


def test_visitor_cookies_read_only_what_they_issued() -> None:
    cookies = VisitorCookies(b"k" * 32)
    visitor, value = cookies.issue()
    assert cookies.read(value) == visitor and len(visitor) == 22
    assert VisitorCookies(b"other" * 8).read(value) is None
    assert cookies.read(None) is None and cookies.read("é" + value) is None
    signer = Signer(b"k" * 32, salt="sigv4-signer anonymous visitor")
    assert cookies.read(signer.sign(b"not-22-letters").decode()) is None  # signed, but not an id we make
