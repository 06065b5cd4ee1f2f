"""Uppy's Companion S3 endpoints (``new AwsS3({ companionEndpoint })``). The protocol and its
decisions are :class:`signer.service.companion.Companion`; this only translates HTTP.
Errors keep their real status and carry the reason in the status line: Uppy shows only
``Companion request failed: <statusText>``."""

from __future__ import annotations

from flask import Blueprint, Response, request
from flask.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter

from ...sigv4 import current_time
from ..companion import Companion
from . import fields
from .context import caller, caller_rules, config, json_body, kind, kind_finish, pending_owner
from .responses import ErrorShape, json_response, register_error_handlers

companion = Blueprint("companion", __name__)
register_error_handlers(companion, ErrorShape(reason_in_status=True), paths=("/s3/params", "/s3/multipart"))


class PartNumber(BaseConverter):
    """ASCII digits only (werkzeug's ``int`` takes any Unicode digit), and never ``complete``
    or ``batch``, so those paths do not also answer GET as a part."""

    regex = "[0-9]{1,5}"


@companion.record_once
def _add_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("part_number", PartNumber)


def _companion() -> Companion:
    cfg = config()
    who = caller()
    chosen = kind(cfg)
    return Companion(cfg.credentials, chosen.bucket, caller_rules(cfg), current_time(), cfg.s3_timeout,
                     cfg.cookie_secret, chosen.publish, kind_finish(cfg), who.identity, pending_owner(who),
                     chosen.name, who.via)


@companion.get("/s3/params")
def params() -> Response:
    return json_response(_companion().params(request.args.get("filename"), request.args.get("type")))


@companion.post("/s3/multipart")
def create() -> Response:
    adapter = _companion()  # authenticate before reading the body
    body = json_body(fields.COMPANION_CREATE.names)
    return json_response(adapter.create(body.get("filename"), body.get("type")))


@companion.get("/s3/multipart/<upload_id>/batch")
def batch(upload_id: str) -> Response:
    return json_response(_companion().sign_batch(upload_id, request.args.get("partNumbers"), request.args.get("key")))


@companion.get("/s3/multipart/<upload_id>/<part_number:part_number>")
def part(upload_id: str, part_number: str) -> Response:
    return json_response(_companion().sign_part(upload_id, part_number, request.args.get("key")))


@companion.get("/s3/multipart/<upload_id>")
def parts(upload_id: str) -> Response:
    return json_response(_companion().list_parts(upload_id, request.args.get("key")))


@companion.post("/s3/multipart/<upload_id>/complete")
def complete(upload_id: str) -> Response:
    adapter = _companion()  # authenticate before reading the body
    return json_response(adapter.complete(upload_id, request.args.get("key"), json_body(fields.COMPANION_COMPLETE.names)))


@companion.delete("/s3/multipart/<upload_id>")
def abort(upload_id: str) -> Response:
    return json_response(_companion().abort(upload_id, request.args.get("key")))

