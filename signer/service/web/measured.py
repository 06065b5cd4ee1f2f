"""WSGI middleware: how long the app took for each request, by route *pattern*, and the request's
events sent to the aggregator in one write (signer/service/metrics.py).

The route label is the pattern of the app's URL rule (``/s3/multipart/<upload_id>/batch``), never
the path a client sent: a path no rule takes is ``unmatched``, so the label has as many values as
the app has routes. Outermost of the app's own layers: the lean presign path is timed too. Put
there by :func:`measure` only when metrics are on (gunicorn.conf.py): off, a request meets no
trace of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from flask import Flask
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map
from werkzeug.routing.exceptions import RoutingException

from .. import metrics

if TYPE_CHECKING:  # typing only: not loaded in the workers
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

UNMATCHED = "unmatched"


class Routes:
    """Path -> rule pattern: a dictionary for the rules without arguments (every hot path), the
    url map's own matcher for the others."""

    def __init__(self, url_map: Map) -> None:
        self.fixed = {rule.rule: rule.rule for rule in url_map.iter_rules() if not rule.arguments}
        self.adapter = url_map.bind("localhost")

    def of(self, path: str, method: str) -> str:
        found = self.fixed.get(path)
        if found is not None:
            return found
        try:
            rule, _ = self.adapter.match(path, method=method, return_rule=True)
        except (HTTPException, RoutingException):  # no such route, or not with this method
            return UNMATCHED
        return str(rule.rule)


class Measured:
    """Times each request; every ``REPORT_EVERY`` seconds also reports when the signing credentials
    expire (``expiry``: they change only when a request or a sweep refreshes them)."""

    REPORT_EVERY = 10.0

    def __init__(self, app: WSGIApplication, url_map: Map, expiry: Callable[[], datetime | None]) -> None:
        self.app = app
        self.routes = Routes(url_map)
        self.expiry = expiry
        self.next_report = 0.0

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if not metrics.RECORDER.on:
            return self.app(environ, start_response)
        started = time.perf_counter()
        if started >= self.next_report:
            self.next_report = started + self.REPORT_EVERY
            expires = self.expiry()
            metrics.credentials_expire(expires.timestamp() if expires is not None else None)
        recorder = metrics.RECORDER
        recorder.begin()
        try:
            return self.app(environ, start_response)
        finally:
            route = self.routes.of(environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET"))
            metrics.request_took(route, time.perf_counter() - started)
            recorder.end()


def measure(app: Flask) -> None:
    """Time ``app``'s requests (a worker's app, once its metrics are connected)."""
    cfg = app.extensions["signer_config"]
    app.wsgi_app = Measured(app.wsgi_app, app.url_map,  # type: ignore[method-assign]
                            lambda: cfg.credentials_source.status().expiration)
