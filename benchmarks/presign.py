"""Median time per presign call: ours against botocore (and minio-py if installed), with the floor.

Run:  python benchmarks/presign.py   (needs the test requirements for botocore)

The case: a PUT URL for a unicode key with a signed Content-Type, and a POST form for
the same key. The floor is the work no SigV4 signer can skip: one SHA-256 of the
canonical request plus one HMAC-SHA256 of the string to sign (the signing key cached).
All rows are measured in the same run, so the ratios compare like with like.
"""

from __future__ import annotations

import hashlib
import hmac
import statistics
import sys
import timeit
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signer import Bucket, Credentials, presign_post, presign_url  # noqa: E402

KEY = "uploads/alice/2026/11/23/café übersicht 📷.jpg"
CONTENT_TYPE = "image/jpeg"
ACCESS, SECRET = "AKIDEXAMPLE12345", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
NOW = datetime(2026, 11, 23, 8, 0, 0, tzinfo=timezone.utc)


def median_seconds(call, number: int, repeat: int = 7) -> float:
    call()  # warm caches (signing key, imports)
    return statistics.median(timeit.repeat(call, number=number, repeat=repeat)) / number


def main() -> None:
    credentials = Credentials(ACCESS, SECRET)
    bucket = Bucket("example-bucket", "eu-west-1")
    rows: list[tuple[str, float]] = []

    # The floor: hash a canonical request of this case's size, HMAC a string to sign.
    canonical = presign_url(credentials, bucket, KEY, method="PUT", headers={"Content-Type": CONTENT_TYPE}, now=NOW)
    canonical_text = "PUT\n/" + canonical.url.split("/", 3)[3].replace("?", "\n", 1) + "\ncontent-type:image/jpeg\n"
    signing = hashlib.sha256(b"k").digest()
    floor = median_seconds(
        lambda: hmac.digest(
            signing,
            ("AWS4-HMAC-SHA256\n20261123T080000Z\n20261123/eu-west-1/s3/aws4_request\n"
             + hashlib.sha256(canonical_text.encode()).hexdigest()).encode(),
            "sha256",
        ),
        number=20000,
    )
    rows.append(("floor: 1 SHA-256 + 1 HMAC-SHA256", floor))

    ours_url = median_seconds(
        lambda: presign_url(credentials, bucket, KEY, method="PUT", headers={"Content-Type": CONTENT_TYPE}),
        number=5000,
    )
    rows.append(("signer.presign_url (PUT, Content-Type)", ours_url))
    ours_post = median_seconds(
        lambda: presign_post(credentials, bucket, KEY, content_type=CONTENT_TYPE, content_length_range=(1, 10**7)),
        number=5000,
    )
    rows.append(("signer.presign_post", ours_post))

    botocore_url = botocore_post = None
    try:
        import botocore.session
        from botocore.config import Config
    except ImportError:
        print("botocore not installed: pip install -r requirements-test.txt", file=sys.stderr)
    else:
        client = botocore.session.get_session().create_client(
            "s3", region_name="eu-west-1", aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
            config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
        )
        params = {"Bucket": "example-bucket", "Key": KEY, "ContentType": CONTENT_TYPE}
        botocore_url = median_seconds(
            lambda: client.generate_presigned_url("put_object", Params=params, ExpiresIn=3600), number=300
        )
        rows.append(("botocore generate_presigned_url", botocore_url))
        botocore_post = median_seconds(
            lambda: client.generate_presigned_post(
                "example-bucket", KEY, Fields={"Content-Type": CONTENT_TYPE},
                Conditions=[["content-length-range", 1, 10**7], {"Content-Type": CONTENT_TYPE}],
            ),
            number=300,
        )
        rows.append(("botocore generate_presigned_post", botocore_post))

    try:
        from minio import Minio
    except ImportError:
        print("minio-py not installed: its row is skipped (pip install minio to add it)", file=sys.stderr)
    else:
        minio = Minio("s3.eu-west-1.amazonaws.com", access_key=ACCESS, secret_key=SECRET, region="eu-west-1")
        rows.append((
            "minio-py presigned_put_object",
            median_seconds(lambda: minio.presigned_put_object("example-bucket", KEY, timedelta(hours=1)), number=1000),
        ))

    print(f"{'call':44} {'median per call':>16} {'x floor':>8}")
    for name, seconds in rows:
        print(f"{name:44} {seconds * 1e6:13.2f} µs {seconds / floor:8.1f}")
    print()
    print(f"presign_url  is {ours_url / floor:.1f}x the floor (target <= 4x)")
    if botocore_url:
        print(f"presign_url  is {botocore_url / ours_url:.0f}x faster than botocore (target >= 25x)")
        print(f"presign_post is {botocore_post / ours_post:.0f}x faster than botocore")


if __name__ == "__main__":
    main()
