"""Comparison apps for benchmarks/service.py, served by the same gunicorn settings as the service.

bare:  the framework's ceiling: parse the same JSON body, answer a small JSON object.
boto3: what people write without this project: boto3's generate_presigned_url per request
       (client made once per worker, as a careful user would).
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request

bare = Flask("bare")


@bare.post("/v1/presign")
def bare_presign():
    body = request.get_json()
    return jsonify(method="PUT", url="https://example.invalid/" + body["key"], headers={}, key=body["key"])


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
