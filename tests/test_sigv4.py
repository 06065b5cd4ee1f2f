"""Published vectors: the AWS SigV4 test suite (generic mode) and the S3 documentation examples.

The expected values are the published ones, vendored under tests/vectors/ (see its README).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from signer import (
    Bucket,
    Credentials,
    presign_post,
    presign_url,
    sign_policy,
    sign_request,
    sign_string_to_sign,
    signing_key,
)
from signer.errors import InvalidInput
from signer.sigv4 import canonical_uri, normalize_path, string_to_sign

VECTORS = Path(__file__).parent / "vectors"
SUITE = VECTORS / "aws-sig-v4-test-suite"
S3_DOCS = VECTORS / "s3-docs"

SUITE_CREDENTIALS = ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
SUITE_TIME = datetime(2015, 8, 30, 12, 36, 0, tzinfo=UTC)


def suite_cases() -> list[Path]:
    cases = sorted(path.parent for path in SUITE.rglob("*.req"))
    assert len(cases) == 34, "the vendored AWS test suite lost cases"
    return cases


def parse_raw_request(text: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """(method, target, headers, body) of a .req file; continuation lines fold into the
    previous header value, as HTTP/1.1 obs-fold did."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, _, rest = lines[0].partition(" ")
    target = rest.rsplit(" HTTP/1.1", 1)[0]
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        if line[:1] in (" ", "\t"):
            name, value = headers.pop()
            headers.append((name, f"{value} {line.strip()}"))
        else:
            name, _, value = line.partition(":")
            headers.append((name, value))
    return method, target, headers, body.encode("utf-8")


@pytest.mark.parametrize("case", suite_cases(), ids=lambda path: path.name)
def test_aws_suite_generic_mode(case: Path) -> None:
    read = lambda ext: (case / f"{case.name}.{ext}").read_text(encoding="utf-8")  # noqa: E731
    method, target, headers, body = parse_raw_request(read("req"))
    creq = read("creq")
    token = next(
        (line.split(":", 1)[1] for line in creq.split("\n") if line.startswith("x-amz-security-token:")),
        None,
    )
    credentials = Credentials(*SUITE_CREDENTIALS, session_token=token)
    host = dict((n.lower(), v) for n, v in headers)["host"]

    signed = sign_request(
        credentials,
        method,
        f"https://{host}{target}",
        headers=headers,
        body=body,
        region="us-east-1",
        service="service",
        now=SUITE_TIME,
    )

    assert signed.canonical_request == creq
    assert signed.string_to_sign == read("sts")
    assert signed.headers["Authorization"] == read("authz")


def test_generic_mode_normalises_and_s3_mode_does_not() -> None:
    # The suite's note: S3 keeps '//', '.' and '..' segments and encodes once.
    assert canonical_uri("/a//b/./c/../d", s3=False) == "/a/b/d"
    assert canonical_uri("/a//b/./c/../d", s3=True) == "/a//b/./c/../d"
    assert canonical_uri("/%E1%88%B4", s3=False) == "/%25E1%2588%25B4"
    assert canonical_uri("/%E1%88%B4", s3=True) == "/%E1%88%B4"
    assert normalize_path("") == "/"


def load_s3_doc(name: str) -> dict:
    return json.loads((S3_DOCS / f"{name}.json").read_text(encoding="utf-8"))


def s3_doc_credentials(doc: dict) -> Credentials:
    return Credentials(doc["access_key"], doc["secret_key"])


def doc_time(doc: dict) -> datetime:
    return datetime.strptime(doc["date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


@pytest.mark.parametrize("name", ["get-object-range", "put-object", "get-bucket-lifecycle", "list-objects"])
def test_s3_docs_header_signing(name: str) -> None:
    doc = load_s3_doc(name)
    headers = [(n, v) for n, v in doc["headers"].items() if n.lower() != "x-amz-content-sha256"]
    signed = sign_request(
        s3_doc_credentials(doc),
        doc["method"],
        _wire_url(doc["url"]),
        headers=headers,
        body=doc["payload"].encode("utf-8"),
        region=doc["region"],
        now=doc_time(doc),
    )
    authorization = signed.headers["Authorization"]
    assert authorization.endswith(f"Signature={doc['expected_signature']}")
    assert f"SignedHeaders={doc['signed_headers']}," in authorization
    if "expected_authorization" in doc:
        assert authorization == doc["expected_authorization"]
    assert signed.headers["X-Amz-Content-SHA256"] == doc["headers"]["x-amz-content-sha256"]
    if "canonical_uri" in doc:
        assert signed.canonical_request.split("\n")[1] == doc["canonical_uri"]


def _wire_url(url: str) -> str:
    """The documents write the key decoded (``test$file.text``); put it on the wire encoded."""
    parts = urlsplit(url)
    bucket = Bucket(parts.hostname.split(".")[0])
    path = bucket.object_path(parts.path[1:])
    return f"{parts.scheme}://{parts.netloc}{path}" + (f"?{parts.query}" if parts.query else "")


def test_s3_docs_presigned_get_url_byte_for_byte() -> None:
    doc = load_s3_doc("presigned-get")
    parts = urlsplit(doc["url"])
    url = presign_url(
        s3_doc_credentials(doc),
        Bucket(parts.hostname.split(".")[0], region=doc["region"]),
        parts.path[1:],
        method=doc["method"],
        expires_in=doc["expires"],
        now=doc_time(doc),
    )
    assert url.url == doc["expected_url"]
    assert url.url.endswith(doc["expected_signature"])


def test_s3_docs_post_policy_signature() -> None:
    doc = load_s3_doc("post-policy")
    import base64

    encoded = base64.b64encode(doc["policy_text"].encode("utf-8")).decode("ascii")
    assert encoded == doc["expected_policy_base64"]
    assert sign_policy(doc["secret_key"], encoded, doc["date"][:8], doc["region"]) == doc["expected_signature"]


def test_post_policy_form_signature_verifies_with_published_key_derivation() -> None:
    # presign_post's signature must equal the published algorithm applied to its own policy:
    # HMAC(signing key of the S3 docs' example, base64 policy). The key derivation itself is
    # pinned by the S3 docs vector above.
    doc = load_s3_doc("post-policy")
    form = presign_post(
        s3_doc_credentials(doc),
        Bucket(doc["bucket"]),
        "user/user1/${filename}",
        content_type_prefix="image/",
        acl="public-read",
        now=doc_time(doc),
    )
    assert form.fields["x-amz-credential"] == "AKIAIOSFODNN7EXAMPLE/20151229/us-east-1/s3/aws4_request"
    assert form.fields["x-amz-date"] == doc["date"]
    assert form.fields["x-amz-signature"] == sign_policy(
        doc["secret_key"], form.fields["policy"], "20151229", "us-east-1"
    )


def test_signing_key_matches_published_derivation() -> None:
    # From the AWS SigV4 documentation's worked example (IAM, 20150830, us-east-1, iam).
    key = signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830", "us-east-1", "iam")
    assert key.hex() == "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"


def test_sign_string_to_sign_matches_suite() -> None:
    case = SUITE / "get-vanilla"
    sts = (case / "get-vanilla.sts").read_text()
    authz = (case / "get-vanilla.authz").read_text()
    assert authz.endswith("Signature=" + sign_string_to_sign(SUITE_CREDENTIALS[1], sts))


@pytest.mark.parametrize(
    "text",
    [
        "",
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request",
        "AWS4-HMAC-SHA1\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n" + "0" * 64,
        "AWS4-HMAC-SHA256\n2015-08-30\n20150830/us-east-1/service/aws4_request\n" + "0" * 64,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150831/us-east-1/service/aws4_request\n" + "0" * 64,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/US EAST/service/aws4_request\n" + "0" * 64,
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\nnot-a-hash",
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n" + "0" * 64 + "\n",
    ],
)
def test_sign_string_to_sign_refuses_malformed(text: str) -> None:
    with pytest.raises(InvalidInput):
        sign_string_to_sign("secret", text)


def test_string_to_sign_shape() -> None:
    assert string_to_sign("20150830T123600Z", "20150830/us-east-1/service/aws4_request", "") == (
        "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_one_method_check_for_header_signing_and_presigning() -> None:
    from signer.errors import InvalidInput
    from signer.sigv4 import check_method

    assert check_method("patch") == "PATCH" and check_method("get", frozenset({"GET", "PUT"})) == "GET"
    for bad in ("GET /", "GÉT", "", 5, None):
        with pytest.raises(InvalidInput, match="^method must be an HTTP method name$"):
            check_method(bad)
    for bad in ("PATCH", "", None):
        with pytest.raises(InvalidInput, match="^method must be one of GET, PUT$"):
            check_method(bad, frozenset({"GET", "PUT"}))
