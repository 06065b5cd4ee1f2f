"""The S3 calls the service makes itself (HEAD, DELETE, list, the multipart lifecycle: create,
list parts, complete, abort; and the server-side copy that publishes an object), signed by our
own :func:`signer.sign_headers` and sent with the standard library: no SDK. Owning these calls
is what lets the service enforce the size and type rules on a multipart upload *before* the
object exists."""

from __future__ import annotations

import http.client
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode, urlsplit

from ..credentials import Credentials
from ..headers import sign_headers
from ..s3 import Bucket, encode_key
from . import metrics
from .errors import Conflict, NotFound, Refused, StoreFailed

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element


class StorageError(StoreFailed):
    """S3 could not be reached or answered something we cannot use."""

    def __init__(self, message: str) -> None:
        super().__init__("storage_error", message)


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    content_type: str | None
    etag: str | None
    last_modified: datetime | None = None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes



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
    """One request signed with the service's credentials: every given header is signed, the
    body is hashed. Each is timed, by operation and outcome (signer_store_request_seconds)."""
    extra = dict(headers or {})
    extra.update(sign_headers(credentials, method, url, headers=extra, body=body, region=bucket.region, now=now))
    started = time.perf_counter()
    outcome = "unreachable"
    try:
        answer = exchange(method, url, extra, body, timeout)
        outcome = outcome_of(answer.status)
        return answer
    finally:
        metrics.store_request(operation_of(method, url, extra), outcome, time.perf_counter() - started)


def operation_of(method: str, url: str, headers: Mapping[str, str]) -> str:
    """The S3 operation a request of ours is, as the metrics name it: HEAD, GET, PUT, DELETE, LIST,
    COPY, CREATE_MULTIPART, LIST_PARTS, COPY_PART, COMPLETE_MULTIPART, ABORT_MULTIPART, LIST_MULTIPART."""
    query = urlsplit(url).query
    names = {part.partition("=")[0] for part in query.split("&")} if query else set()
    copying = "x-amz-copy-source" in headers
    if method == "GET":
        return ("LIST" if "list-type" in names else "LIST_PARTS" if "uploadId" in names
                else "LIST_MULTIPART" if "uploads" in names else "GET")
    if method == "PUT":
        return ("COPY_PART" if copying else "PUT_PART") if "partNumber" in names else "COPY" if copying else "PUT"
    if method == "POST":
        return "CREATE_MULTIPART" if "uploads" in names else "COMPLETE_MULTIPART" if "uploadId" in names else "POST"
    if method == "DELETE":
        return "ABORT_MULTIPART" if "uploadId" in names else "DELETE"
    return "HEAD" if method == "HEAD" else "other"


def outcome_of(status: int) -> str:
    """An answer's status as a metric's outcome: ok, not_found, conflict (409, 412), client_error,
    server_error (``unreachable``: no answer at all)."""
    if 200 <= status < 300:
        return "ok"
    if status == 404:
        return "not_found"
    if status in (409, 412):
        return "conflict"
    return "client_error" if status < 500 else "server_error"


def head_object(
    credentials: Credentials, bucket: Bucket, key: str, *, timeout: float = 10.0, now: datetime | None = None
) -> ObjectInfo | None:
    """The object's size and type, or None when it does not exist."""
    answer = signed_request(credentials, bucket, "HEAD", bucket.object_url(key), timeout=timeout, now=now)
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise StorageError(f"S3 HEAD answered {answer.status}")
    try:
        size = int(answer.headers.get("Content-Length", ""))
    except ValueError:
        raise StorageError("S3 HEAD gave no Content-Length") from None
    return ObjectInfo(size, answer.headers.get("Content-Type"), answer.headers.get("ETag"),
                      _http_date(answer.headers.get("Last-Modified")))


def _http_date(value: str | None) -> datetime | None:
    """An HTTP date (``Wed, 02 Dec 2026 13:18:35 GMT``) as an aware datetime; None if unusable."""
    try:
        moment = parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def delete_object(
    credentials: Credentials, bucket: Bucket, key: str, *, timeout: float = 10.0, now: datetime | None = None
) -> None:
    """Delete one object (S3 answers 204 whether or not it existed)."""
    answer = signed_request(credentials, bucket, "DELETE", bucket.object_url(key), timeout=timeout, now=now)
    if answer.status not in (200, 204):
        raise StorageError(f"S3 DELETE answered {answer.status}")


def list_objects(
    credentials: Credentials, bucket: Bucket, prefix: str, *, max_keys: int = 100, timeout: float = 10.0,
    now: datetime | None = None,
) -> list[dict[str, object]]:
    """ListObjectsV2 under ``prefix``: ``[{"key", "size"}]``, at most ``max_keys``."""
    root, ns, _ = _list_page(credentials, bucket, prefix, None, max_keys, timeout, now)
    return [
        {"key": item.findtext(f"{ns}Key"), "size": int(item.findtext(f"{ns}Size") or 0)}
        for item in root.iter(f"{ns}Contents")
    ]


def folders(
    credentials: Credentials, bucket: Bucket, prefix: str = "", *, max_keys: int = 1000, timeout: float = 10.0,
) -> list[str]:
    """The "folders" right under ``prefix`` (ListObjectsV2's CommonPrefixes with ``/``), one page."""
    root, ns, _ = _list_page(credentials, bucket, prefix, None, max_keys, timeout, None, delimiter="/")
    return [item.findtext(f"{ns}Prefix") or "" for item in root.iter(f"{ns}CommonPrefixes")]


def _list_page(
    credentials: Credentials, bucket: Bucket, prefix: str, token: str | None, max_keys: int, timeout: float,
    now: datetime | None, delimiter: str | None = None,
) -> tuple[Element, str, Answer]:
    """One ListObjectsV2 page under ``prefix`` (after ``token``): the parsed XML and the answer."""
    params = {"list-type": "2", "max-keys": str(max_keys), "prefix": prefix}
    if delimiter:
        params["delimiter"] = delimiter
    if token:
        params["continuation-token"] = token
    query = urlencode(sorted(params.items()), quote_via=quote, safe="")
    answer = signed_request(credentials, bucket, "GET", f"{bucket.object_url('')}?{query}", timeout=timeout, now=now)
    _check(answer, "list")
    root, ns = _xml(answer, "list")
    return root, ns, answer


class PreconditionFailed(StoreFailed):
    """A conditional write lost: the key exists (``If-None-Match: *``) or changed (``If-Match``)."""

    def __init__(self) -> None:
        super().__init__("storage_error", "the store refused a conditional write (someone else wrote first)")


def store_time(answer: Answer) -> datetime | None:
    """The store's own clock, from its ``Date`` header: one clock for every replica."""
    try:
        moment = parsedate_to_datetime(answer.headers.get("Date", ""))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def put_object(
    credentials: Credentials, bucket: Bucket, key: str, body: bytes, *, content_type: str = "application/json",
    if_none_match: bool = False, if_match: str | None = None, timeout: float = 10.0, now: datetime | None = None,
) -> str | None:
    """Write one small object, optionally only when absent (``If-None-Match: *``) or unchanged
    since ``if_match`` (its ETag); a lost condition raises :class:`PreconditionFailed`.
    AWS S3 and SeaweedFS (4.48, tests/test_finish.py) honour both. Returns the new ETag."""
    headers = {"Content-Type": content_type}
    if if_none_match:
        headers["If-None-Match"] = "*"
    if if_match is not None:
        headers["If-Match"] = if_match
    answer = signed_request(credentials, bucket, "PUT", bucket.object_url(key), headers=headers, body=body,
                            timeout=timeout, now=now)
    if answer.status in (409, 412) or (if_match is not None and answer.status == 404):
        raise PreconditionFailed()
    if answer.status != 200:
        raise StorageError(f"S3 PUT answered {answer.status}")
    return answer.headers.get("ETag")


@dataclass(frozen=True)
class Stored:
    """A small object as read: its body, ETag and when the store last wrote it."""

    body: bytes
    etag: str | None
    last_modified: datetime | None


def get_object(
    credentials: Credentials, bucket: Bucket, key: str, *, timeout: float = 10.0, now: datetime | None = None,
) -> Stored | None:
    """A small object (at most 4 MiB are read), or None when it does not exist."""
    answer = signed_request(credentials, bucket, "GET", bucket.object_url(key), timeout=timeout, now=now)
    if answer.status == 404:
        return None
    if answer.status != 200:
        raise StorageError(f"S3 GET answered {answer.status}")
    return Stored(answer.body, answer.headers.get("ETag"), _http_date(answer.headers.get("Last-Modified")))


@dataclass(frozen=True)
class Listing:
    """One page of ListObjectsV2: keys in order, the token for the next page, the store's time;
    with a delimiter, the "folders" (CommonPrefixes); each key's Last-Modified, by key."""

    keys: list[str]
    next_token: str | None
    time: datetime | None
    prefixes: list[str] = field(default_factory=list)
    modified: dict[str, datetime] = field(default_factory=dict)


def list_keys(
    credentials: Credentials, bucket: Bucket, prefix: str, *, token: str | None = None, max_keys: int = 1000,
    timeout: float = 10.0, now: datetime | None = None, delimiter: str | None = None,
) -> Listing:
    """One page of keys under ``prefix`` (S3 lists them in UTF-8 byte order)."""
    root, ns, answer = _list_page(credentials, bucket, prefix, token, max_keys, timeout, now, delimiter)
    keys, modified = [], {}
    for item in root.iter(f"{ns}Contents"):
        key = item.findtext(f"{ns}Key") or ""
        keys.append(key)
        moment = _iso_date(item.findtext(f"{ns}LastModified"))
        if moment is not None:
            modified[key] = moment
    truncated = (root.findtext(f"{ns}IsTruncated") or "").lower() == "true"
    prefixes = [item.findtext(f"{ns}Prefix") or "" for item in root.iter(f"{ns}CommonPrefixes")]
    return Listing(keys, root.findtext(f"{ns}NextContinuationToken") if truncated else None, store_time(answer),
                   prefixes, modified)


def _iso_date(value: str | None) -> datetime | None:
    """A listing's ``LastModified`` (``2026-12-06T20:14:55.000Z``) as an aware datetime; None if unusable."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


# --- multipart uploads ---------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    number: int
    etag: str
    size: int


class UploadNotFound(NotFound):
    """The store does not know this multipart upload (finished, aborted, or another key's)."""

    def __init__(self) -> None:
        super().__init__("upload_not_found", "no such multipart upload for this key (it may be finished or aborted)")


def _query(**params: str | int) -> str:
    return urlencode({name.replace("_", "-"): str(value) for name, value in params.items()}, quote_via=quote, safe="")


def _xml_text(text: str) -> str:
    """Text escaped for an XML element (what xml.sax.saxutils.escape does)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml(answer: Answer, what: str) -> tuple[Element, str]:
    """The answer's XML root and namespace; an ``<Error>`` (S3 may send one with 200) is refused.
    S3 answers carry no DTD: one that does is refused before parsing (no entity expansion)."""
    from xml.etree import ElementTree  # here, not at import: only these answers need it (worker memory)

    if b"<!DOCTYPE" in answer.body.upper() or b"<!ENTITY" in answer.body.upper():
        raise StorageError(f"S3 {what} answer carries a DTD")
    try:
        root = ElementTree.fromstring(answer.body)  # noqa: S314 - the DTD check above, and expat resolves no external entities
    except ElementTree.ParseError:
        raise StorageError(f"S3 {what} answer is not XML") from None
    namespace = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""
    if root.tag == "Error" or root.tag.endswith("}Error"):
        if root.findtext(f"{namespace}Code") == "NoSuchUpload":
            raise UploadNotFound()
        raise StorageError(f"S3 {what} failed: {root.findtext(f'{namespace}Code') or 'error'}")
    return root, namespace


def _check(answer: Answer, what: str, ok: tuple[int, ...] = (200,)) -> None:
    if answer.status == 404 and b"NoSuchUpload" in answer.body:
        raise UploadNotFound()
    if answer.status not in ok:
        code = ""
        if answer.body.lstrip().startswith(b"<"):
            try:
                _xml(answer, what)
            except StorageError as exc:
                code = f" ({exc.message})"
        raise StorageError(f"S3 {what} answered {answer.status}{code}")


def create_multipart_upload(
    credentials: Credentials, bucket: Bucket, key: str, content_type: str | None, *, timeout: float = 10.0,
    now: datetime | None = None,
) -> str:
    """Start a multipart upload with a *signed* Content-Type; returns the upload id."""
    signed = {"Content-Type": content_type} if content_type else {}
    url = f"{bucket.object_url(key)}?uploads="
    answer = signed_request(credentials, bucket, "POST", url, timeout=timeout, now=now, headers=signed)
    _check(answer, "create multipart upload")
    root, ns = _xml(answer, "create multipart upload")
    upload_id = root.findtext(f"{ns}UploadId")
    if not upload_id:
        raise StorageError("S3 create multipart upload gave no UploadId")
    return upload_id


def list_parts(
    credentials: Credentials, bucket: Bucket, key: str, upload_id: str, *, timeout: float = 10.0,
    now: datetime | None = None, max_pages: int = 20,
) -> list[Part]:
    """Every uploaded part, following ``NextPartNumberMarker`` (1000 a page, 10000 at most)."""
    found: list[Part] = []
    marker = 0
    for _ in range(max_pages):
        query = _query(part_number_marker=marker, uploadId=upload_id) if marker else _query(uploadId=upload_id)
        answer = signed_request(credentials, bucket, "GET", f"{bucket.object_url(key)}?{query}", timeout=timeout, now=now)
        _check(answer, "list parts")
        root, ns = _xml(answer, "list parts")
        for item in root.iter(f"{ns}Part"):
            try:
                found.append(Part(int(item.findtext(f"{ns}PartNumber") or ""), item.findtext(f"{ns}ETag") or "",
                                  int(item.findtext(f"{ns}Size") or "")))
            except ValueError:
                raise StorageError("S3 list parts gave a part without number or size") from None
        if (root.findtext(f"{ns}IsTruncated") or "").lower() != "true":
            return found
        try:
            following = int(root.findtext(f"{ns}NextPartNumberMarker") or "")
        except ValueError:
            raise StorageError("S3 list parts is truncated without NextPartNumberMarker") from None
        if following <= marker:
            raise StorageError("S3 list parts did not advance")
        marker = following
    raise StorageError("S3 list parts has too many pages")


def complete_multipart_upload(
    credentials: Credentials, bucket: Bucket, key: str, upload_id: str, parts: list[tuple[int, str]], *,
    timeout: float = 30.0, now: datetime | None = None, if_none_match: bool = False,
) -> str | None:
    """Assemble the object from exactly ``parts`` ``[(number, etag)]``; returns its ETag.
    ``if_none_match`` signs ``If-None-Match: *``: the store refuses (412) when an object
    exists at ``key``, raised here as ``object_exists``."""
    body = "<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>{_xml_text(etag)}</ETag></Part>" for number, etag in parts
    ) + "</CompleteMultipartUpload>"
    url = f"{bucket.object_url(key)}?{_query(uploadId=upload_id)}"
    headers = {"Content-Type": "application/xml", **({"If-None-Match": "*"} if if_none_match else {})}
    answer = signed_request(credentials, bucket, "POST", url, timeout=timeout, now=now, body=body.encode("utf-8"),
                            headers=headers)
    if answer.status == 412:
        raise Conflict("object_exists", "an object already exists at this key and SIGNER_OVERWRITE=deny: "
                      "the store refused to replace it")
    _check(answer, "complete multipart upload")
    root, ns = _xml(answer, "complete multipart upload")
    return root.findtext(f"{ns}ETag")


def abort_multipart_upload(
    credentials: Credentials, bucket: Bucket, key: str, upload_id: str, *, timeout: float = 10.0,
    now: datetime | None = None,
) -> None:
    """Abort and free the parts; an upload already gone counts as aborted."""
    url = f"{bucket.object_url(key)}?{_query(uploadId=upload_id)}"
    answer = signed_request(credentials, bucket, "DELETE", url, timeout=timeout, now=now)
    if answer.status == 404:
        return
    _check(answer, "abort multipart upload", (200, 204))


def list_multipart_uploads(
    credentials: Credentials, bucket: Bucket, prefix: str, *, timeout: float = 10.0, now: datetime | None = None,
) -> list[dict[str, str]]:
    """Open multipart uploads under ``prefix`` (first page): ``[{"key", "upload_id"}]``."""
    query = _query(prefix=prefix, uploads="")
    answer = signed_request(credentials, bucket, "GET", f"{bucket.object_url('')}?{query}", timeout=timeout, now=now)
    _check(answer, "list multipart uploads")
    root, ns = _xml(answer, "list multipart uploads")
    return [
        {"key": item.findtext(f"{ns}Key") or "", "upload_id": item.findtext(f"{ns}UploadId") or ""}
        for item in root.iter(f"{ns}Upload")
    ]


# --- server-side copy (publish) ----------------------------------------------------------

MiB = 1024 * 1024
MAX_COPY_SIZE = 5 * 1024**3
"""The largest object one CopyObject copies (5 GiB); above it, UploadPartCopy part by part."""
MAX_OBJECT_SIZE = 5 * 1024**4
"""S3's largest object (5 TiB)."""
MAX_COPY_PARTS = 10000
COPY_PART_SIZE = 512 * MiB
"""Server-side parts: large (each is one request), within S3's 5 MiB to 5 GiB."""
COPY_TIMEOUT = 300.0
"""The least a copy request waits: S3 answers a long copy slowly (it keeps the line alive with spaces)."""


class SourceChanged(Conflict):
    """The source object is no longer the one that was checked (``x-amz-copy-source-if-match``)."""

    def __init__(self) -> None:
        super().__init__("object_changed", "the object changed while it was being published; publish it again")


def copy_part_ranges(size: int, part_size: int = COPY_PART_SIZE) -> list[tuple[int, int]]:
    """The inclusive byte ranges (``x-amz-copy-source-range: bytes=first-last``) of a multipart copy
    of ``size`` bytes: parts of ``part_size``, grown (in whole MiB) when that would make more than
    10000, every part at most 5 GiB and all but the last at least 5 MiB. Only for objects that
    one CopyObject cannot copy (over 5 GiB), up to S3's 5 TiB."""
    if not MAX_COPY_SIZE < size <= MAX_OBJECT_SIZE:
        raise ValueError(f"a multipart copy is for sizes above {MAX_COPY_SIZE} up to {MAX_OBJECT_SIZE} bytes")
    part = max(part_size, -(-size // MAX_COPY_PARTS))
    part = min(-(-part // MiB) * MiB, MAX_COPY_SIZE)
    return [(first, min(first + part, size) - 1) for first in range(0, size, part)]


def _copy_headers(source: Bucket, key: str, etag: str | None) -> dict[str, str]:
    """``x-amz-copy-source`` as S3 wants it (``/bucket/key``, the key URL-encoded), and the
    checked ETag as a precondition: the copy is refused if the object changed since it was checked."""
    headers = {"x-amz-copy-source": f"/{source.name}/{encode_key(key)}"}
    if etag:
        headers["x-amz-copy-source-if-match"] = etag
    return headers


def _copy_result(answer: Answer, what: str, root_name: str) -> str:
    """The ETag of a copy's result. S3 can answer 200 with an ``<Error>`` body when the copy fails
    after it started (API_CopyObject, API_UploadPartCopy): only a result element with an ETag is
    a success."""
    if answer.status == 412:
        raise SourceChanged()
    if answer.status == 404 and b"NoSuchKey" in answer.body:
        raise NotFound("object_not_found", "the object to publish is not in the bucket")
    _check(answer, what)
    root, ns = _xml(answer, what)
    etag = root.findtext(f"{ns}ETag")
    if root.tag != f"{ns}{root_name}" or not etag:
        raise StorageError(f"S3 {what} answered 200 without a {root_name}")
    return etag


def copy_object(
    credentials: Credentials, target: Bucket, key: str, source: Bucket, source_key: str, *,
    content_type: str | None, source_etag: str | None, timeout: float = 10.0, now: datetime | None = None,
) -> str:
    """CopyObject (at most 5 GiB) with the metadata replaced by ``content_type`` alone: nothing else
    the uploader set travels to the copy. Returns the copy's ETag."""
    headers = {**_copy_headers(source, source_key, source_etag), "x-amz-metadata-directive": "REPLACE"}
    if content_type:
        headers["Content-Type"] = content_type
    answer = signed_request(credentials, target, "PUT", target.object_url(key), headers=headers,
                            timeout=max(timeout, COPY_TIMEOUT), now=now)
    return _copy_result(answer, "copy object", "CopyObjectResult")


def upload_part_copy(
    credentials: Credentials, target: Bucket, key: str, upload_id: str, number: int, source: Bucket,
    source_key: str, byte_range: tuple[int, int], *, source_etag: str | None, timeout: float = 10.0,
    now: datetime | None = None,
) -> str:
    """UploadPartCopy of ``byte_range`` (inclusive) of the source; returns the part's ETag."""
    headers = {**_copy_headers(source, source_key, source_etag),
               "x-amz-copy-source-range": f"bytes={byte_range[0]}-{byte_range[1]}"}
    url = f"{target.object_url(key)}?{_query(partNumber=number, uploadId=upload_id)}"
    answer = signed_request(credentials, target, "PUT", url, headers=headers, timeout=max(timeout, COPY_TIMEOUT),
                            now=now)
    return _copy_result(answer, "upload part copy", "CopyPartResult")


def copy_large_object(
    credentials: Credentials, target: Bucket, key: str, source: Bucket, source_key: str, size: int, *,
    content_type: str | None, source_etag: str | None, timeout: float = 10.0,
    ranges: list[tuple[int, int]] | None = None,
) -> str | None:
    """A copy over 5 GiB: create a multipart upload, copy the ranges (default
    :func:`copy_part_ranges`), complete; any failure aborts the upload, so no half copy stays
    behind. Returns the ETag."""
    plan = copy_part_ranges(size) if ranges is None else ranges
    upload_id = create_multipart_upload(credentials, target, key, content_type, timeout=timeout)
    try:
        parts = [
            (number, upload_part_copy(credentials, target, key, upload_id, number, source, source_key, byte_range,
                                      source_etag=source_etag, timeout=timeout))
            for number, byte_range in enumerate(plan, 1)
        ]
        return complete_multipart_upload(credentials, target, key, upload_id, parts, timeout=max(timeout, COPY_TIMEOUT))
    except BaseException:
        with suppress(Refused):  # the copy's failure is the one to report; a lifecycle rule ends the rest
            abort_multipart_upload(credentials, target, key, upload_id, timeout=timeout)
        raise
