"""The demo pages (only with SIGNER_DEMO_PAGE=true): Uppy's Dashboard in Companion mode at
``/`` when npm has installed and bundled it, Fine Uploader's S3 UI at ``/fine-uploader``, and a
plain HTML form driven by /v1/post-policy when neither is installed."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, request, send_from_directory

demo = Blueprint("demo", __name__)

STATIC = Path(__file__).parent / "static"
NODE_MODULES = Path(__file__).resolve().parents[3] / "node_modules"
FINE_UPLOADER = NODE_MODULES / "fine-uploader" / "s3.fine-uploader"
UPPY_BUNDLE = NODE_MODULES / ".uppy"  # written by package.json's postinstall (esbuild)
UPPY_STYLES = {"core": NODE_MODULES / "@uppy" / "core" / "dist", "dashboard": NODE_MODULES / "@uppy" / "dashboard" / "dist"}


def fine_uploader_available() -> bool:
    return (FINE_UPLOADER / "s3.fine-uploader.min.js").is_file()


def uppy_available() -> bool:
    return (UPPY_BUNDLE / "uppy.min.mjs").is_file()


def _settings() -> dict[str, object]:
    cfg = current_app.extensions["signer_config"]
    return {
        "bucket": cfg.bucket.name,
        "bucketUrl": cfg.bucket.base_url.rstrip("/"),
        "region": cfg.bucket.region,
        "accessKey": cfg.credentials.access_key,
        "maxSize": cfg.rules.max_size or 0,
        "base": request.script_root,
    }


@demo.get("/")
def page() -> Response:
    if not uppy_available():
        return fine_uploader_page()
    html = (STATIC / "demo-uppy.html").read_text(encoding="utf-8").replace("/*SETTINGS*/null", json.dumps(_settings()))
    return Response(html, mimetype="text/html")


@demo.get("/vendor/uppy/uppy.min.mjs")
def uppy_bundle() -> Response:
    if not uppy_available():
        abort(404)
    return send_from_directory(UPPY_BUNDLE, "uppy.min.mjs", mimetype="text/javascript")


@demo.get("/vendor/uppy/<any(core, dashboard):package>/style.min.css")
def uppy_style(package: str) -> Response:
    return send_from_directory(UPPY_STYLES[package], "style.min.css")


@demo.get("/fine-uploader")
def fine_uploader_page() -> Response:
    settings = _settings()
    name = "demo-fineuploader.html" if fine_uploader_available() else "demo-form.html"
    html = (STATIC / name).read_text(encoding="utf-8")
    template = ""
    if name.endswith("fineuploader.html"):
        template = (FINE_UPLOADER / "templates" / "default.html").read_text(encoding="utf-8")
    html = html.replace("/*SETTINGS*/null", json.dumps(settings)).replace("<!--TEMPLATE-->", template)
    return Response(html, mimetype="text/html")


@demo.get("/vendor/fine-uploader/<path:name>")
def fine_uploader_file(name: str) -> Response:
    if not fine_uploader_available():
        abort(404)
    return send_from_directory(FINE_UPLOADER, name)
