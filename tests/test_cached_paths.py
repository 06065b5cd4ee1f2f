"""The caches change nothing: the cached fast paths against the uncached spec steps.

presign_url (per-second auth texts, header plans, pre-keyed HMAC) is checked against
presign_request, which builds the same URL from the plain steps (canonical_headers,
canonical_query_string, signing_key + hmac.digest) with no cache of its own; presign_post's
signature against one recomputed here from the spec's formula. Each example is a *sequence*
of calls, so every call after the first meets caches warmed by its predecessors: the clock
moves (within a second, across seconds, across midnight), and credentials change (the same
access key with another secret or another session token must never hit a stale entry).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from signer import Credentials, presign_post, presign_url
from signer.post_policy import policy_json
from signer.presign import presign_request
from signer.sigv4 import PrekeyedHMAC, uri_encode
from tests.helpers import BUCKET
from tests.oracle import buckets, expiries, header_values, moments, object_keys

ACCESS = "AKIDCACHEDPATHS01"
EDGE_MOMENTS = [
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 23, 23, 59, 59, 999999, tzinfo=UTC),
]

# Same access key, different secrets and tokens: a cache keyed on the access key alone fails.
credential_pool = st.lists(
    st.builds(
        Credentials,
        st.sampled_from([ACCESS, "AKIDOTHERKEY00002"]),
        st.sampled_from(["secret-one", "secret-two", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"]),
        st.sampled_from([None, None, "token-a", "token-b"]),
    ),
    min_size=1,
    max_size=3,
)
# Moves of the clock between calls: none, sub-second, seconds, and across midnight.
clock_moves = st.one_of(
    st.just(timedelta(0)),
    st.integers(1, 999_999).map(lambda micro: timedelta(microseconds=micro)),
    st.integers(-5, 5).map(lambda seconds: timedelta(seconds=seconds)),
    st.integers(-2, 2).map(lambda days: timedelta(days=days, seconds=1)),
)
header_names = st.sampled_from(
    ["Content-Type", "content-type", "x-amz-acl", "X-Amz-Meta-A", "x-amz-meta-a", "Cache-Control", "Range"]
)
header_dicts = st.dictionaries(header_names, header_values | st.sampled_from(["a  b", " x\ty ", "é ü"]), max_size=4)
queries = st.one_of(
    st.just([]),
    st.just([("uploads", "")]),
    st.lists(st.tuples(st.sampled_from(["partNumber", "uploadId", "response-content-type"]),
                       st.text(max_size=12)), max_size=3),
)


def uncached_url(credentials, bucket, key, method, expires_in, query, headers, now) -> str:
    """The same presigned URL from the uncached generic path."""
    url = bucket.object_url(key)
    if query:
        url += "?" + "&".join(f"{uri_encode(name)}={uri_encode(value)}" for name, value in query)
    return presign_request(
        credentials, method, url, headers=headers, unsigned_payload=True, region=bucket.region,
        service="s3", expires_in=expires_in, now=now,
    ).url


calls = st.tuples(
    st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]), object_keys(), expiries, queries, header_dicts,
    clock_moves, st.integers(0, 2),
)


@given(buckets(), credential_pool, moments, st.lists(calls, min_size=1, max_size=6))
def test_presign_url_cached_equals_uncached(bucket, pool, start, sequence) -> None:
    moment = start
    for method, key, expires_in, query, headers, move, which in sequence:
        moment += move
        creds = pool[which % len(pool)]
        ours = presign_url(creds, bucket, key, method=method, expires_in=expires_in, query=query,
                           headers=headers, now=moment)
        assert ours.url == uncached_url(creds, bucket, key, method, expires_in, query, headers, moment)
        assert ours.headers == headers and ours.headers is not headers


def spec_signature(secret: str, date: str, region: str, text: str) -> str:
    """The SigV4 signing key and signature written out from the spec, with plain hmac."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@given(buckets(), credential_pool, moments, st.lists(st.tuples(object_keys(), expiries, clock_moves,
                                                                st.integers(0, 2)), min_size=1, max_size=5))
def test_presign_post_cached_equals_spec(bucket, pool, start, sequence) -> None:
    moment = start
    for key, expires_in, move, which in sequence:
        moment += move
        creds = pool[which % len(pool)]
        form = presign_post(creds, bucket, key, expires_in=expires_in, content_type="image/png", now=moment)
        stamp = moment.strftime("%Y%m%dT%H%M%SZ")
        assert form.fields["x-amz-date"] == stamp
        assert form.fields["x-amz-credential"] == f"{creds.access_key}/{stamp[:8]}/{bucket.region}/s3/aws4_request"
        assert form.fields.get("x-amz-security-token") == creds.session_token
        policy = json.loads(base64.b64decode(form.fields["policy"]))
        expires = moment.replace(microsecond=0) + timedelta(seconds=expires_in)
        assert policy["expiration"] == expires.strftime("%Y-%m-%dT%H:%M:%SZ")
        expected = spec_signature(creds.secret_key, stamp[:8], bucket.region, form.fields["policy"])
        assert form.fields["x-amz-signature"] == expected


@given(st.binary(max_size=200), st.binary(max_size=300))
def test_prekeyed_hmac_equals_hmac_digest(key, message) -> None:
    """Keys shorter than, equal to and longer than SHA-256's 64-byte block; used twice."""
    keyed = PrekeyedHMAC(key)
    expected = hmac.digest(key, message, "sha256").hex()
    assert keyed.hexdigest(message) == expected
    assert keyed.hexdigest(message) == expected


@given(st.binary(max_size=100), st.binary(max_size=200), st.binary(max_size=200))
def test_absorbed_head_equals_hmac_of_the_whole(key, head, rest) -> None:
    """The string to sign's head taken in once per second, the rest per call: same HMAC."""
    keyed = PrekeyedHMAC(key).absorbed(head)
    expected = hmac.digest(key, head + rest, "sha256").hex()
    assert keyed.hexdigest(rest) == expected
    assert keyed.hexdigest(rest) == expected  # the absorbed state is copied, never used up


@given(st.datetimes(timezones=st.just(UTC)) | st.sampled_from(EDGE_MOMENTS))
def test_per_second_date_is_the_moments_own(moment) -> None:
    """The X-Amz-Date comes from whole seconds since the epoch (a cache key): it must name the
    moment's own second for any moment, before 1970 and at the ends of the calendar included,
    and never round a .999999 up."""
    url = presign_url(Credentials(ACCESS, "s"), BUCKET, "k", expires_in=1, now=moment).url
    expected = "%04d%02d%02dT%02d%02d%02dZ" % (
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)
    assert f"X-Amz-Date={expected}&" in url
    if moment < datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC):  # the policy's expiration must exist too
        form = presign_post(Credentials(ACCESS, "s"), BUCKET, "k", expires_in=1, now=moment)
        assert form.fields["x-amz-date"] == expected
        assert form.expires_at == moment.replace(microsecond=0) + timedelta(seconds=1)


def test_threads_share_the_caches_safely() -> None:
    """Eight threads signing with different credentials at once get what one thread gets."""
    import signer.presign
    import signer.sigv4
    from tests.test_presign import BUCKET, NOW

    pool = [Credentials(ACCESS, f"secret-{index}", None if index % 2 else f"token-{index}") for index in range(8)]
    expected = {  # from the uncached generic path, so a cache filled wrongly under a race shows
        index: [uncached_url(creds, BUCKET, f"k/{n}", "PUT", 3600, (), {"Content-Type": "a/b"},
                             NOW + timedelta(seconds=n % 3, days=n % 2)) for n in range(200)]
        for index, creds in enumerate(pool)
    }
    for module in (signer.sigv4, signer.presign):  # cold caches: the threads race to fill them
        for value in vars(module).values():
            if callable(getattr(value, "cache_clear", None)):
                value.cache_clear()
    results: dict[int, list[str]] = {}

    def work(index: int) -> None:
        creds = pool[index]
        results[index] = [presign_url(creds, BUCKET, f"k/{n}", method="PUT", headers={"Content-Type": "a/b"},
                                      now=NOW + timedelta(seconds=n % 3, days=n % 2)).url for n in range(200)]

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_policy_json_is_json_dumps(document) -> None:
    """The encoder made once writes exactly what json.dumps (and so botocore) writes."""
    assert policy_json(document) == json.dumps(document)


header_texts = st.text(st.characters(blacklist_categories=())) | st.text(
    st.sampled_from(" \t\x0b\x0c\x1c\x85\xa0\u2028\u3000a~\x7f\x00")
)


@given(header_texts)
def test_canonical_value_shortcut_is_check_then_fold(value) -> None:
    """presign's printable-ASCII shortcut accepts and folds exactly as check_header_value then
    canonical_header_value: any text, control characters, tabs, Unicode spaces and lone
    surrogates included (review2)."""
    from signer.errors import InvalidHeader
    from signer.presign import _canonical_value
    from signer.sigv4 import canonical_header_value, check_header_value

    try:
        expected: str | None = canonical_header_value(check_header_value("x-amz-meta-a", value))
    except InvalidHeader:
        expected = None
    try:
        ours: str | None = _canonical_value("x-amz-meta-a", value)
    except InvalidHeader:
        ours = None
    assert ours == expected


odd_offsets = st.integers(-86_399_999_999, 86_399_999_999).map(lambda micro: timezone(timedelta(microseconds=micro)))


@given(st.datetimes(timezones=st.timezones() | odd_offsets))
def test_whole_seconds_is_the_floor_for_any_aware_moment(moment) -> None:
    """Exact whole seconds since the epoch for any aware datetime: any zone, offsets with
    seconds and microseconds, before 1970 (the floor, not towards zero) (review2)."""
    from signer.sigv4 import EPOCH, whole_seconds

    assert whole_seconds(moment) == (moment - EPOCH) // timedelta(seconds=1)
    assert whole_seconds(moment) == whole_seconds(moment.astimezone(UTC))
