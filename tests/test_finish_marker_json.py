"""Markers and webhook events as typed values (issue #26): the stored JSON and the webhook body stay
byte for byte what the previous release wrote, so markers left by it are read, old replicas read
ours, and receivers see the same body. The literals below were written by the previous release's
code (finish.expect_upload, queue_event, a claimed and failed marker, notify.event_body), not by
the code under test."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from signer.service.finish import Expectation, Marker, make_event
from signer.service.notify import Event, event_body
from signer.service.storage import ObjectInfo

CHECK = (b'{"attempts":0,"deadline":1796560000,"expect":{"content_types":["image/png"],"folder":"uploads/alice/",'
         b'"identity":"alice","key":"uploads/alice/a.png","max_size":1000000},"id":"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f",'
         b'"lease_until":0,"looks":0,"protocol":"presign","state":"check","upload_id":null,"v":2}')
NOTIFY = (b'{"attempts":0,"event":{"content_type":"image/png","etag":"abc","id":"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",'
          b'"identity":"alice","key":"uploads/alice/a.png","published":{"bucket":"pub","key":"public/a.png",'
          b'"url":"https://pub.example/public/a.png"},"size":12,"time":"2026-12-06T12:00:00Z",'
          b'"type":"upload.published"},"id":"a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1","lease_until":0,"state":"notify","v":1}')
# A check marker that found a rejected upload, after a failed look, as the old claim wrote it
# (json.dumps with its default separators).
CLAIMED = (b'{"attempts": 3, "deadline": 1796560000, "event": {"content_type": "image/png", "etag": "abc", '
           b'"id": "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", "identity": "alice", "key": "uploads/alice/a.png", '
           b'"reason": {"code": "too_large", "message": "the object is larger than allowed"}, "size": 12, '
           b'"time": "2026-12-06T12:00:00Z", "type": "upload.rejected"}, "expect": {"content_types": ["image/png"], '
           b'"folder": "uploads/alice/", "identity": "alice", "key": "uploads/alice/a.png", "max_size": 1000000}, '
           b'"failures": 1, "id": "0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f", "lease_until": 0, "looks": 2, '
           b'"protocol": "presign", "recorded": 1796556400, "state": "notify", "upload_id": null, "v": 2}')
REJECTED_BODY = (b'{"content_type":"image/png","etag":"abc","id":"b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2","identity":"alice",'
                 b'"key":"uploads/alice/a.png","reason":{"code":"too_large","message":"the object is larger than allowed"},'
                 b'"size":12,"time":"2026-12-06T12:00:00Z","type":"upload.rejected"}')
EXPECTED = Expectation("uploads/alice/a.png", "alice", "uploads/alice/", 1_000_000, ("image/png",))
NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)
INFO = ObjectInfo(12, "image/png", '"abc"', NOW)


def test_an_old_check_marker_is_read_and_written_back_the_same() -> None:
    marker = Marker.from_json(CHECK)
    assert marker == Marker("0f" * 16, "check", protocol="presign", expect=EXPECTED, deadline=1796560000)
    assert marker.to_json() == CHECK


def test_an_old_notify_marker_keeps_its_event_and_its_extra_fields() -> None:
    marker = Marker.from_json(NOTIFY)
    assert marker.v == 1 and marker.expect is None and marker.event is not None
    assert marker.event.type == "upload.published" and marker.event.etag == "abc"
    assert marker.event.extra == {"published": {"bucket": "pub", "key": "public/a.png",
                                                "url": "https://pub.example/public/a.png"}}
    assert marker.to_json() == NOTIFY


def test_an_old_claimed_marker_with_every_field_is_read() -> None:
    marker = Marker.from_json(CLAIMED)
    assert (marker.state, marker.looks, marker.attempts, marker.failures, marker.recorded) == ("notify", 2, 3, 1, 1796556400)
    assert marker.expect == EXPECTED and marker.event is not None and marker.event.code == "too_large"
    assert marker.to_json() == json.dumps(json.loads(CLAIMED), separators=(",", ":"), sort_keys=True).encode()


def test_the_webhook_body_is_unchanged() -> None:
    event = make_event("b2" * 16, "upload.rejected", EXPECTED, INFO, NOW, code="too_large",
                       message="the object is larger than allowed")
    assert event_body(event) == REJECTED_BODY
    assert Event.from_json(json.loads(REJECTED_BODY)) == event
    published = make_event("a1" * 16, "upload.published", EXPECTED, INFO, NOW,
                           extra={"published": {"bucket": "pub", "key": "public/a.png",
                                                "url": "https://pub.example/public/a.png"}})
    assert event_body(published) == json.dumps(json.loads(NOTIFY)["event"], separators=(",", ":"), sort_keys=True).encode()


def test_an_event_without_an_object_has_nulls() -> None:
    event = make_event("c3" * 16, "upload.published", EXPECTED, None, NOW, extra={"public_key": "public/a.png"})
    assert json.loads(event_body(event)) == {
        "id": "c3" * 16, "type": "upload.published", "time": "2026-12-06T12:00:00Z", "key": "uploads/alice/a.png",
        "identity": "alice", "size": None, "content_type": None, "etag": None, "public_key": "public/a.png"}


def _changed(body: bytes, **changes: object) -> bytes:
    data = json.loads(body)
    data.update(changes)
    return json.dumps({name: value for name, value in data.items() if value != "DROP"}).encode()


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]", b"\xff\xfe", b'"a string"',
    _changed(CHECK, state="done"), _changed(CHECK, state="DROP"), _changed(CHECK, id=7), _changed(CHECK, id="DROP"),
    _changed(CHECK, expect="DROP"), _changed(CHECK, expect=[]), _changed(CHECK, expect={"folder": "uploads/alice/"}),
    _changed(CHECK, looks="1"), _changed(CHECK, deadline=None), _changed(CHECK, lease_until=True),
    _changed(CHECK, upload_id=5), _changed(CHECK, expect=dict(EXPECTED.as_json(), content_types="image/png")),
    _changed(NOTIFY, event="DROP"), _changed(NOTIFY, event={"id": "x"}),
    _changed(NOTIFY, event=dict(json.loads(NOTIFY)["event"], time="yesterday")),
    _changed(NOTIFY, event=dict(json.loads(NOTIFY)["event"], reason={"message": "no code"})),
    _changed(NOTIFY, event=dict(json.loads(NOTIFY)["event"], size="12")),
])
def test_what_is_not_a_marker_raises_value_error(body: bytes) -> None:
    with pytest.raises(ValueError):
        Marker.from_json(body)
