"""The newer AWS signing suite (aws-c-auth's copy, vendored in tests/vectors/aws-c-auth-v4/):
every case in header mode AND in presigned-query mode, normalised and unnormalised paths.
Expected canonical requests, strings to sign and signatures are the published files."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from signer import Credentials, presign_request, sign_request
from tests.test_sigv4 import parse_raw_request

SUITE = Path(__file__).parent / "vectors" / "aws-c-auth-v4"
CASES = sorted(path for path in SUITE.iterdir() if (path / "context.json").is_file())


def test_the_whole_suite_is_vendored() -> None:
    assert len(CASES) == 38


def load(case: Path) -> tuple[dict, str, str, list[tuple[str, str]], bytes]:
    context = json.loads((case / "context.json").read_text(encoding="utf-8"))
    method, target, headers, body = parse_raw_request((case / "request.txt").read_text(encoding="utf-8"))
    return context, method, target, headers, body


def credentials_of(context: dict) -> Credentials:
    given = context["credentials"]
    return Credentials(given["access_key_id"], given["secret_access_key"], given.get("token"))


def moment_of(context: dict) -> datetime:
    return datetime.fromisoformat(context["timestamp"].replace("Z", "+00:00"))


def expected(case: Path, mode: str, part: str) -> str:
    return (case / f"{mode}-{part}.txt").read_text(encoding="utf-8")


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_header_mode(case: Path) -> None:
    context, method, target, headers, body = load(case)
    host = dict((name.lower(), value) for name, value in headers)["host"]
    signed = sign_request(
        credentials_of(context), method, f"https://{host}{target}", headers=headers, body=body,
        region=context["region"], service=context["service"], normalize=context["normalize"],
        payload_header=context["sign_body"], sign_token=not context.get("omit_session_token", False),
        now=moment_of(context),
    )
    assert signed.canonical_request == expected(case, "header", "canonical-request")
    assert signed.string_to_sign == expected(case, "header", "string-to-sign")
    assert signed.headers["Authorization"].rsplit("Signature=", 1)[1] == expected(case, "header", "signature")
    published = expected(case, "header", "signed-request")
    assert f"Authorization:{signed.headers['Authorization']}" in published


@pytest.mark.parametrize("case", CASES, ids=lambda path: path.name)
def test_presigned_query_mode(case: Path) -> None:
    context, method, target, headers, body = load(case)
    host = dict((name.lower(), value) for name, value in headers)["host"]
    signed = presign_request(
        credentials_of(context), method, f"https://{host}{target}", headers=headers, body=body,
        region=context["region"], service=context["service"], expires_in=context["expiration_in_seconds"],
        normalize=context["normalize"], sign_token=not context.get("omit_session_token", False),
        now=moment_of(context),
    )
    assert signed.canonical_request == expected(case, "query", "canonical-request")
    assert signed.string_to_sign == expected(case, "query", "string-to-sign")
    ours = dict(parse_qsl(urlsplit(signed.url).query, keep_blank_values=True))
    assert ours["X-Amz-Signature"] == expected(case, "query", "signature")
    request_line = expected(case, "query", "signed-request").split("\n", 1)[0]
    published_target = request_line.split(" ", 1)[1].rsplit(" HTTP/", 1)[0]  # paths may hold spaces
    published = dict(parse_qsl(urlsplit(published_target).query, keep_blank_values=True))
    assert ours == published  # the same parameters and values; only their order may differ
