"""Fine Uploader's endpoints: signature, upload success and delete. The protocol itself
(what may be signed) is :class:`signer.service.fineuploader.FineUploader`."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

from ...sigv4 import current_time
from ..completion import guard_parts, refuse_existing, schedule_object_check
from ..errors import Refused
from ..fineuploader import FineUploader
from ..publish import publish
from ..storage import delete_object, head_object
from .context import caller, caller_rules, config, json_body
from .responses import json_response

log = logging.getLogger("signer")
fineuploader = Blueprint("fineuploader", __name__)


def _adapter() -> FineUploader:
    cfg = config()
    return FineUploader(cfg.credentials, cfg.bucket, caller_rules(), current_time())


@fineuploader.post("/s3/signature")
def signature() -> Response:
    who = caller()
    if request.args.get("v4") != "true":
        raise Refused("signature_version", "only signature version 4 is supported: set signature.version to 4 in Fine Uploader")
    body = json_body({"headers", "expiration", "conditions"})
    if "headers" in body:
        if len(body) != 1:
            raise Refused("invalid_input", "a 'headers' request must have no other fields")
        adapter = _adapter()
        call = adapter.check_multipart(body["headers"])
        if call.kind == "complete":
            _guard_complete(call.key, call.upload_id, call.conditional)
        answer = adapter.sign_call(call)
    else:
        answer = _adapter().sign_policy(body)
    log.info("signed Fine Uploader %s for %s", "headers" if "headers" in body else "policy", who.identity or "-")
    return json_response(answer)


def _guard_complete(key: str, upload_id: str | None, conditional: bool) -> None:
    """Before signing a complete the client will send itself: refuse (and abort) when the
    parts already uploaded exceed the size limit, and check the finished object shortly after,
    in case the client never calls /s3/success (see README, "the remaining window"). Under
    SIGNER_OVERWRITE=deny a complete without ``if-none-match:*`` (Fine Uploader cannot send
    one) is refused when the key already holds an object."""
    cfg = config()
    assert upload_id is not None  # a complete always names its upload
    if cfg.rules.deny_overwrite and not conditional:
        refuse_existing(cfg.credentials, cfg.bucket, key, timeout=cfg.s3_timeout)
    guard_parts(cfg.credentials, cfg.bucket, caller_rules(), key, upload_id, timeout=cfg.s3_timeout)
    schedule_object_check(lambda: cfg.credentials, cfg.bucket, caller_rules(), key, upload_id, timeout=cfg.s3_timeout)


def _form_field(name: str) -> str:
    value = request.values.get(name)
    if not value:
        raise Refused("missing_field", f"'{name}' is required")
    return value


def _checked_key() -> str:
    """The form's bucket must be ours and its key the caller's."""
    bucket = config().bucket.name
    if _form_field("bucket") != bucket:
        raise Refused("bucket_not_allowed", f"bucket must be {bucket!r}")
    return caller_rules().check_key(_form_field("key"))


@fineuploader.post("/s3/success")
def success() -> Response:
    """Confirm the upload landed, and remove it if it breaks the rules after all
    (a chunked upload's total size cannot be bounded by its signatures)."""
    caller()
    cfg = config()
    key = _checked_key()
    info = head_object(cfg.credentials, cfg.bucket, key, timeout=cfg.s3_timeout)
    if info is None:
        raise Refused("object_not_found", "the object was not found in the bucket")
    try:
        cfg.rules.check_object(info.size, info.content_type)
    except Refused:
        delete_object(cfg.credentials, cfg.bucket, key, timeout=cfg.s3_timeout)
        raise
    answer: dict[str, object] = {"success": True, "key": key, "size": info.size}
    if cfg.publish is not None and cfg.publish.on_upload:
        published = publish(cfg.credentials, cfg.bucket, cfg.publish, caller_rules(), key, request.values.get("name") or None,
                            timeout=cfg.s3_timeout)
        answer["published"] = {"key": published.key, "url": published.url}
    return json_response(answer)


@fineuploader.delete("/s3/files/<uuid>")
def delete(uuid: str) -> Response:  # noqa: ARG001 - Flask passes the route's <uuid>; the key comes from the query
    caller()
    cfg = config()
    key = _checked_key()
    cfg.rules.check_method("DELETE")
    delete_object(cfg.credentials, cfg.bucket, key, timeout=cfg.s3_timeout)
    return json_response({"success": True, "key": key})
