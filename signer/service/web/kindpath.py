"""``/kinds/<name>/<path>``: every endpoint under a kind's prefix, so a client picks a kind with its
endpoint URL alone (Fine Uploader's ``request.endpoint``, Uppy's ``companionUrl``), no client code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .context import KIND_PATH

if TYPE_CHECKING:  # typing only: not loaded in the workers
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

PREFIX = "/kinds/"


class KindPaths:
    """WSGI middleware: ``/kinds/avatar/s3/params`` reaches ``/s3/params`` with the kind ``avatar``
    left in the environ (:data:`KIND_PATH`); the views ask :func:`context.kind`, which checks it."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX):
            name, slash, rest = path[len(PREFIX):].partition("/")
            if name and slash:
                environ[KIND_PATH] = name
                environ["PATH_INFO"] = "/" + rest
        return self.app(environ, start_response)
