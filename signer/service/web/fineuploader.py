"""Fine Uploader's endpoints: signature, upload success and delete. Parse, call one flow
(signer/service/flows.py; the protocol itself is :class:`signer.service.fineuploader.FineUploader`),
serialize."""

from __future__ import annotations

from flask import Blueprint, Response, request

from ..errors import Malformed
from ..flows import fine_uploader_delete, fine_uploader_signature, fine_uploader_success
from . import fields
from .context import asking, caller, json_body
from .responses import ErrorShape, json_response, register_error_handlers

fineuploader = Blueprint("fineuploader", __name__)
register_error_handlers(fineuploader, ErrorShape(invalid=True, forbidden_as=400),
                        paths=("/s3/signature", "/s3/success", "/s3/files"))


@fineuploader.post("/s3/signature")
def signature() -> Response:
    caller()  # authenticate before reading the body
    if request.args.get("v4") != "true":
        raise Malformed("signature_version", "only signature version 4 is supported: set signature.version to 4 in Fine Uploader")
    body = json_body(fields.FINE_UPLOADER_SIGNATURE.names)
    return json_response(fine_uploader_signature(asking(), body))


def _form_field(name: str) -> str:
    value = request.values.get(name)
    if not value:
        raise Malformed("missing_field", f"'{name}' is required")
    return value


@fineuploader.post("/s3/success")
def success() -> Response:
    """Confirm the upload landed, and remove it if it breaks the rules after all."""
    ask = asking()
    return json_response(fine_uploader_success(ask, _form_field("bucket"), _form_field("key"),
                                               request.values.get("name") or None))


@fineuploader.delete("/s3/files/<uuid>")
def delete(uuid: str) -> Response:  # noqa: ARG001 - Flask passes the route's <uuid>; the key comes from the query
    ask = asking()
    return json_response(fine_uploader_delete(ask, _form_field("bucket"), _form_field("key")))
