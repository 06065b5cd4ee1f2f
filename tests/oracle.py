"""botocore as an independent oracle (test dependency only) and hypothesis strategies."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

import botocore.session
from botocore.config import Config
from hypothesis import strategies as st

from signer import Bucket, Credentials

_SESSION = botocore.session.get_session()


@lru_cache(maxsize=256)
def botocore_client(
    region: str, endpoint_url: str | None, style: str, access_key: str, secret: str, token: str | None
):
    return _SESSION.create_client(
        "s3",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret,
        aws_session_token=token,
        config=Config(signature_version="s3v4", s3={"addressing_style": style}),
    )


def client_for(credentials: Credentials, bucket: Bucket):
    """A botocore client configured as ``bucket`` is. Our ``auto`` on AWS means virtual-hosted
    on the *regional* host; botocore's ``auto`` presigns against the global
    ``s3.amazonaws.com`` (a legacy quirk that redirects outside us-east-1), so the
    oracle is asked for ``virtual`` there, which is what ours means."""
    style = bucket.addressing_style
    if style == "auto" and bucket.endpoint_url is None:
        style = "virtual"
    return botocore_client(
        bucket.region,
        bucket.endpoint_url,
        style,
        credentials.access_key,
        credentials.secret_key,
        credentials.session_token,
    )


# --- strategies -------------------------------------------------------------------

KEY_ALPHABET = st.one_of(
    st.sampled_from(list("abcXYZ019 +%~*'!/()&$@=;:,?#[]\"<>^`{}|\\-_.")),
    st.characters(min_codepoint=0x20, max_codepoint=0x10FFFF, exclude_categories=("Cs", "Cc")),
)


@st.composite
def object_keys(draw) -> str:
    """Keys with unicode, spaces, + % ~ * ' !, '//' runs, trailing '/', and very long ones."""
    kind = draw(st.sampled_from(["short", "short", "slashes", "long"]))
    if kind == "long":
        unit = draw(st.text(KEY_ALPHABET, min_size=1, max_size=4))
        key = unit * (1000 // len(unit.encode("utf-8")))
    else:
        key = draw(st.text(KEY_ALPHABET, min_size=1, max_size=60))
        if kind == "slashes":
            key = draw(st.sampled_from(["", "a//", "./", "../", "//"])) + key + draw(
                st.sampled_from(["/", "//", "/x/", ""])
            )
    return key


regions = st.sampled_from(["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-2", "sa-east-1"])
bucket_names = st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True).filter(
    lambda n: "--" not in n and not n.startswith("xn--") and not n.startswith("sthree-")
) | st.sampled_from(["my.dotted.bucket", "uploads-2026"])


@st.composite
def buckets(draw) -> Bucket:
    """AWS endpoints in every style, and custom endpoints (IP and DNS names, odd ports)."""
    name = draw(bucket_names)
    region = draw(regions)
    where = draw(st.sampled_from(["aws", "ip", "dns", "https-dns"]))
    port = draw(st.integers(1024, 65535))
    if where == "aws":
        return Bucket(name, region, None, draw(st.sampled_from(["auto", "virtual", "path"])))
    if where == "ip":
        return Bucket(name, region, f"http://127.0.0.1:{port}", draw(st.sampled_from(["auto", "path"])))
    scheme = "https" if where == "https-dns" else "http"
    return Bucket(name, region, f"{scheme}://s3.localhost:{port}", draw(st.sampled_from(["auto", "virtual", "path"])))


printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)


@st.composite
def credentials(draw) -> Credentials:
    access = draw(st.from_regex(r"[A-Z0-9]{16,20}", fullmatch=True))
    secret = draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40))
    token = draw(st.none() | printable)
    return Credentials(access, secret, token)


moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
).map(lambda moment: moment.replace(microsecond=0))
expiries = st.one_of(st.integers(1, 604800), st.sampled_from([1, 60, 3600, 604800]))
header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=30).map(
    str.strip
).filter(bool)
metadata_names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,15}", fullmatch=True)
