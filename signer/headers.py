"""Authorization-header signing (not presigning), on top of :mod:`signer.sigv4`.

S3 header auth: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ParamSpec
from urllib.parse import SplitResult, urlsplit

from .credentials import Credentials
from .errors import InvalidHeader, InvalidInput
from .sigv4 import (
    ALGORITHM,
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    HeaderItems,
    amz_date,
    canonical_headers,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    check_method,
    check_scope_part,
    credential_scope,
    encode_query,
    headers_as_items,
    parse_query,
    signature,
    signing_key,
    string_to_sign,
    utc_moment,
)

_Options = ParamSpec("_Options")


@dataclass(frozen=True)
class SignedRequest:
    """The headers to add, with the intermediate texts (for tests and debugging)."""

    headers: dict[str, str]
    canonical_request: str
    string_to_sign: str


def sign_request(
    credentials: Credentials,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | HeaderItems | None = None,
    body: bytes = b"",
    unsigned_payload: bool = False,
    region: str = "us-east-1",
    service: str = "s3",
    normalize: bool = True,
    payload_header: bool | None = None,
    sign_token: bool = True,
    now: datetime | None = None,
) -> SignedRequest:
    """The headers that authorise one request: ``Authorization``, ``X-Amz-Date``,
    ``X-Amz-Security-Token`` with session credentials, and for S3 ``X-Amz-Content-SHA256``;
    with the canonical request and string to sign (:func:`sign_headers` gives the headers only).

    ``url`` is the URL as it goes on the wire (path already encoded, e.g. from
    :meth:`Bucket.object_url`). Every header in ``headers`` is signed. For a service
    other than ``s3`` the path is normalised and encoded again (the AWS test suite's
    generic mode) and no payload-hash header is added.

    For services other than S3: ``normalize=False`` keeps the path's dot segments and
    double slashes, ``payload_header=True`` adds and signs ``X-Amz-Content-SHA256`` (S3
    always does), ``sign_token=False`` adds the session token after signing (some STS
    clients do; aws-c-auth's ``omit_session_token``)."""
    method, parts, stamp, items, names = _request(method, url, headers, region, service, now)
    is_s3 = service == "s3"
    added: dict[str, str] = {"X-Amz-Date": stamp}
    payload_hash = _payload_hash(body, unsigned_payload)
    if is_s3 if payload_header is None else payload_header:
        added["X-Amz-Content-SHA256"] = payload_hash
    if credentials.session_token and sign_token:
        added["X-Amz-Security-Token"] = credentials.session_token
    ours = {name.lower() for name in added}
    to_sign = [(name, value) for name, value in items if name.lower() not in ours]
    if "host" not in names:
        to_sign.append(("host", _wire_host(parts.scheme, parts.netloc)))
    block, signed = canonical_headers([*to_sign, *added.items()])

    scope = credential_scope(stamp[:8], region, service)
    canonical = canonical_request(
        method,
        canonical_uri(parts.path, s3=is_s3, normalize=normalize),
        canonical_query_string(encode_query(parse_query(parts.query))),
        block,
        signed,
        payload_hash,
    )
    to_sign_text = string_to_sign(stamp, scope, canonical)
    sig = signature(signing_key(credentials.secret_key, stamp[:8], region, service), to_sign_text)
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed}, Signature={sig}"
    )
    if credentials.session_token and not sign_token:
        added["X-Amz-Security-Token"] = credentials.session_token
    return SignedRequest(headers=added, canonical_request=canonical, string_to_sign=to_sign_text)


def _headers_only(sign: Callable[_Options, SignedRequest]) -> Callable[_Options, dict[str, str]]:
    """``sign`` giving only its headers, with exactly its parameters (ParamSpec): one signature to keep."""

    def sign_headers(*args: _Options.args, **kwargs: _Options.kwargs) -> dict[str, str]:
        """:func:`sign_request`'s headers, without the intermediate texts: the same arguments."""
        return sign(*args, **kwargs).headers

    return sign_headers


sign_headers = _headers_only(sign_request)


def _request(
    method: object, url: str, headers: Mapping[str, str] | HeaderItems | None, region: str, service: str,
    now: datetime | None,
) -> tuple[str, SplitResult, str, list[tuple[str, str]], set[str]]:
    """What header and query signing both check first: (method, URL parts, X-Amz-Date, the
    caller's headers, their lower-cased names); Authorization is the signer's to set."""
    checked = check_method(method)
    check_scope_part("region", region)
    check_scope_part("service", service)
    parts = _absolute_url(url)
    stamp = amz_date(utc_moment(now))
    items = headers_as_items(headers)
    names = {name.lower() for name, _ in items if isinstance(name, str)}
    if "authorization" in names:
        raise InvalidHeader("header 'Authorization' is set by the signer, not the caller")
    return checked, parts, stamp, items, names


def _payload_hash(body: bytes, unsigned: bool) -> str:
    if unsigned:
        return UNSIGNED_PAYLOAD
    return EMPTY_SHA256 if not body else hashlib.sha256(body).hexdigest()


def _absolute_url(url: str) -> SplitResult:
    try:
        parts = urlsplit(url)
    except (ValueError, TypeError):
        raise InvalidInput("url is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("url must be an absolute http:// or https:// URL")
    return parts


def _wire_host(scheme: str, netloc: str) -> str:
    """The Host header a client sends: no userinfo, no default port."""
    host = netloc.rsplit("@", 1)[-1]
    default = ":443" if scheme == "https" else ":80"
    return host[: -len(default)] if host.endswith(default) else host
