"""The demo page (only with SIGNER_DEMO_PAGE=true): Fine Uploader's S3 UI at ``/fine-uploader``
when npm has installed it, else a plain HTML form driven by /v1/post-policy; ``/`` shows the same.
Each page is self-contained (its settings are inlined), so others can sit beside it."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, send_from_directory

demo = Blueprint("demo", __name__)

STATIC = Path(__file__).parent / "static"
FINE_UPLOADER = Path(__file__).resolve().parents[3] / "node_modules" / "fine-uploader" / "s3.fine-uploader"


def fine_uploader_available() -> bool:
    return (FINE_UPLOADER / "s3.fine-uploader.min.js").is_file()


@demo.get("/")
@demo.get("/fine-uploader")
def page() -> Response:
    cfg = current_app.extensions["signer_config"]
    settings = {
        "bucket": cfg.bucket.name,
        "bucketUrl": cfg.bucket.base_url.rstrip("/"),
        "region": cfg.bucket.region,
        "accessKey": cfg.credentials.access_key,
        "maxSize": cfg.rules.max_size or 0,
        "base": request.script_root,
    }
    name = "demo-fineuploader.html" if fine_uploader_available() else "demo-form.html"
    html = (STATIC / name).read_text(encoding="utf-8")
    template = (FINE_UPLOADER / "templates" / "default.html").read_text(encoding="utf-8") if name.endswith("fineuploader.html") else ""
    html = html.replace("/*SETTINGS*/null", json.dumps(settings)).replace("<!--TEMPLATE-->", template)
    return Response(html, mimetype="text/html")


@demo.get("/vendor/fine-uploader/<path:name>")
def fine_uploader_file(name: str) -> Response:
    if not fine_uploader_available():
        abort(404)
    return send_from_directory(FINE_UPLOADER, name)
