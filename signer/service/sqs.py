"""The SQS calls the service makes (ReceiveMessage, DeleteMessageBatch), signed by our own
:func:`signer.sign_headers` for service ``sqs`` and sent with the standard library: no SDK.

SQS's JSON protocol (``X-Amz-Target: AmazonSQS.<Action>``, ``application/x-amz-json-1.0``), POSTed
to the queue URL's host: https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-making-api-requests-json.html
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from ..credentials import Credentials
from ..headers import sign_headers
from .errors import StoreFailed
from .storage import StorageError, exchange

CONTENT_TYPE = "application/x-amz-json-1.0"
_AWS_HOST = re.compile(r"sqs\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?")


class QueueFailed(StoreFailed):
    """SQS could not be reached or refused the call (its error type only: never a body or a secret)."""

    def __init__(self, message: str) -> None:
        super().__init__("queue_error", message)


@dataclass(frozen=True)
class Queue:
    """One SQS queue: its URL and the region its requests are signed for."""

    url: str
    region: str

    @classmethod
    def at(cls, url: str, default_region: str) -> Queue:
        """The queue at ``url``; an AWS queue's region comes from its host (``sqs.<region>.amazonaws.com``)."""
        match = _AWS_HOST.fullmatch(urlsplit(url).hostname or "")
        return cls(url, match["region"] if match else default_region)

    @property
    def endpoint(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/"


@dataclass(frozen=True)
class Message:
    id: str
    receipt: str
    body: str


@dataclass(frozen=True)
class Call:
    """One SQS request as it goes on the wire (what the oracle test compares with botocore's)."""

    url: str
    headers: dict[str, str]
    body: bytes


def call(credentials: Credentials, queue: Queue, action: str, params: dict[str, Any], *,
         now: datetime | None = None) -> Call:
    """The signed request for ``action`` with ``params`` (the queue URL is added first)."""
    body = json.dumps({"QueueUrl": queue.url, **params}).encode("utf-8")
    headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"AmazonSQS.{action}"}
    signed = sign_headers(credentials, "POST", queue.endpoint, headers=headers, body=body, region=queue.region,
                          service="sqs", now=now)
    return Call(queue.endpoint, {**headers, **signed}, body)


def _send(request: Call, action: str, timeout: float) -> dict[str, Any]:
    try:
        answer = exchange("POST", request.url, request.headers, request.body, timeout)
    except StorageError:
        raise QueueFailed(f"SQS {action} failed: the queue did not answer") from None
    try:
        data = json.loads(answer.body or b"{}")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise QueueFailed(f"SQS {action} answered {answer.status} without JSON")
    if answer.status != 200:
        kind = str(data.get("__type", "error")).rsplit("#", 1)[-1]
        raise QueueFailed(f"SQS {action} answered {answer.status} ({kind[:80]})")
    return data


def receive(credentials: Credentials, queue: Queue, *, wait: int = 20, most: int = 10,
            timeout: float = 10.0) -> list[Message]:
    """Long-poll: up to ``most`` messages, waiting up to ``wait`` seconds for the first."""
    request = call(credentials, queue, "ReceiveMessage", {"MaxNumberOfMessages": most, "WaitTimeSeconds": wait})
    data = _send(request, "ReceiveMessage", wait + timeout)
    messages = []
    for item in data.get("Messages") or []:
        if isinstance(item, dict) and isinstance(item.get("ReceiptHandle"), str):
            messages.append(Message(str(item.get("MessageId", "")), item["ReceiptHandle"], str(item.get("Body", ""))))
    return messages


def delete(credentials: Credentials, queue: Queue, receipts: list[str], *, timeout: float = 10.0) -> int:
    """Delete handled messages (at most 10: one receive's), in one request; how many SQS did not delete
    (they come back after the visibility timeout, and find nothing to do)."""
    entries = [{"Id": str(number), "ReceiptHandle": receipt} for number, receipt in enumerate(receipts)]
    data = _send(call(credentials, queue, "DeleteMessageBatch", {"Entries": entries}), "DeleteMessageBatch", timeout)
    return len(data.get("Failed") or [])
