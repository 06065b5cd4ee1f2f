"""signer/service/sqs.py against botocore (the oracle, test-only): the body and target of each call
are what botocore's own SQS client sends for the same parameters, and the signature our SigV4 makes
for service ``sqs`` is the one botocore's SigV4Auth makes for the same request and moment."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st

from signer import Credentials
from signer.service.sqs import Queue, call

AWS_QUEUE = "https://sqs.eu-west-3.amazonaws.com/123456789012/uploads-events"
MOMENT = datetime(2026, 12, 6, 20, 30, 5, tzinfo=UTC)


SESSION = botocore.session.get_session()
CAPTURED: list[Any] = []


def _capture(request: Any, **_: Any) -> Any:
    CAPTURED.append(request)
    raise RuntimeError("captured")


@lru_cache(maxsize=16)
def sqs_client(region: str, endpoint: str, access_key: str, secret_key: str, token: str | None) -> Any:
    client = SESSION.create_client("sqs", region_name=region, endpoint_url=endpoint, aws_access_key_id=access_key,
                                   aws_secret_access_key=secret_key, aws_session_token=token)
    client.meta.events.register("before-send.sqs.*", _capture)
    return client


def botocore_sent(queue: Queue, credentials: Credentials, action: str, params: dict[str, Any]) -> Any:
    """The request botocore's SQS client would send (captured before it leaves; no network)."""
    client = sqs_client(queue.region, queue.endpoint.rstrip("/"), credentials.access_key, credentials.secret_key,
                        credentials.session_token)
    CAPTURED.clear()
    operation = {"ReceiveMessage": client.receive_message, "DeleteMessageBatch": client.delete_message_batch}[action]
    try:
        operation(QueueUrl=queue.url, **params)
    except RuntimeError:
        pass
    return CAPTURED[0]


def botocore_signature(queue: Queue, credentials: Credentials, url: str, headers: dict[str, str],
                       body: bytes) -> str:
    """botocore's Authorization for exactly these headers and body, at MOMENT."""
    request = AWSRequest("POST", url, data=body, headers={k: v for k, v in headers.items()
                                                           if k.lower() not in ("authorization", "x-amz-date",
                                                                                "x-amz-security-token")})
    with freeze_time(MOMENT):
        SigV4Auth(BotoCredentials(credentials.access_key, credentials.secret_key, credentials.session_token),
                  "sqs", queue.region).add_auth(request)
    return str(request.headers["Authorization"])


def test_the_region_of_an_aws_queue_comes_from_its_host() -> None:
    assert Queue.at(AWS_QUEUE, "us-east-1").region == "eu-west-3"
    assert Queue.at("http://127.0.0.1:5000/123456789012/q", "us-east-2").region == "us-east-2"
    assert Queue.at(AWS_QUEUE, "us-east-1").endpoint == "https://sqs.eu-west-3.amazonaws.com/"


@settings(max_examples=30, deadline=None)
@given(
    action=st.sampled_from(["ReceiveMessage", "DeleteMessageBatch"]),
    receipt=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60),
    token=st.sampled_from([None, "FQoGZXIvYXdzEJr//////////wEaDOEXAMPLETOKEN="]),
    queue_url=st.sampled_from([AWS_QUEUE, "http://127.0.0.1:4566/000000000000/events"]),
)
def test_each_call_is_what_botocore_sends_and_signs(action: str, receipt: str, token: str | None,
                                                      queue_url: str) -> None:
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    queue = Queue.at(queue_url, "us-east-1")
    params: dict[str, Any] = ({"MaxNumberOfMessages": 10, "WaitTimeSeconds": 20} if action == "ReceiveMessage"
                              else {"Entries": [{"Id": "0", "ReceiptHandle": receipt},
                                                {"Id": "1", "ReceiptHandle": receipt[::-1]}]})
    ours = call(credentials, queue, action, params, now=MOMENT)
    theirs = botocore_sent(queue, credentials, action, params)
    assert json.loads(ours.body) == json.loads(theirs.body)
    assert ours.url.rstrip("/") == theirs.url.rstrip("/")
    for name in ("Content-Type", "X-Amz-Target"):
        sent = theirs.headers[name]
        assert ours.headers[name] == (sent.decode() if isinstance(sent, bytes) else sent)
    assert ours.headers["Authorization"] == botocore_signature(queue, credentials, ours.url, ours.headers, ours.body)
    assert ours.headers["X-Amz-Date"] == "20261206T203005Z"
    assert ours.headers.get("X-Amz-Security-Token") == token
