"""Time per presign call: ours against botocore (and minio-py if installed), with two floors.

Run from the repository root:  .venv/bin/python -m benchmarks.presign [--rounds 21]
(needs the test requirements for botocore).

The case: a PUT URL for a unicode key with a signed Content-Type, and a POST form for the
same key. The floor is the work no SigV4 signer can skip: one SHA-256 of this case's
canonical request plus one HMAC-SHA256 of its string to sign, the signing key cached; once
with ``hmac.digest`` (what the targets are stated against) and once with pre-keyed
inner/outer SHA-256 states copied per call (what a signer can reach at best).

Fairness on a shared machine: every round times every row once (a few ms each), in a fresh
random order, and the ratios are taken within a round (rows next to each other in time),
then the median over rounds is reported with the spread (25th-75th percentile) of those
rounds. Time is this thread's CPU time by default (``--clock wall`` for wall time): on a
machine shared with other work, time spent preempted belongs to no row.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import random
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from datetime import UTC, datetime

from signer import Bucket, Credentials, presign_post, presign_url
from signer.presign import presign_request
from signer.sigv4 import signing_key

KEY = "uploads/alice/2026/11/23/café übersicht 📷.jpg"
CONTENT_TYPE = "image/jpeg"
REGION = "eu-west-1"
ACCESS, SECRET = "AKIDEXAMPLE12345", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

TARGETS = (
    ("presign_url", "botocore url", ">=", 30.0, "presign_url >= 30x faster than botocore"),
    ("presign_url", "floor (hmac.digest)", "<=", 3.0, "presign_url <= 3x the hmac.digest floor"),
    ("presign_post", "botocore post", ">=", 10.0, "presign_post >= 10x faster than botocore"),
)


def floors(credentials: Credentials, bucket: Bucket) -> dict[str, Callable[[], object]]:
    """The floor's two forms, over the canonical request and string to sign of this very case."""
    now = datetime.now(UTC)
    texts = presign_request(
        credentials, "PUT", bucket.object_url(KEY), headers={"Content-Type": CONTENT_TYPE},
        unsigned_payload=True, region=REGION, now=now,
    )
    canonical, to_sign = texts.canonical_request, texts.string_to_sign
    head = to_sign.rsplit("\n", 1)[0] + "\n"
    key = signing_key(SECRET, to_sign.split("\n")[1][:8], REGION, "s3")
    padded = key.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in padded))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in padded))

    def with_hmac_digest() -> str:
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        return hmac.digest(key, (head + digest).encode(), "sha256").hex()

    def prekeyed() -> str:
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        first = inner.copy()
        first.update((head + digest).encode())
        second = outer.copy()
        second.update(first.digest())
        return second.hexdigest()

    assert with_hmac_digest() == prekeyed()
    return {"floor (hmac.digest)": with_hmac_digest, "floor (pre-keyed)": prekeyed}


def rows() -> dict[str, tuple[Callable[[], object], int]]:
    """name -> (one call, calls per round)."""
    credentials = Credentials(ACCESS, SECRET)
    bucket = Bucket("example-bucket", REGION)
    found: dict[str, tuple[Callable[[], object], int]] = {
        name: (call, 1000) for name, call in floors(credentials, bucket).items()
    }
    headers = {"Content-Type": CONTENT_TYPE}
    found["presign_url"] = (lambda: presign_url(credentials, bucket, KEY, method="PUT", headers=headers), 300)
    found["presign_post"] = (
        lambda: presign_post(credentials, bucket, KEY, content_type=CONTENT_TYPE, content_length_range=(1, 10**7)),
        150,
    )
    try:
        import botocore.session
        from botocore.config import Config
    except ImportError:
        print("botocore not installed: pip install -r requirements-test.txt", file=sys.stderr)
    else:
        client = botocore.session.get_session().create_client(
            "s3", region_name=REGION, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
            config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
        )
        params = {"Bucket": "example-bucket", "Key": KEY, "ContentType": CONTENT_TYPE}
        found["botocore url"] = (
            lambda: client.generate_presigned_url("put_object", Params=params, ExpiresIn=3600), 12
        )
        found["botocore post"] = (
            lambda: client.generate_presigned_post(
                "example-bucket", KEY, Fields={"Content-Type": CONTENT_TYPE},
                Conditions=[["content-length-range", 1, 10**7], {"Content-Type": CONTENT_TYPE}],
            ),
            15,
        )
    try:
        from datetime import timedelta

        from minio import Minio
    except ImportError:
        print("minio-py not installed: its row is skipped (pip install minio to add it)", file=sys.stderr)
    else:
        minio = Minio(f"s3.{REGION}.amazonaws.com", access_key=ACCESS, secret_key=SECRET, region=REGION)
        found["minio-py presigned_put_object"] = (
            lambda: minio.presigned_put_object("example-bucket", KEY, timedelta(hours=1)), 60
        )
    return found


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=101)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    chosen = rows()
    shuffle = random.Random(args.seed)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    for call, _ in chosen.values():
        call()  # warm caches (signing key, imports, botocore's loaders)
    per_call: dict[str, list[float]] = {name: [] for name in chosen}
    for _ in range(args.rounds):
        order = list(chosen)
        shuffle.shuffle(order)
        for name in order:
            call, number = chosen[name]
            per_call[name].append(timeit.Timer(call, timer=clock).timeit(number) / number)

    floor = per_call["floor (hmac.digest)"]
    print(f"{args.rounds} interleaved rounds, rows in random order each round, {args.clock} time; "
          f"median and 25th-75th percentile over rounds\n")
    print(f"{'call':32} {'µs per call':>12} {'spread µs':>17} {'x hmac.digest floor':>20}")
    for name, times in per_call.items():
        low, median, high = quartiles(times)
        ratio = statistics.median([ours / base for ours, base in zip(times, floor, strict=True)])
        print(f"{name:32} {median * 1e6:12.2f} {low * 1e6:8.2f}-{high * 1e6:<8.2f} {ratio:20.2f}")
    print()
    for ours, other, sense, limit, text in TARGETS:
        if other not in per_call:
            print(f"{text}: not measured ({other} missing)")
            continue
        if sense == ">=":  # how many times faster than the other
            ratios = [theirs / mine for mine, theirs in zip(per_call[ours], per_call[other], strict=True)]
        else:  # how many times the floor
            ratios = [mine / theirs for mine, theirs in zip(per_call[ours], per_call[other], strict=True)]
        low, median, high = quartiles(ratios)
        met = median >= limit if sense == ">=" else median <= limit
        print(f"{text}: {median:.1f}x (rounds {low:.1f}-{high:.1f}) -> {'MET' if met else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
