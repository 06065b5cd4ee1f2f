"""Trust X-Forwarded-* only from trusted proxies.

Behind a gateway the service must print URLs with the public scheme, host and path prefix
(OpenAPI ``servers``, the demo page), which arrive as X-Forwarded-Proto/Host/Prefix/For.
Werkzeug's ProxyFix believes them from anyone; this applies it only when the TCP peer is a
trusted proxy, strips the headers otherwise, and keeps the real peer address for
:func:`signer.service.callers.identify` (ProxyFix replaces REMOTE_ADDR with the client's).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from werkzeug.middleware.proxy_fix import ProxyFix

from ..networks import Network, is_trusted

if TYPE_CHECKING:  # typing only: not loaded in the workers
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

PEER_ADDRESS = "signer.peer_address"
FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT",
             "HTTP_X_FORWARDED_PREFIX", "HTTP_FORWARDED")


def peer_address(environ: WSGIEnvironment) -> str | None:
    """The TCP peer as TrustedProxies saw it (ProxyFix may have replaced REMOTE_ADDR since)."""
    peer: str | None = environ.get(PEER_ADDRESS, environ.get("REMOTE_ADDR"))
    return peer


class TrustedProxies:
    """WSGI middleware: ProxyFix for trusted peers, forwarded headers stripped for others."""

    def __init__(self, app: WSGIApplication, networks: Iterable[Network]) -> None:
        self.networks = tuple(networks)
        self.direct = app
        self.proxied: WSGIApplication = ProxyFix(app, x_for=1, x_proto=1, x_host=1, x_port=1, x_prefix=1)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        peer = environ.get("REMOTE_ADDR")
        environ[PEER_ADDRESS] = peer
        present = [name for name in FORWARDED if name in environ]
        if not present:
            return self.direct(environ, start_response)  # nothing forwarded: nothing to decide
        if is_trusted(peer, self.networks):
            return self.proxied(environ, start_response)
        for name in present:
            del environ[name]
        return self.direct(environ, start_response)
