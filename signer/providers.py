"""Where credentials come from: the AWS SDKs' provider chain, standard library only.

The chain, in the SDKs' order and with their variable names (botocore's
``create_credential_resolver``, the Java SDK's ``DefaultCredentialsProvider``):

1. static keys in the environment: ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
   ``AWS_SESSION_TOKEN`` (or their ``_FILE`` forms);
2. web identity (EKS IRSA): ``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``, via STS
   ``AssumeRoleWithWebIdentity``;
3. container credentials (ECS task role, EKS Pod Identity):
   ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` or ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` with
   ``AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]``;
4. instance metadata, IMDSv2 only (an EC2 instance profile), unless
   ``AWS_EC2_METADATA_DISABLED=true``.

Unlike an SDK, the choice is made once from which variables are set (not by trying each
one over the network), so a misconfiguration is an error at start-up that names the
variable. ``SIGNER_ROLE_ARN`` then assumes a narrower role with what the chain found.
Every provider's ``fetch`` raises :class:`CredentialsUnavailable` with a message that
names the source and never contains a secret, a token or a response body.
"""

from __future__ import annotations

import ipaddress
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from .credentials import Credentials, Provider, credentials_from_env
from .environment import flag as _flag
from .environment import text as _set
from .errors import CredentialsUnavailable, InvalidCredentials
from .headers import sign_headers
from .refresh import RefreshingCredentials
from .sigv4 import current_time

CONTAINER_HOST = "http://169.254.170.2"
IMDS_ENDPOINT = "http://169.254.169.254"
IMDS_TOKEN_TTL = 21600
STS_VERSION = "2011-06-15"
_FORM = "application/x-www-form-urlencoded; charset=utf-8"
_MAX_ANSWER = 1024 * 1024
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}")
_ERROR_CODE = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,63}")
# http:// container endpoints the SDKs accept: loopback, and ECS's and EKS Pod Identity's link-local addresses.
_CONTAINER_HOSTS = {ipaddress.ip_address(a) for a in ("169.254.170.2", "169.254.170.23", "fd00:ec2::23")}


# --- HTTP, without proxies or redirects for the link-local endpoints ------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:  # noqa: ARG002 - urllib's hook signature
        return None  # a 3xx becomes an HTTPError: credentials are never fetched from elsewhere


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
_REMOTE = urllib.request.build_opener(_NoRedirect)  # STS: honours HTTPS_PROXY like the SDKs


def _http(source: str, url: str, *, method: str = "GET", headers: Mapping[str, str] | None = None,
          data: bytes | None = None, timeout: float, local: bool = True) -> tuple[int, bytes]:
    """Status and body (at most 1 MiB) of one request; errors name only the source and host."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise CredentialsUnavailable(f"{source}: only http(s) endpoints are used")
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))  # noqa: S310 - http(s) only
    try:
        with (_LOCAL if local else _REMOTE).open(request, timeout=timeout) as answer:
            return answer.status, answer.read(_MAX_ANSWER)
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(_MAX_ANSWER)
    except (OSError, ValueError) as exc:  # URLError, timeouts, resets, a bad URL
        host = urlsplit(url).netloc or "?"
        raise CredentialsUnavailable(f"{source}: cannot reach {host} ({type(exc).__name__})") from None


def parse_expiration(value: object, source: str) -> datetime:
    """ISO 8601 (``2026-11-23T12:00:00Z``, with or without fractions) as aware UTC."""
    if not isinstance(value, str):
        raise CredentialsUnavailable(f"{source}: the credentials have no Expiration")
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise CredentialsUnavailable(f"{source}: Expiration is not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _credentials(source: str, access_key: object, secret_key: object, token: object, expiration: object) -> Credentials:
    try:
        return Credentials(access_key, secret_key, token or None, parse_expiration(expiration, source))  # type: ignore[arg-type]
    except InvalidCredentials as exc:
        raise CredentialsUnavailable(f"{source}: {exc.message}") from None


def credentials_from_json(body: bytes, source: str) -> Credentials:
    """The container endpoint's and IMDS's answer: ``AccessKeyId``, ``SecretAccessKey``,
    ``Token``, ``Expiration`` (and ``Code: Success`` from IMDS)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise CredentialsUnavailable(f"{source}: the answer is not JSON") from None
    if not isinstance(document, dict):
        raise CredentialsUnavailable(f"{source}: the answer is not a JSON object")
    code = document.get("Code", "Success")
    if code != "Success":
        shown = code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "?"
        raise CredentialsUnavailable(f"{source}: answered Code {shown}")
    if not document.get("AccessKeyId") or not document.get("SecretAccessKey"):
        raise CredentialsUnavailable(f"{source}: the answer has no AccessKeyId or SecretAccessKey")
    return _credentials(source, document["AccessKeyId"], document["SecretAccessKey"], document.get("Token"),
                        document.get("Expiration"))


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def credentials_from_sts(status: int, body: bytes, source: str) -> Credentials:
    """An STS ``…Result/Credentials`` element, or the ``Error/Code`` of a refusal."""
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise CredentialsUnavailable(f"{source}: STS answered with a DTD, which it never does")
    from xml.etree import ElementTree  # here, not at import: only this answer needs it (worker memory)

    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - no DTD, so no entity expansion; 1 MiB at most
    except ElementTree.ParseError:
        raise CredentialsUnavailable(f"{source}: STS answered {status} with no readable XML") from None
    fields = {}
    for element in root.iter():
        if _local_name(element.tag) == "Credentials":
            fields = {_local_name(child.tag): (child.text or "").strip() for child in element}
            break
    if status != 200 or not fields:
        codes = [(e.text or "").strip() for e in root.iter() if _local_name(e.tag) == "Code"]
        code = codes[0] if codes and _ERROR_CODE.fullmatch(codes[0]) else "no credentials"
        raise CredentialsUnavailable(f"{source}: STS answered {status} ({code})")
    if not fields.get("AccessKeyId") or not fields.get("SecretAccessKey"):
        raise CredentialsUnavailable(f"{source}: STS answer has no AccessKeyId or SecretAccessKey")
    return _credentials(source, fields["AccessKeyId"], fields["SecretAccessKey"], fields.get("SessionToken"),
                        fields.get("Expiration"))


# --- the providers ------------------------------------------------------------------


@dataclass(frozen=True)
class StaticProvider:
    """Long-term (or fixed session) keys from the environment; never refreshed."""

    credentials: Credentials
    name: str = "environment"

    def fetch(self, now: datetime) -> Credentials:  # noqa: ARG002 - the Provider protocol
        return self.credentials


@dataclass(frozen=True)
class Sts:
    """Where STS is and how to reach it: the regional endpoint unless
    ``AWS_STS_REGIONAL_ENDPOINTS=legacy``, or ``AWS_ENDPOINT_URL_STS``."""

    endpoint: str
    region: str
    timeout: float = 10.0

    def call(self, source: str, params: Mapping[str, str], credentials: Credentials | None, now: datetime) -> Credentials:
        """One STS action by form POST; signed with ``credentials`` (our own SigV4) when given."""
        url = self.endpoint if urlsplit(self.endpoint).path else self.endpoint + "/"
        body = urlencode({**params, "Version": STS_VERSION}).encode()
        headers = {"Content-Type": _FORM}
        if credentials is not None:
            headers.update(sign_headers(credentials, "POST", url, headers=headers, body=body, region=self.region,
                                        service="sts", now=now))
        status, answer = _http(source, url, method="POST", headers=headers, data=body, timeout=self.timeout, local=False)
        return credentials_from_sts(status, answer, source)


@dataclass(frozen=True)
class WebIdentityProvider:
    """EKS IRSA and any OIDC federation: the token file (re-read each time, the kubelet
    rotates it) is exchanged by an unsigned ``AssumeRoleWithWebIdentity``."""

    role_arn: str
    token_file: str
    session_name: str
    sts: Sts
    name: str = "web-identity"

    def fetch(self, now: datetime) -> Credentials:
        try:
            token = Path(self.token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CredentialsUnavailable(f"{self.name}: cannot read AWS_WEB_IDENTITY_TOKEN_FILE ({type(exc).__name__})") from None
        if not token:
            raise CredentialsUnavailable(f"{self.name}: AWS_WEB_IDENTITY_TOKEN_FILE is empty")
        params = {"Action": "AssumeRoleWithWebIdentity", "RoleArn": self.role_arn,
                  "RoleSessionName": self.session_name, "WebIdentityToken": token}
        return self.sts.call(self.name, params, None, now)


@dataclass(frozen=True)
class ContainerProvider:
    """ECS task roles and EKS Pod Identity: GET the credentials URL, with the
    authorization token (its file re-read each time) when one is configured."""

    url: str
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    timeout: float = 2.0
    name: str = "container"

    def fetch(self, now: datetime) -> Credentials:  # noqa: ARG002 - the Provider protocol
        headers = {"Accept": "application/json"}
        token = self.token
        if self.token_file:
            try:
                token = Path(self.token_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise CredentialsUnavailable(
                    f"{self.name}: cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE ({type(exc).__name__})") from None
        if token:
            if "\r" in token or "\n" in token:
                raise CredentialsUnavailable(f"{self.name}: the authorization token contains a line break")
            headers["Authorization"] = token
        status, body = _http(self.name, self.url, headers=headers, timeout=self.timeout)
        if status != 200:
            raise CredentialsUnavailable(f"{self.name}: the endpoint answered {status}")
        return credentials_from_json(body, self.name)


@dataclass(frozen=True)
class InstanceMetadataProvider:
    """EC2 instance profiles through IMDSv2: PUT for a session token, then the role name
    and its credentials with that token. IMDSv1 (no token) is never used."""

    endpoint: str = IMDS_ENDPOINT
    timeout: float = 1.0
    name: str = "instance-metadata"

    def fetch(self, now: datetime) -> Credentials:  # noqa: ARG002 - the Provider protocol
        base = self.endpoint.rstrip("/")
        status, token = _http(self.name, f"{base}/latest/api/token", method="PUT", timeout=self.timeout,
                              headers={"X-aws-ec2-metadata-token-ttl-seconds": str(IMDS_TOKEN_TTL)})
        if status != 200 or not token.strip():
            raise CredentialsUnavailable(f"{self.name}: no IMDSv2 session token (answered {status}); IMDSv1 is not used")
        auth = {"X-aws-ec2-metadata-token": token.decode("ascii", "replace").strip()}
        path = f"{base}/latest/meta-data/iam/security-credentials/"
        status, roles = _http(self.name, path, headers=auth, timeout=self.timeout)
        role = roles.decode("utf-8", "replace").strip().splitlines()[0].strip() if status == 200 and roles.strip() else ""
        if not role or not re.fullmatch(r"[\w+=,.@-]{1,128}", role):
            raise CredentialsUnavailable(f"{self.name}: no instance profile role (answered {status})")
        status, body = _http(self.name, path + role, headers=auth, timeout=self.timeout)
        if status != 200:
            raise CredentialsUnavailable(f"{self.name}: the role's credentials answered {status}")
        return credentials_from_json(body, self.name)


@dataclass(frozen=True)
class AssumeRoleProvider:
    """``SIGNER_ROLE_ARN``: a narrower role assumed with whatever the chain found; the
    ``AssumeRole`` call is signed by this library's own :func:`sign_headers`."""

    source: Callable[[], Credentials]
    source_name: str
    role_arn: str
    session_name: str
    sts: Sts

    @property
    def name(self) -> str:
        return f"assume-role via {self.source_name}"

    def fetch(self, now: datetime) -> Credentials:
        params = {"Action": "AssumeRole", "RoleArn": self.role_arn, "RoleSessionName": self.session_name}
        return self.sts.call(self.name, params, self.source(), now)


# --- the chain ------------------------------------------------------------------------


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = _set(environ, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidCredentials(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 60:
        raise InvalidCredentials(f"{name} must be between 0 and 60 seconds")
    return value


def _url(value: str, name: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCredentials(f"{name} must be an http(s) URL")
    return value.rstrip("/") if not parts.path.strip("/") else value


def sts_from_env(environ: Mapping[str, str], region: str) -> Sts:
    override = _set(environ, "AWS_ENDPOINT_URL_STS")
    if override:
        return Sts(_url(override, "AWS_ENDPOINT_URL_STS"), region)
    mode = (_set(environ, "AWS_STS_REGIONAL_ENDPOINTS") or "regional").lower()
    if mode not in ("regional", "legacy"):
        raise InvalidCredentials("AWS_STS_REGIONAL_ENDPOINTS must be 'regional' or 'legacy'")
    if mode == "legacy":
        return Sts("https://sts.amazonaws.com", "us-east-1")
    suffix = ".amazonaws.com.cn" if region.startswith("cn-") else ".amazonaws.com"
    return Sts(f"https://sts.{region}{suffix}", region)


def _role_arn(value: str, name: str) -> str:
    if not _ROLE_ARN.fullmatch(value):
        raise InvalidCredentials(f"{name} must be a role ARN such as arn:aws:iam::123456789012:role/uploads")
    return value


def _session_name(environ: Mapping[str, str], name: str, default: str) -> str:
    value = _set(environ, name) or default
    if not _SESSION_NAME.fullmatch(value):
        raise InvalidCredentials(f"{name} must be 2-64 letters, digits or +=,.@_-")
    return value


def container_url(environ: Mapping[str, str]) -> str:
    """The relative URI (against 169.254.170.2) wins over the full URI, as in the SDKs; a
    plain-http full URI must point at loopback or the ECS/EKS link-local addresses."""
    relative = _set(environ, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    if relative:
        if not relative.startswith("/"):
            raise InvalidCredentials("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'")
        return CONTAINER_HOST + relative
    full = _url(environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"].strip(), "AWS_CONTAINER_CREDENTIALS_FULL_URI")
    parts = urlsplit(full)
    if parts.scheme == "http" and not _allowed_container_host(parts.hostname or ""):
        raise InvalidCredentials(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI over http must point at loopback, 169.254.170.2, "
            "169.254.170.23 or fd00:ec2::23 (use https for other hosts)")
    return full


def _allowed_container_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address in _CONTAINER_HOSTS


def base_provider(environ: Mapping[str, str], region: str) -> Provider:
    """The first provider of the chain whose variables are set (see the module docstring)."""
    static = ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID_FILE", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY_FILE")
    if any(name in environ for name in static):
        return StaticProvider(credentials_from_env(environ))
    token_file, role_arn = _set(environ, "AWS_WEB_IDENTITY_TOKEN_FILE"), _set(environ, "AWS_ROLE_ARN")
    if token_file or role_arn:
        if not (token_file and role_arn):
            raise InvalidCredentials("web identity needs both AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE")
        if not Path(token_file).is_file():
            raise InvalidCredentials("AWS_WEB_IDENTITY_TOKEN_FILE does not name a readable file")
        return WebIdentityProvider(
            _role_arn(role_arn, "AWS_ROLE_ARN"), token_file,
            _session_name(environ, "AWS_ROLE_SESSION_NAME", f"sigv4-signer-{int(current_time().timestamp())}"),
            sts_from_env(environ, region),
        )
    if _set(environ, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or _set(environ, "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        token_file = _set(environ, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        token = None if token_file else _set(environ, "AWS_CONTAINER_AUTHORIZATION_TOKEN")
        return ContainerProvider(container_url(environ), token, token_file,
                                 _seconds(environ, "AWS_METADATA_SERVICE_TIMEOUT", 2.0))
    if _flag(environ, "AWS_EC2_METADATA_DISABLED"):
        raise InvalidCredentials(
            "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_ROLE_ARN and "
            "AWS_WEB_IDENTITY_TOKEN_FILE, or AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI "
            "(instance metadata is off: AWS_EC2_METADATA_DISABLED)")
    endpoint = _url(_set(environ, "AWS_EC2_METADATA_SERVICE_ENDPOINT") or IMDS_ENDPOINT,
                    "AWS_EC2_METADATA_SERVICE_ENDPOINT")
    return InstanceMetadataProvider(endpoint, _seconds(environ, "AWS_METADATA_SERVICE_TIMEOUT", 1.0))


def credentials_chain(environ: Mapping[str, str], region: str, *,
                      now: Callable[[], datetime] | None = None) -> RefreshingCredentials:
    """The configured source of signing credentials, refreshed ahead of expiry; with
    ``SIGNER_ROLE_ARN`` the chain's credentials only sign ``AssumeRole``."""
    base = RefreshingCredentials(base_provider(environ, region), now=now)
    role_arn = _set(environ, "SIGNER_ROLE_ARN")
    if not role_arn:
        return base
    role = AssumeRoleProvider(
        base.get, base.name, _role_arn(role_arn, "SIGNER_ROLE_ARN"),
        _session_name(environ, "SIGNER_ROLE_SESSION_NAME", "sigv4-signer"), sts_from_env(environ, region),
    )
    return RefreshingCredentials(role, now=now)
