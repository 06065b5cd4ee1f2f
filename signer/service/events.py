"""Finishing an upload from the store's own notification (``SIGNER_EVENTS_QUEUE_URL``).

The bucket sends its ``s3:ObjectCreated:*`` events to an SQS queue (docs/events.md); the replica's
sweeper leader long-polls it (signer/service/sqs.py). For each new object under SIGNER_KEY_PREFIX
it reads the upload's marker by name (``pending/keyed/<hash of the key>``,
:func:`signer.service.finish.keyed_marker_key`), checks the object (HEAD; deleted if it breaks the
rules it was signed under), tells the webhook and deletes the marker: GET, HEAD, DELETE, against
the sweep's GET, conditional PUT, HEAD, DELETE and its share of LISTs. The marker stays what it
was: a record, kept in the store, that the sweep still finishes at its deadline if no event came.

An event for a key with no marker (never signed by this service, finished already, or the service's
own marker objects) is ignored and logged; so a repeated event finds nothing the second time and
does nothing twice. A message is deleted from the queue once handled; one whose handling failed
(the store did not answer) comes back after the queue's visibility timeout.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from .errors import Refused
from .finish import (
    Finish,
    Marker,
    check_object,
    completion_unseen,
    defer_delivery,
    keyed_marker_key,
    make_event,
    upload_event_id,
)
from .notify import deliver
from .rules import Rules
from .sqs import Message, Queue, delete, receive
from .storage import delete_object, get_object

log = logging.getLogger("signer")

POLL_BACKOFF_CAP = 60
"""Seconds between tries, at most, while the queue does not answer."""
POLLERS = 4
"""Long polls a replica keeps open at once: SQS answers as soon as it has a message, often with just
one, so one poll at a time would handle one event per round of requests. Idle, 4 polls of 20 s
each are 720 SQS requests an hour (SQS requests, not store LISTs)."""


@dataclass(frozen=True)
class EventsQueue:
    """SIGNER_EVENTS_QUEUE_URL: the queue the bucket's ObjectCreated events arrive on."""

    queue: Queue
    wait: int = 20


def created_keys(body: str, bucket: str) -> list[str]:
    """The keys of the ``ObjectCreated`` records for ``bucket`` in one message (an S3 event, or one
    delivered through SNS); S3's test event and anything else give none."""
    try:
        data: Any = json.loads(body)
        if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
            data = json.loads(data["Message"])  # through an SNS topic
    except ValueError:
        log.warning("finish step: a queue message that is not JSON: ignored")
        return []
    records = data.get("Records") if isinstance(data, dict) else None
    keys = []
    for record in records if isinstance(records, list) else []:
        try:
            if not str(record["eventName"]).startswith("ObjectCreated:"):
                continue
            if record["s3"]["bucket"]["name"] != bucket:
                log.warning("finish step: an event for another bucket: ignored")
                continue
            keys.append(unquote_plus(str(record["s3"]["object"]["key"])))  # S3 sends keys form-encoded
        except (KeyError, TypeError):
            log.warning("finish step: an event record without bucket or key: ignored")
    return keys


def finish_from_event(finish: Finish, key: str) -> str:
    """Finish the upload a new object at ``key`` ends; what happened: ``verified``, ``rejected``,
    ``absent`` (the object is gone, or older than the signature: the marker waits), ``unknown`` (no
    marker: ignored) or ``ours`` (the service's own objects)."""
    if not key.startswith(finish.key_prefix) or Rules(key_prefix=finish.key_prefix).is_reserved_key(key):
        return "ours"
    name = keyed_marker_key(finish, key)
    credentials = finish.credentials()
    found = get_object(credentials, finish.bucket, name, timeout=finish.timeout)
    if found is None:
        log.warning("finish step: an event for a key with no upload waiting (never signed here, or finished already): "
                 "ignored")
        return "unknown"
    try:
        marker = Marker.from_json(found.body)
        expected = marker.expect
    except ValueError:
        expected = None
    if expected is None:  # not a marker, or not an upload's (a keyed marker always is)
        log.error("finish step: an event's marker cannot be read: left for the sweep")
        return "unknown"
    if expected.key != key:
        log.warning("finish step: an event's key does not match its marker: ignored")
        return "unknown"
    recorded = None
    if not marker.upload_id and found.last_modified is not None:
        recorded = int(found.last_modified.timestamp())
    verdict = check_object(finish, expected, not_before=recorded)
    if verdict.outcome == "absent":
        return "absent"
    if (verdict.outcome == "verified" and finish.publish_unseen is not None
            and completion_unseen(marker.protocol, marker.upload_id)):
        finish.publish_unseen(expected)
    if finish.webhook is not None:
        now = finish.clock.store_now(finish.now())
        kind = "upload.verified" if verdict.outcome == "verified" else "upload.rejected"
        event = make_event(upload_event_id(finish, kind, expected, verdict.info), kind, expected, verdict.info, now,
                           code=verdict.code, message=verdict.message)
        if not deliver(finish.webhook, event, now=now):  # the sweep retries it, with backoff, as any event
            defer_delivery(finish, marker, event, now)
    delete_object(credentials, finish.bucket, name, timeout=finish.timeout)
    return verdict.outcome


def handle(finish: Finish, body: str) -> list[str]:
    """Every ObjectCreated record of one queue message, finished; their outcomes."""
    return [finish_from_event(finish, key) for key in created_keys(body, finish.bucket.name)]


def poller(finish: Finish, events: EventsQueue, concurrency: int = 10) -> Callable[[threading.Event], None]:
    """The loop the sweeper leader runs beside its sweeps (signer/service/sweeping.py)."""

    def one(message: Message) -> str | None:
        """The message's receipt once handled; None leaves it to come back after the visibility timeout."""
        try:
            handle(finish, message.body)
            return message.receipt
        except Refused as exc:
            log.warning("finish step: an event could not be handled yet: %s", exc.message)
        except Exception:  # a bug on one message must not stop the others
            log.exception("finish step: an event failed")
        return None

    def poll(stop: threading.Event, pool: ThreadPoolExecutor) -> None:
        backoff = 1
        while not stop.is_set():
            try:
                messages = receive(finish.credentials(), events.queue, wait=events.wait, timeout=finish.timeout)
            except Refused as exc:
                log.warning("finish step: %s", exc.message)
                stop.wait(backoff)
                backoff = min(backoff * 2, POLL_BACKOFF_CAP)
                continue
            backoff = 1
            handled = [receipt for receipt in pool.map(one, messages) if receipt]  # at once: round trips overlap
            if handled:
                try:
                    if failed := delete(finish.credentials(), events.queue, handled, timeout=finish.timeout):
                        log.warning("finish step: SQS kept %d handled events; they will come back", failed)
                except Refused as exc:
                    log.warning("finish step: %s", exc.message)

    def run(stop: threading.Event) -> None:
        with ThreadPoolExecutor(concurrency, thread_name_prefix="signer-events") as pool:
            loops = [threading.Thread(target=poll, args=(stop, pool), daemon=True) for _ in range(POLLERS)]
            for loop in loops:
                loop.start()
            for loop in loops:
                loop.join()

    return run
