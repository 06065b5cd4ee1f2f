"""Constants and helpers shared by the test modules: one test moment, one key pair, one bucket."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from signer import Bucket, Credentials
from signer.errors import SigningError
from signer.service.errors import Refused
from signer.service.web.statuses import status_of

NOW = datetime(2026, 11, 23, 8, 0, 0, tzinfo=UTC)
FROZEN = "2026-11-23 08:00:00"  # NOW for freezegun
ACCESS_KEY = "AKIDEXAMPLE12345"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
CREDS = Credentials(ACCESS_KEY, SECRET_KEY)
BUCKET = Bucket("uploads-bucket")

FORBIDDEN = 403  # well formed, outside the rules
MALFORMED = 400


@contextmanager
def refused(status: int, match: str | None = None) -> Iterator[None]:
    """Expect a refusal (service or library) whose code answers with ``status``."""
    with pytest.raises((Refused, SigningError), match=match) as caught:
        yield
    assert status_of(caught.value.code) == status, f"{caught.value.code} is not a {status}"


@contextmanager
def moto_bucket(s3_url: str, name: str) -> Iterator[Any]:
    """A boto3 client on moto's server (test-only, to arrange and inspect the store) and a
    fresh bucket, emptied of uploads and objects and removed afterwards."""
    import boto3
    from botocore.config import Config as BotoConfig

    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                      aws_secret_access_key=SECRET_KEY, config=BotoConfig(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket=name)
    try:
        yield s3
    finally:
        for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
        for item in s3.list_objects_v2(Bucket=name).get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
        s3.delete_bucket(Bucket=name)
