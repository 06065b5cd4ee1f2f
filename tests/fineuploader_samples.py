"""Request bodies in the exact shape fine-uploader 5.16.2 (s3.fine-uploader.js) sends them.

Policy: ``qq.s3.util.getPolicy`` with signatureVersion 4 pushes, in this order: acl,
bucket, Content-Type, success_action_status, [x-amz-security-token],
x-amz-algorithm, key, x-amz-credential, x-amz-date, x-amz-meta-qqfilename
(encodeURIComponent'd), then ``["content-length-range", "<min>", "<max>"]`` as strings;
expiration is ``Date.toISOString()`` five minutes ahead.
Headers: ``getStringToSignArtifacts`` + ``v4.getStringToSign(...).raw``: the algorithm,
the date, the scope, then the canonical request *unhashed*; canonical URI ``"/" + key``
(key URI-escaped), headers sorted by their original names and lower-cased; Content-Type is
not among them. Real captures of both shapes: tests/vectors/fineuploader/.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from urllib.parse import quote

EMPTY = hashlib.sha256(b"").hexdigest()


def stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def policy(now: datetime, *, access_key: str, bucket: str, key: str, region: str = "us-east-1",
           content_type: str = "image/png", size: tuple[int, int] | None = (0, 1000000), acl: str = "private",
           token: str | None = None, filename: str = "cat photo.png") -> dict:
    conditions: list = [{"acl": acl}, {"bucket": bucket}]
    if content_type:
        conditions.append({"Content-Type": content_type})
    conditions.append({"success_action_status": "200"})
    if token:
        conditions.append({"x-amz-security-token": token})
    conditions += [
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"key": key},
        {"x-amz-credential": f"{access_key}/{now:%Y%m%d}/{region}/s3/aws4_request"},
        {"x-amz-date": stamp(now)},
        {"x-amz-meta-qqfilename": quote(filename, safe="")},
    ]
    if size is not None:
        conditions.append(["content-length-range", str(size[0]), str(size[1])])
    expiration = (now + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"expiration": expiration, "conditions": conditions}


def headers_string(kind: str, now: datetime, *, host: str, key: str, region: str = "us-east-1",
                   upload_id: str = "VXBsb2FkSWQ", part: int = 1, payload_hash: str = EMPTY,
                   content_type: str | None = None, extra: dict[str, str] | None = None, path_prefix: str = "") -> str:
    """One of Fine Uploader's four multipart calls, as the raw ``{"headers": ...}`` string."""
    method, query = {
        "initiate": ("POST", "uploads="),
        "part": ("PUT", f"partNumber={part}&uploadId={upload_id}"),
        "complete": ("POST", f"uploadId={upload_id}"),
        "abort": ("DELETE", f"uploadId={upload_id}"),
    }[kind]
    headers = {"x-amz-date": stamp(now), "x-amz-content-sha256": payload_hash, "Host": host}
    if kind == "initiate":
        # v4 leaves Content-Type out of the signed headers (captured: tests/vectors/fineuploader/)
        headers.update({"x-amz-acl": "private", "x-amz-meta-qqfilename": "cat%20photo.png"})
        if content_type:
            headers["Content-Type"] = content_type
    headers.update(extra or {})
    names = sorted(headers)  # JavaScript's default sort: by UTF-16 code units of the original names
    header_block = "".join(f"{name.lower()}:{headers[name].strip()}\n" for name in names)
    signed = ";".join(name.lower() for name in names)
    canonical = f"{method}\n{path_prefix}/{quote(key, safe='/~')}\n{query}\n{header_block}\n{signed}\n{payload_hash}"
    return f"AWS4-HMAC-SHA256\n{stamp(now)}\n{now:%Y%m%d}/{region}/s3/aws4_request\n{canonical}"
