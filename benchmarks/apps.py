"""Comparison apps for benchmarks/service.py, served by the same gunicorn settings as the service.

bare:    the framework's ceiling: parse the same JSON body, answer a constant JSON object of the
         same size as the service's answer (``BENCH_BODY_BYTES``, measured by service.py).
hashing: bare, plus one HMAC-SHA256 of the body per request: what any Flask endpoint that
         hashes with OpenSSL costs in memory (OpenSSL 3 initialises on first use).
noop:    no framework at all, the same answer: the server's own floor (gunicorn's per-connection
         work), which no app under these settings can go below.
boto3:   what people write without this project: boto3's generate_presigned_url per request
         (client made once per worker, as a careful user would). boto3 only here, never in the service.
"""

from __future__ import annotations

import hmac
import json
import os

from flask import Flask, Response, jsonify, request

bare = Flask("bare")


def _constant_body(size: int) -> str:
    """A presign-shaped JSON object of exactly ``size`` bytes (or the smallest such shape)."""
    shape = {"method": "PUT", "url": "", "headers": {"Content-Type": "image/jpeg", "Content-Length": "12345"},
             "bucket": "bench-bucket", "key": "uploads/bench/cat photo.jpg", "expires_at": "2026-01-01T00:00:00Z"}
    shape["url"] = "x" * max(0, size - len(json.dumps(shape)))
    return json.dumps(shape)


_BODY = _constant_body(int(os.environ.get("BENCH_BODY_BYTES", "600")))
_BODY_BYTES = _BODY.encode()


@bare.post("/v1/presign")
def bare_presign() -> Response:
    request.get_json()
    return Response(_BODY, mimetype="application/json")


hashing = Flask("hashing")


@hashing.post("/v1/presign")
def hashing_presign() -> Response:
    request.get_json()
    hmac.digest(b"bench-key", request.get_data(), "sha256")
    return Response(_BODY, mimetype="application/json")


def noop(environ: dict, start_response) -> list[bytes]:
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_BODY_BYTES)))])
    return [_BODY_BYTES]


boto3_app = Flask("boto3")
_client = None


@boto3_app.post("/v1/presign")
def boto3_presign():
    global _client
    if _client is None:
        import boto3
        from botocore.config import Config

        _client = boto3.client(
            "s3", region_name="us-east-1", aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"], config=Config(signature_version="s3v4"),
        )
    body = request.get_json()
    url = _client.generate_presigned_url(
        "put_object", ExpiresIn=300,
        Params={"Bucket": os.environ["SIGNER_BUCKET"], "Key": body["key"], "ContentType": body["content_type"],
                "ContentLength": body["content_length"]},
    )
    return jsonify(method="PUT", url=url, headers={"Content-Type": body["content_type"]}, key=body["key"])
