"""A test issuer of its own: discovery and a key set served on 127.0.0.1 from keys the tests make,
which they can rotate, count the fetches of, and stop; tokens signed with those keys (PyJWT signs,
as any issuer's library would) or forged by hand for the attack cases."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.conftest import RUNTIME_SECRETS
from tests.servers import free_port, running, serving

AUDIENCE = "signer-tests"
PROVIDER_PIDS: dict[str, int] = {}
"""The running oidc-provider-mock's PID by its URL (a test stops it with SIGSTOP)."""


@dataclass
class Key:
    kid: str
    private: Any
    algorithm: str

    @classmethod
    def rsa(cls, kid: str) -> Key:
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")

    @classmethod
    def ec(cls, kid: str) -> Key:
        return cls(kid, ec.generate_private_key(ec.SECP256R1()), "ES256")

    def public_jwk(self) -> dict[str, Any]:
        make = RSAAlgorithm if self.algorithm == "RS256" else ECAlgorithm
        jwk = json.loads(make.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class Issuer:
    """What the server serves: ``keys`` (change it to rotate), ``up`` (False: every fetch is a 503)."""

    url: str = ""
    keys: list[Key] = field(default_factory=list)
    up: bool = True
    fetches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def token(self, sub: str = "alice", key: Key | None = None, headers: dict[str, Any] | None = None,
              keyed: bool = True, **claims: Any) -> str:
        key = key or self.keys[0]
        now = int(time.time())
        payload = {"iss": self.url, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 300, **claims}
        payload = {name: value for name, value in payload.items() if value is not None}
        kid = {"kid": key.kid} if keyed else {}
        token = jwt.encode(payload, key.private, algorithm=key.algorithm, headers={**kid, **(headers or {})})
        RUNTIME_SECRETS.append(token)  # a bearer token: in no log, no answer (the run's secret scan)
        return token


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token put together by hand (``alg: none``, forged headers)."""
    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()
    return ".".join([part(json.dumps(header).encode()), part(json.dumps(payload).encode()), part(signature)])


@contextmanager
def issuer_server(*keys: Key) -> Iterator[Issuer]:
    issuer = Issuer(keys=list(keys) or [Key.rsa("key-1")])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if not issuer.up:
                self.send_error(503)
                return
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
            elif self.path == "/jwks":
                with issuer.lock:
                    issuer.fetches += 1
                body = {"keys": [key.public_jwk() for key in issuer.keys]}
            else:
                self.send_error(404)
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as url:
        issuer.url = url
        yield issuer


@contextmanager
def oidc_provider(port: int | None = None) -> Iterator[str]:
    """oidc-provider-mock (a real OpenID Connect provider: discovery, JWKS, the code flow) on
    127.0.0.1, in its own process (its imports warn, which this test run turns into errors).
    Each start makes a new signing key: a restart is a rotation."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-W", "ignore", "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)]
    with running(command, f"{url}/.well-known/openid-configuration") as process:
        PROVIDER_PIDS[url] = process.pid
        yield url


def provider_token(provider: str, sub: str, client_id: str = AUDIENCE) -> str:
    """Log ``sub`` in as a browser would (the provider's form, posted), then trade the code for tokens:
    the ID token (``aud`` = the client id, signed RS256, no kid)."""
    redirect = "http://127.0.0.1/cb"
    answer = requests.post(f"{provider}/oauth2/authorize", data={"sub": sub}, allow_redirects=False, timeout=10,
                           params={"client_id": client_id, "redirect_uri": redirect, "response_type": "code",
                                   "scope": "openid"})
    code = answer.headers["Location"].split("code=", 1)[1].split("&", 1)[0]
    tokens = requests.post(f"{provider}/oauth2/token", auth=(client_id, "any-secret"), timeout=10, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect})
    tokens.raise_for_status()
    token: str = tokens.json()["id_token"]
    RUNTIME_SECRETS.append(token)
    return token
