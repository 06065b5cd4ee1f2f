"""Fine Uploader's endpoints: signature, upload success and delete. The protocol itself
(what may be signed) is :class:`signer.service.fineuploader.FineUploader`."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, request

from ...sigv4 import current_time
from .. import metrics
from ..completion import guard_parts, refuse_existing
from ..errors import Malformed, NotAllowed, NotFound, refusal
from ..fineuploader import FineUploader, policy_key
from ..finish import Expectation, check_object, expect_upload
from ..publish import publish
from ..storage import delete_object
from . import fields
from .context import caller, caller_rules, config, json_body, pending_owner
from .responses import ErrorShape, json_response, register_error_handlers

log = logging.getLogger("signer")
fineuploader = Blueprint("fineuploader", __name__)
register_error_handlers(fineuploader, ErrorShape(invalid=True, forbidden_as=400),
                        paths=("/s3/signature", "/s3/success", "/s3/files"))


def _adapter() -> FineUploader:
    cfg = config()
    return FineUploader(cfg.credentials, cfg.bucket, caller_rules(), current_time())


@fineuploader.post("/s3/signature")
def signature() -> Response:
    who = caller()
    if request.args.get("v4") != "true":
        raise Malformed("signature_version", "only signature version 4 is supported: set signature.version to 4 in Fine Uploader")
    body = json_body(fields.FINE_UPLOADER_SIGNATURE.names)
    if "headers" in body:
        if len(body) != 1:
            raise Malformed("invalid_input", "a 'headers' request must have no other fields")
        adapter = _adapter()
        call = adapter.check_multipart(body["headers"])
        if call.kind == "complete":
            _guard_complete(adapter, call.key, call.upload_id, call.conditional)
        answer = adapter.sign_call(call)
        method = _SIGNED_METHOD.get(call.kind, "other")
    else:
        adapter = _adapter()
        answer = adapter.sign_policy(body)
        method = "POST"
        cfg = config()
        expect_upload(cfg.finish, Expectation.of(adapter.caller, who.identity, policy_key(body["conditions"])),
                      protocol="fine-uploader", signed_until=adapter.policy_expires(body), bounded=True,
                      clock_skew=cfg.rules.clock_skew, now=adapter.now, owner=pending_owner(who))
    log.info("signed Fine Uploader %s for %s", "headers" if "headers" in body else "policy", who.identity or "-")
    metrics.signed("fine-uploader", method)
    return json_response(answer)


_SIGNED_METHOD = {"initiate": "POST", "part": "PUT", "complete": "POST", "abort": "DELETE"}
"""The S3 request each kind of multipart string signs (for the metrics)."""


def _guard_complete(adapter: FineUploader, key: str, upload_id: str | None, conditional: bool) -> None:
    """Before signing a complete the client will send itself: refuse (and abort) when the
    parts already uploaded exceed the size limit, and record the check of the finished object
    (signer/service/finish.py), in case the client never calls /s3/success. The string's date
    may be up to SIGNER_CLOCK_SKEW from now: the marker's deadline allows for it. Under
    SIGNER_OVERWRITE=deny a complete without ``if-none-match:*`` (Fine Uploader cannot send
    one) is refused when the key already holds an object."""
    cfg = config()
    assert upload_id is not None  # a complete always names its upload
    if cfg.rules.deny_overwrite and not conditional:
        refuse_existing(cfg.credentials, cfg.bucket, key, timeout=cfg.s3_timeout)
    guard_parts(cfg.credentials, cfg.bucket, adapter.caller, key, upload_id, timeout=cfg.s3_timeout)
    expect_upload(cfg.finish, Expectation.of(adapter.caller, caller().identity, key), protocol="fine-uploader",
                  signed_until=adapter.now, clock_skew=cfg.rules.clock_skew, upload_id=upload_id, now=adapter.now,
                  owner=pending_owner(caller()))


def _form_field(name: str) -> str:
    value = request.values.get(name)
    if not value:
        raise Malformed("missing_field", f"'{name}' is required")
    return value


def _checked_key() -> str:
    """The form's bucket must be ours and its key the caller's."""
    bucket = config().bucket.name
    if _form_field("bucket") != bucket:
        raise NotAllowed("bucket_not_allowed", f"bucket must be {bucket!r}")
    return caller_rules().check_key(_form_field("key"))


@fineuploader.post("/s3/success")
def success() -> Response:
    """Confirm the upload landed, and remove it if it breaks the rules after all
    (a chunked upload's total size cannot be bounded by its signatures)."""
    who = caller()
    cfg = config()
    key = _checked_key()
    if cfg.publish is not None and cfg.publish.on_upload:  # publishing checks it as the finish step does
        published = publish(cfg.finish, cfg.publish, caller_rules(), who.identity, key,
                            request.values.get("name") or None)
        return json_response({"success": True, "key": key, "size": published.size,
                              "published": {"key": published.key, "url": published.url}})
    verdict = check_object(cfg.finish, Expectation.of(caller_rules(), who.identity, key))
    if verdict.info is None:
        raise NotFound("object_not_found", "the object was not found in the bucket")
    if verdict.code is not None:
        raise refusal(verdict.code, verdict.message or "the upload broke the rules and was deleted")
    return json_response({"success": True, "key": key, "size": verdict.info.size})


@fineuploader.delete("/s3/files/<uuid>")
def delete(uuid: str) -> Response:  # noqa: ARG001 - Flask passes the route's <uuid>; the key comes from the query
    caller()
    cfg = config()
    key = _checked_key()
    cfg.rules.check_method("DELETE")
    delete_object(cfg.credentials, cfg.bucket, key, timeout=cfg.s3_timeout)
    return json_response({"success": True, "key": key})
