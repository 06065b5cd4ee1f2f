"""The few S3 calls the service makes itself (HEAD, DELETE, list), signed by our own
:func:`signer.sign_headers` and sent with the standard library: no SDK."""

from __future__ import annotations

import http.client
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode, urlsplit

from ..credentials import Credentials
from ..presign import sign_headers
from ..s3 import Bucket
from .errors import Refused


class StorageError(Refused):
    """S3 could not be reached or answered something we cannot use."""

    def __init__(self, message: str) -> None:
        super().__init__("storage_error", message)


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str | None
    etag: str | None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes


_Answer = Answer


def _connect(scheme: str, host: str, port: int | None, timeout: float) -> http.client.HTTPConnection:
    """A connection to ``host``; ``*.localhost`` names are loopback (RFC 6761 section 6.3)
    even where the system resolver does not say so, as browsers and curl treat them."""
    target = "127.0.0.1" if host.endswith(".localhost") else host
    connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    return connection_class(target, port, timeout=timeout)


def exchange(method: str, url: str, headers: Mapping[str, str] | None = None, body: bytes = b"",
             timeout: float = 10.0) -> Answer:
    """Send one request exactly as given (a presigned URL, headers added or not signed) and
    read the answer; network failures become :class:`StorageError`."""
    parts = urlsplit(url)
    connection = _connect(parts.scheme, parts.hostname or "", parts.port, timeout)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", parts.netloc)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body or method in ("PUT", "POST"):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body or None)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read(4 * 1024 * 1024))
    except (OSError, http.client.HTTPException) as exc:
        raise StorageError(f"S3 {method} failed: {type(exc).__name__}") from None
    finally:
        connection.close()


def signed_request(credentials: Credentials, bucket: Bucket, method: str, url: str, *,
                   headers: Mapping[str, str] | None = None, body: bytes = b"", timeout: float = 10.0,
                   now: datetime | None = None) -> Answer:
    """One request signed with the service's credentials (every given header signed)."""
    extra = dict(headers or {})
    extra.update(sign_headers(credentials, method, url, headers=extra, body=body, region=bucket.region, now=now))
    return exchange(method, url, extra, body, timeout)


def _send(credentials: Credentials, bucket: Bucket, method: str, url: str, timeout: float,
          now: datetime | None) -> Answer:
    return signed_request(credentials, bucket, method, url, timeout=timeout, now=now)


def head_object(
    credentials: Credentials, bucket: Bucket, key: str, *, timeout: float = 10.0, now: datetime | None = None
) -> ObjectInfo | None:
    """The object's size and type, or None when it does not exist."""
    answer = _send(credentials, bucket, "HEAD", bucket.object_url(key), timeout, now)
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise StorageError(f"S3 HEAD answered {answer.status}")
    try:
        size = int(answer.headers.get("Content-Length", ""))
    except ValueError:
        raise StorageError("S3 HEAD gave no Content-Length") from None
    return ObjectInfo(size, answer.headers.get("Content-Type"), answer.headers.get("ETag"))


def delete_object(
    credentials: Credentials, bucket: Bucket, key: str, *, timeout: float = 10.0, now: datetime | None = None
) -> None:
    """Delete one object (S3 answers 204 whether or not it existed)."""
    answer = _send(credentials, bucket, "DELETE", bucket.object_url(key), timeout, now)
    if answer.status not in (200, 204):
        raise StorageError(f"S3 DELETE answered {answer.status}")


def list_objects(
    credentials: Credentials, bucket: Bucket, prefix: str, *, max_keys: int = 100, timeout: float = 10.0,
    now: datetime | None = None,
) -> list[dict[str, object]]:
    """ListObjectsV2 under ``prefix``: ``[{"key", "size"}]``, at most ``max_keys``."""
    query = urlencode({"list-type": "2", "max-keys": str(max_keys), "prefix": prefix}, quote_via=quote)
    answer = _send(credentials, bucket, "GET", f"{bucket.object_url('')}?{query}", timeout, now)
    if answer.status != 200:
        raise StorageError(f"S3 list answered {answer.status}")
    try:
        root = ElementTree.fromstring(answer.body)
    except ElementTree.ParseError:
        raise StorageError("S3 list answer is not XML") from None
    namespace = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    return [
        {"key": item.findtext(f"{namespace}Key"), "size": int(item.findtext(f"{namespace}Size") or 0)}
        for item in root.iter(f"{namespace}Contents")
    ]
