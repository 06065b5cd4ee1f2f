"""Small local servers that behave like AWS's credential endpoints, for the provider tests.

One threaded HTTP server on 127.0.0.1 plays, by path:
- the ECS/EKS container endpoint: ``GET /container`` (``Authorization`` must match when a
  token is expected, else 401);
- IMDSv2: ``PUT /latest/api/token`` (needs the TTL header), then ``GET
  /latest/meta-data/iam/security-credentials/[role]`` with ``X-aws-ec2-metadata-token``
  (401 without it: IMDSv1 is refused, as on an instance with ``HttpTokens=required``);
- STS ``AssumeRoleWithWebIdentity`` by form POST on ``/``, answering fixed-shape XML.

Each answer is a new set of credentials (``rotate``) living ``lifetime`` seconds, unless
``rotate`` is off. Every issued set is recorded with its validity, so a test can check that a
URL carries a token that was current when it was signed. ``down`` makes every path answer 500.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from tests.servers import serving

SECRET_MARK = "fake-secret-"
TOKEN_MARK = "fake-session-token-"
CONTAINER_AUTH = "fake-container-auth-0123456789"
IMDS_SESSION = "fake-imds-session-0123456789"
WEB_IDENTITY_JWT = "fake-web-identity-jwt-0123456789"


@dataclass(frozen=True)
class Issued:
    access_key: str
    secret_key: str
    token: str
    issued: datetime
    expiration: datetime


@dataclass
class FakeAws:
    lifetime: float = 3600.0
    rotate: bool = True
    down: bool = False
    container_token: str | None = CONTAINER_AUTH
    imds_role: str = "fake-instance-role"
    url: str = ""
    issued: list[Issued] = field(default_factory=list)
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def credentials(self) -> Issued:
        with self._lock:
            if self.issued and not self.rotate:
                return self.issued[-1]
            number = len(self.issued) + 1
            moment = datetime.now(UTC)
            now = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
            issued = Issued(f"ASIAFAKE{number:08d}", f"{SECRET_MARK}{number:04d}-wJalrXUtnFEMI",
                            f"{TOKEN_MARK}{number:04d}-IQoJb3JpZ2luX2Vj", now, now + timedelta(seconds=self.lifetime))
            self.issued.append(issued)
            return issued

    def token_at(self, token: str) -> Issued:
        return next(item for item in self.issued if item.token == token)


def _iso(moment: datetime) -> str:
    """With milliseconds, so that a 2-second lifetime is really 2 seconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json(item: Issued, imds: bool) -> bytes:
    document = {"AccessKeyId": item.access_key, "SecretAccessKey": item.secret_key, "Token": item.token,
                "Expiration": _iso(item.expiration)}
    if imds:
        document = {"Code": "Success", "LastUpdated": item.issued.strftime("%Y-%m-%dT%H:%M:%SZ"), "Type": "AWS-HMAC",
                    **document}
    else:
        document["RoleArn"] = "arn:aws:iam::123456789012:role/fake-task-role"
    return json.dumps(document).encode()


def _sts_xml(item: Issued) -> bytes:
    return f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:uploads:signer</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/fake-web-role/sigv4-signer</Arn>
      <AssumedRoleId>AROAFAKE:sigv4-signer</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{item.token}</SessionToken>
      <SecretAccessKey>{item.secret_key}</SecretAccessKey>
      <Expiration>{_iso(item.expiration)}</Expiration>
      <AccessKeyId>{item.access_key}</AccessKeyId>
    </Credentials>
    <Provider>oidc.eks.example</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>""".encode()


def _handler(fake: FakeAws) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self) -> bytes:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fake.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            return body

        def do_PUT(self) -> None:
            self._record()
            if fake.down:
                return self._send(500, b"down")
            if self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self._send(200, IMDS_SESSION.encode(), "text/plain")
            self._send(400, b"missing TTL header", "text/plain")

        def do_GET(self) -> None:
            self._record()
            if fake.down:
                return self._send(500, b"down")
            if self.path == "/container":
                if fake.container_token is not None and self.headers.get("Authorization") != fake.container_token:
                    return self._send(401, b'{"message": "unauthorized"}')
                return self._send(200, _json(fake.credentials(), imds=False))
            if self.path.startswith("/latest/meta-data/iam/security-credentials/"):
                if self.headers.get("X-aws-ec2-metadata-token") != IMDS_SESSION:
                    return self._send(401, b"", "text/plain")
                role = self.path.rsplit("/", 1)[-1]
                if not role:
                    return self._send(200, fake.imds_role.encode(), "text/plain")
                if role == fake.imds_role:
                    return self._send(200, _json(fake.credentials(), imds=True))
            self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            body = self._record()
            if fake.down:
                return self._send(500, b"<ErrorResponse><Error><Code>ServiceUnavailable</Code></Error></ErrorResponse>",
                                  "text/xml")
            form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
            if form.get("Action") != "AssumeRoleWithWebIdentity" or form.get("WebIdentityToken", "").strip() != WEB_IDENTITY_JWT:
                return self._send(400, b"<ErrorResponse><Error><Code>InvalidIdentityToken</Code></Error></ErrorResponse>",
                                  "text/xml")
            self._send(200, _sts_xml(fake.credentials()), "text/xml")

    return Handler


@contextmanager
def fake_aws(**settings: object) -> Iterator[FakeAws]:
    fake = FakeAws(**settings)  # type: ignore[arg-type]
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))) as url:
        fake.url = url
        yield fake
