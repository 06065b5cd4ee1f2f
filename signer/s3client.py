"""The few S3 calls the service makes itself (HEAD, DELETE), signed by our own
:func:`signer.sign_headers` and sent with the standard library: no SDK."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from .credentials import Credentials
from .errors import SigningError
from .presign import sign_headers
from .s3 import Bucket


class StorageError(SigningError):
    """S3 could not be reached or answered something we cannot use."""

    status = 502
    code = "storage_error"


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str | None
    etag: str | None


def _request(
    credentials: Credentials, bucket: Bucket, method: str, key: str, timeout: float, now: datetime | None
) -> http.client.HTTPResponse:
    url = bucket.object_url(key)
    headers = sign_headers(credentials, method, url, region=bucket.region, now=now)
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.netloc, timeout=timeout)
    try:
        connection.request(method, parts.path, headers=headers)
        response = connection.getresponse()
        response.read(1024 * 1024)
        return response
    except (OSError, http.client.HTTPException) as exc:
        raise StorageError(f"S3 {method} failed: {type(exc).__name__}") from None
    finally:
        connection.close()


def head_object(
    credentials: Credentials, bucket: Bucket, key: str, *, timeout: float = 10.0, now: datetime | None = None
) -> ObjectInfo | None:
    """The object's size and type, or None when it does not exist."""
    response = _request(credentials, bucket, "HEAD", key, timeout, now)
    if response.status == 404:
        return None
    if response.status != 200:
        raise StorageError(f"S3 HEAD answered {response.status}")
    try:
        size = int(response.getheader("Content-Length", ""))
    except ValueError:
        raise StorageError("S3 HEAD gave no Content-Length") from None
    return ObjectInfo(size, response.getheader("Content-Type"), response.getheader("ETag"))


def delete_object(
    credentials: Credentials, bucket: Bucket, key: str, *, timeout: float = 10.0, now: datetime | None = None
) -> None:
    """Delete one object (S3 answers 204 whether or not it existed)."""
    response = _request(credentials, bucket, "DELETE", key, timeout, now)
    if response.status not in (200, 204):
        raise StorageError(f"S3 DELETE answered {response.status}")


def list_objects(
    credentials: Credentials, bucket: Bucket, prefix: str, *, max_keys: int = 100, timeout: float = 10.0,
    now: datetime | None = None,
) -> list[dict[str, object]]:
    """ListObjectsV2 under ``prefix``: ``[{"key", "size"}]``, at most ``max_keys``."""
    import xml.etree.ElementTree as ElementTree
    from urllib.parse import urlencode, quote

    query = urlencode({"list-type": "2", "max-keys": str(max_keys), "prefix": prefix}, quote_via=quote)
    url = f"{bucket.object_url('')}?{query}"
    headers = sign_headers(credentials, "GET", url, region=bucket.region, now=now)
    parts = urlsplit(url)
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.netloc, timeout=timeout)
    try:
        connection.request("GET", f"{parts.path}?{parts.query}", headers=headers)
        response = connection.getresponse()
        body = response.read(4 * 1024 * 1024)
    except (OSError, http.client.HTTPException) as exc:
        raise StorageError(f"S3 GET failed: {type(exc).__name__}") from None
    finally:
        connection.close()
    if response.status != 200:
        raise StorageError(f"S3 list answered {response.status}")
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        raise StorageError("S3 list answer is not XML") from None
    namespace = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    return [
        {"key": item.findtext(f"{namespace}Key"), "size": int(item.findtext(f"{namespace}Size") or 0)}
        for item in root.iter(f"{namespace}Contents")
    ]
