"""Query-string presigned URLs, on top of :mod:`signer.sigv4`; header signing is in :mod:`signer.headers`.

S3 query auth: https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import NamedTuple

from .credentials import Credentials
from .errors import InvalidHeader, InvalidInput
from .headers import _payload_hash, _request, _wire_host
from .s3 import Bucket
from .sigv4 import (
    ALGORITHM,
    EPOCH,
    UNSIGNED_PAYLOAD,
    HeaderItems,
    PrekeyedHMAC,
    amz_date,
    canonical_header_value,
    canonical_headers,
    canonical_query_string,
    canonical_request,
    canonical_uri,
    check_expires,
    check_header_value,
    check_method,
    credential_scope,
    encode_query,
    hashed_canonical_request,
    header_name,
    headers_as_items,
    parse_query,
    signature,
    signing_hmac,
    signing_key,
    string_to_sign,
    string_to_sign_head,
    uri_encode,
    utc_moment,
    whole_seconds,
)

METHODS = frozenset({"GET", "PUT", "HEAD", "DELETE", "POST"})
_RESERVED_HEADERS = frozenset({"host", "authorization"})
_AUTH_PARAMS = frozenset(
    {
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-expires",
        "x-amz-signedheaders",
        "x-amz-security-token",
        "x-amz-signature",
    }
)



class PresignedURL(NamedTuple):
    """A URL anyone holding it may use until ``expires_at``, with exactly ``headers``.
    (A NamedTuple rather than a frozen dataclass: as immutable, and 2 µs cheaper to build.)"""

    method: str
    url: str
    headers: dict[str, str]
    signed_at: datetime
    expires_in: int

    @property
    def expires_at(self) -> datetime:
        return EPOCH + timedelta(seconds=whole_seconds(self.signed_at) + self.expires_in)


def _auth_query(credential: str, stamp: str, expires_in: int, signed: str, token: str | None) -> tuple[str, str]:
    """The X-Amz-* parameters, encoded: (in canonical order, in botocore's URL order).
    Their sorted order is fixed, so no sort is needed when the call has no parameters of
    its own; the two orders differ only in where the session token goes."""
    head = f"X-Amz-Algorithm={ALGORITHM}&X-Amz-Credential={credential}&X-Amz-Date={stamp}&X-Amz-Expires={expires_in}"
    signed_param = f"X-Amz-SignedHeaders={uri_encode(signed)}"
    if not token:
        return f"{head}&{signed_param}", f"{head}&{signed_param}"
    token_param = f"X-Amz-Security-Token={uri_encode(token)}"
    return f"{head}&{token_param}&{signed_param}", f"{head}&{signed_param}&{token_param}"


# --- caches beside the steps: what does not change from one call to the next ---------------
# Each is a bounded functools.lru_cache (thread-safe) of a pure function of its arguments, so a
# hit returns exactly what the uncached step computes; tests/test_cached_paths.py checks it.

# Small on purpose: an entry is useful only within its second (a past second never comes back),
# and each holds two SHA-256 states; 32 covers many credentials and expiries at once.
@lru_cache(maxsize=32)
def _per_second(
    second: int, access_key: str, secret_key: str, token: str | None, region: str, expires_in: int, signed: str
) -> tuple[str, str, str, str, PrekeyedHMAC]:
    """(X-Amz-Date, credential scope, canonical X-Amz-* query, URL X-Amz-* query, the day's
    signing HMAC with the string to sign's first three lines taken in): the same for every
    call in one second with the same credentials, region, expiry and signed headers, so
    made once per such second."""
    stamp = amz_date(EPOCH + timedelta(seconds=second))
    scope = credential_scope(stamp[:8], region, "s3")
    canonical, url = _auth_query(uri_encode(f"{access_key}/{scope}"), stamp, expires_in, signed, token)
    keyed = signing_hmac(secret_key, stamp[:8], region, "s3").absorbed(string_to_sign_head(stamp, scope).encode())
    return stamp, scope, canonical, url, keyed


@lru_cache(maxsize=256)
def _header_plan(names: tuple[str, ...]) -> tuple[str, str]:
    """What :func:`canonical_headers` decides from the header *names* alone, made once per
    set of names: the canonical header block as a ``str.format`` template (lower-cased
    names in canonical order; ``{0}``, ``{1}``… the caller's values by position, repeated
    names joined by commas; ``{n}``, one past the last, our ``host``) and the signed-headers
    list. Names are checked here (a refused name raises; errors are not cached), values on
    every call. HTTP token names cannot contain braces, so the template has no other fields."""
    positions: dict[str, list[str]] = {"host": [f"{{{len(names)}}}"]}
    for index, name in enumerate(names):
        lower = header_name(name)
        if lower in _RESERVED_HEADERS:
            raise InvalidHeader(f"header {name!r} is set by the signer, not the caller")
        positions.setdefault(lower, []).append(f"{{{index}}}")
    ordered = sorted(positions)
    return "".join(f"{lower}:{','.join(positions[lower])}\n" for lower in ordered), ";".join(ordered)


def _canonical_value(name: str, value: str) -> str:
    """:func:`check_header_value` then :func:`canonical_header_value`. Printable ASCII (the
    usual value) has no control character and always encodes, so it goes straight to the
    folding; anything else takes the full check."""
    if type(value) is str and value.isascii() and value.isprintable():
        return " ".join(value.split())
    return canonical_header_value(check_header_value(name, value))


def _planned_headers(headers: dict[str, str], host: str) -> tuple[str, str]:
    """:func:`canonical_headers` for a dict of headers plus our ``host``, by its cached plan."""
    template, signed = _header_plan(tuple(headers))
    values = [_canonical_value(name, value) for name, value in headers.items()]
    values.append(host)
    return template.format(*values), signed


def presign_url(
    credentials: Credentials,
    bucket: Bucket,
    key: str,
    *,
    method: str = "GET",
    expires_in: int = 3600,
    query: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> PresignedURL:
    """Presign any S3 call as a URL (payload ``UNSIGNED-PAYLOAD``).

    ``query`` holds the operation's own parameters (``{"uploads": ""}``,
    ``[("partNumber", "1"), ("uploadId", id)]``, ``response-content-disposition``…),
    kept in the given order before the X-Amz-* ones, as botocore writes them.
    ``headers`` (``Content-Type``, ``x-amz-acl``, ``x-amz-meta-*``…) are signed, so the
    client must send them with exactly these values.
    """
    method = method if type(method) is str and method in METHODS else check_method(method, METHODS)
    expires_in = check_expires(expires_in)
    moment = utc_moment(now)
    path = bucket.object_path(key)
    if headers is None or type(headers) is dict:
        signed_headers = dict(headers) if headers else {}
        block, signed = _planned_headers(signed_headers, bucket.host)
    else:
        header_items = headers_as_items(headers)
        signed_headers = dict(header_items)
        block, signed = canonical_headers(header_items, reserved=_RESERVED_HEADERS, trusted={"host": bucket.host})

    stamp, scope, canonical_auth, url_auth, keyed = _per_second(
        whole_seconds(moment), credentials.access_key, credentials.secret_key, credentials.session_token,
        bucket.region, expires_in, signed,
    )
    if query:
        operation = encode_query(query.items() if isinstance(query, Mapping) else query)
        for name, _ in operation:
            if name.lower() in _AUTH_PARAMS:
                raise InvalidInput(f"query parameter {name!r} is set by the signer, not the caller")
        auth_pairs = [tuple(part.split("=", 1)) for part in canonical_auth.split("&")]
        canonical_query = canonical_query_string(operation + auth_pairs)  # type: ignore[operator]
        url_query = "&".join([f"{name}={value}" for name, value in operation] + [url_auth])
    else:
        canonical_query, url_query = canonical_auth, url_auth
    canonical = canonical_request(method, path, canonical_query, block, signed, UNSIGNED_PAYLOAD)
    # The HMAC of the string to sign: its head is in ``keyed`` already, the hash comes last.
    sig = keyed.hexdigest(hashed_canonical_request(canonical).encode())
    url = f"{bucket.origin}{path}?{url_query}&X-Amz-Signature={sig}"
    return PresignedURL(method, url, signed_headers, moment, expires_in)  # positional: cheaper


@dataclass(frozen=True)
class PresignedRequest:
    """A query-signed URL, with the intermediate texts (for tests and debugging)."""

    url: str
    canonical_request: str
    string_to_sign: str


def presign_request(
    credentials: Credentials,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | HeaderItems | None = None,
    body: bytes = b"",
    unsigned_payload: bool = False,
    region: str = "us-east-1",
    service: str = "s3",
    expires_in: int = 3600,
    normalize: bool = True,
    sign_token: bool = True,
    now: datetime | None = None,
) -> PresignedRequest:
    """Query-string signing of any request to any service: the URL's own parameters
    and the X-Amz-* ones, sorted; every header in ``headers`` (and ``host``) signed; the
    payload hashed (or ``UNSIGNED-PAYLOAD``, as S3 presigned URLs use). For S3 objects
    :func:`presign_url` is the short way."""
    method, parts, stamp, items, names = _request(method, url, headers, region, service, now)
    expires_in = check_expires(expires_in)
    host_trusted = {} if "host" in names else {"host": _wire_host(parts.scheme, parts.netloc)}
    block, signed = canonical_headers(items, trusted=host_trusted)
    scope = credential_scope(stamp[:8], region, service)
    own = encode_query(parse_query(parts.query))
    for name, _ in own:
        if name.lower() in _AUTH_PARAMS:
            raise InvalidInput(f"query parameter {name!r} is set by the signer, not the caller")
    auth = [
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", uri_encode(f"{credentials.access_key}/{scope}")),
        ("X-Amz-Date", stamp),
        ("X-Amz-Expires", str(expires_in)),
        ("X-Amz-SignedHeaders", uri_encode(signed)),
    ]
    token = [("X-Amz-Security-Token", uri_encode(credentials.session_token))] if credentials.session_token else []
    payload_hash = _payload_hash(body, unsigned_payload)
    canonical = canonical_request(
        method,
        canonical_uri(parts.path, s3=service == "s3", normalize=normalize),
        canonical_query_string(own + auth + (token if sign_token else [])),
        block,
        signed,
        payload_hash,
    )
    to_sign_text = string_to_sign(stamp, scope, canonical)
    sig = signature(signing_key(credentials.secret_key, stamp[:8], region, service), to_sign_text)
    query = "&".join(f"{name}={value}" for name, value in [*own, *auth, *token, ("X-Amz-Signature", sig)])
    signed_url = f"{parts.scheme}://{parts.netloc}{parts.path or '/'}?{query}"
    return PresignedRequest(url=signed_url, canonical_request=canonical, string_to_sign=to_sign_text)
