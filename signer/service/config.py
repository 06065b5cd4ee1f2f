"""Configuration: read and validate the environment once, into a frozen object.

Any problem raises :class:`ConfigError` whose message names the variable; the service
refuses to start rather than run half-configured.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from ..credentials import Credentials, read_secret
from ..environment import choice, flag, integer, items, optional_integer
from ..errors import CredentialsUnavailable, InvalidCredentials, InvalidSetting, SigningError
from ..post_policy import CANNED_ACLS
from ..providers import credentials_chain
from ..refresh import CredentialsStatus, RefreshingCredentials
from ..s3 import Bucket
from ..sigv4 import MAX_EXPIRES
from .errors import ConfigError, Unavailable
from .events import EventsQueue
from .finish import DEFAULT_MAX_PENDING, MAX_SHARDS, SETTLE, Expectation, Finish, PendingLedger, StoreClock
from .jwt_settings import ASYMMETRIC, HMAC, Issuer, key_url_allowed
from .kinds import DEFAULT, Kind, Kinds, load_kinds
from .networks import Network
from .notify import Webhook, webhook_from
from .publish import DEFAULT_PREFIX, DEFAULT_TEMPLATE, PublishSettings, publish, template_problem
from .rules import IDENTITY, Rules, is_reserved
from .settings import KNOWN_VARIABLES as KNOWN_VARIABLES  # re-exported: the names live in settings.py
from .settings import unknown_variables
from .sqs import Queue

if TYPE_CHECKING:
    from .jwt_callers import Verifier

MIN_TOKEN_LENGTH = 16
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?")


@dataclass(frozen=True)
class Config:
    credentials_source: RefreshingCredentials
    bucket: Bucket
    rules: Rules
    api_tokens: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    user_header: str | None = None
    allow_anonymous: bool = False
    cors_origins: frozenset[str] = frozenset()
    trusted_proxies: tuple[Network, ...] = (ipaddress.ip_network("127.0.0.1/32"),)
    max_body: int = 64 * 1024
    demo_page: bool = False
    s3_timeout: float = 10.0
    cookie_secret: bytes = field(default=b"", repr=False)
    publish: PublishSettings | None = None  # None: SIGNER_PUBLISH_BUCKET is not set
    webhook: Webhook | None = None
    finish_interval: int = 10
    max_pending_per_caller: int = DEFAULT_MAX_PENDING
    jwt_issuer: Issuer | None = None  # SIGNER_JWT_ISSUER: bearer JWTs from the app's OIDC issuer (#27)
    finish_shards: int = 1
    events: EventsQueue | None = None  # None: SIGNER_EVENTS_QUEUE_URL is not set
    warnings: tuple[str, ...] = ()  # said at start-up (app log, check-config); never fatal
    extra_kinds: tuple[Kind, ...] = ()  # the kinds of SIGNER_CONFIG (signer/service/kinds.py), validated

    @cached_property
    def kinds(self) -> Kinds:
        """Every upload kind: ``default`` (this object's bucket, rules and publish settings) and the file's."""
        default = Kind(DEFAULT, self.bucket, self.rules, publish=self.publish)
        return Kinds({DEFAULT: default, **{kind.name: kind for kind in self.extra_kinds}})

    @property
    def credentials(self) -> Credentials:
        """The current signing credentials (refreshed ahead of expiry by the source);
        once they have expired and no refresh succeeds, a 503 ``credentials_unavailable``."""
        try:
            return self.credentials_source.get()
        except CredentialsUnavailable as exc:
            raise Unavailable("credentials_unavailable", exc.message) from None

    @cached_property
    def finish(self) -> Finish:
        """The finish step's view of this configuration (signer/service/finish.py), made once:
        the request paths that record uploads ask for it on every request."""
        return self._finish_for(self.kinds.by_name[DEFAULT], PendingLedger(self.max_pending_per_caller),
                                events=self.events is not None)

    @cached_property
    def jwt(self) -> Verifier | None:
        """The issuer's verifier and its key cache, one per process (PyJWT is loaded only here,
        so the CLI's presign runs without it)."""
        if self.jwt_issuer is None:
            return None
        from .jwt_callers import Verifier

        return Verifier(self.jwt_issuer)

    @cached_property
    def finishes(self) -> Mapping[str, Finish]:
        """The finish step of every kind (its bucket and prefix, its publish settings), by kind name;
        one pending ledger for all, so a caller's share counts across kinds."""
        ledger = self.finish.pending
        return {name: self.finish if name == DEFAULT else self._finish_for(kind, ledger)
                for name, kind in self.kinds.by_name.items()}

    def finish_of(self, kind: Kind) -> Finish:
        return self.finishes[kind.name]

    def _finish_for(self, kind: Kind, ledger: PendingLedger, *, events: bool = False) -> Finish:
        """One kind's finish step. The events queue (SIGNER_EVENTS_QUEUE_URL) serves the default
        kind's bucket; every other kind's markers are swept. All share the default's store clock."""
        publishing = kind.publish is not None and kind.publish.on_upload
        clock = StoreClock() if kind.name == DEFAULT else self.finish.clock
        return Finish(lambda: self.credentials, kind.bucket, kind.rules.key_prefix, self.s3_timeout,
                      self.finish_interval, self.webhook,
                      (lambda expected: self._publish_unseen(kind, expected)) if publishing else None, ledger,
                      check_content=kind.check_content, shards=self.finish_shards, events=events,
                      horizon=kind.rules.max_expires + kind.rules.clock_skew + SETTLE, clock=clock)

    def _publish_unseen(self, kind: Kind, expected: Expectation) -> None:
        """Publish, for the sweepers, an upload whose completion the service did not see."""
        if kind.publish is not None:
            folder = expected.folder[len(kind.rules.key_prefix):].rstrip("/") or None
            publish(self.finish_of(kind), kind.publish, kind.rules.for_caller(folder), expected.identity, expected.key)

    def allows_origin(self, origin: str | None) -> bool:
        """Whether a browser page from ``origin`` may call the service (CORS)."""
        return bool(origin) and (origin in self.cors_origins or "*" in self.cors_origins)

    def credentials_status(self) -> CredentialsStatus:
        """Which provider, whether usable, when they expire: never the secret."""
        return self.credentials_source.status()


WARNED = "SIGV4_CONFIG_WARNED"
"""Set in the environment once the warnings were said (gunicorn.conf.py, in the master), so each
worker's create_app does not say them again."""


def _tokens(raw: str) -> tuple[tuple[str, bytes], ...]:
    tokens: list[tuple[str, bytes]] = []
    for number, item in enumerate((part.strip() for part in raw.split(",")), start=1):
        if not item:
            continue
        name, sep, token = item.partition(":")
        if not sep or not IDENTITY.fullmatch(name):
            raise ConfigError(
                f"SIGNER_API_TOKENS entry {number} must be name:token with a name of letters, digits, '.', '_', '@', '-'"
            )
        if is_reserved(name):
            raise ConfigError(
                f"SIGNER_API_TOKENS: the name {name!r} is reserved (anonymous visitors and gateway users have "
                "their own folders <prefix>anonymous/ and <prefix>user/)"
            )
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(f"SIGNER_API_TOKENS token for {name!r} must be at least {MIN_TOKEN_LENGTH} characters")
        tokens.append((name, token.encode("utf-8")))
    if len({name for name, _ in tokens}) != len(tokens):
        raise ConfigError("SIGNER_API_TOKENS has the same name twice")
    return tuple(tokens)


def trusted_proxies(environ: Mapping[str, str]) -> tuple[Network, ...]:
    """SIGNER_TRUSTED_PROXIES: the peers whose X-Forwarded-* headers count (default 127.0.0.1)."""
    try:
        return tuple(
            ipaddress.ip_network(item, strict=False) for item in items(environ, "SIGNER_TRUSTED_PROXIES") or ["127.0.0.1"]
        )
    except ValueError as exc:
        raise ConfigError(f"SIGNER_TRUSTED_PROXIES: {exc}") from None


def max_body(environ: Mapping[str, str]) -> int:
    """SIGNER_MAX_BODY: the largest request body read (the app's and the worker's limit)."""
    return integer(environ, "SIGNER_MAX_BODY", 64 * 1024, 1024, 10 * 1024 * 1024)


def load_config(environ: Mapping[str, str] | None = None, *, serving: bool = True) -> Config:
    """Build the whole configuration from ``environ`` (default: ``os.environ``). ``serving=False``
    (the CLI, which has no callers to authenticate) does not require a way to identify callers."""
    try:
        return _load(dict(os.environ if environ is None else environ), serving)
    except InvalidSetting as exc:
        raise ConfigError(exc.message) from None


def _load(env: dict[str, str], serving: bool) -> Config:
    region = env.get("AWS_REGION", "").strip() or env.get("AWS_DEFAULT_REGION", "").strip() or "us-east-1"
    try:
        credentials = credentials_chain(env, region)
        raw_tokens = read_secret(env, "SIGNER_API_TOKENS") or ""
        cookie_secret = read_secret(env, "SIGNER_COOKIE_SECRET")
        webhook_secret = read_secret(env, "SIGNER_WEBHOOK_SECRET")
        jwt_secret = read_secret(env, "SIGNER_JWT_SECRET")
    except InvalidCredentials as exc:
        raise ConfigError(exc.message) from None

    bucket_name = env.get("SIGNER_BUCKET", "").strip()
    if not bucket_name:
        raise ConfigError("SIGNER_BUCKET is required")
    endpoint = env.get("SIGNER_ENDPOINT_URL", "").strip() or None
    style = choice(env, "SIGNER_ADDRESSING_STYLE", ("virtual", "path"), "path" if endpoint else "virtual")
    try:
        bucket = Bucket(bucket_name, region, endpoint, style)
    except SigningError as exc:
        variable = {"invalid_bucket": "SIGNER_BUCKET"}.get(exc.code, "SIGNER_ENDPOINT_URL / AWS_REGION")
        raise ConfigError(f"{variable}: {exc.message}") from None

    prefix = env.get("SIGNER_KEY_PREFIX", "uploads/")
    if prefix and (not prefix.endswith("/") or prefix.startswith("/") or ".." in prefix.split("/")):
        raise ConfigError("SIGNER_KEY_PREFIX must end with '/' and not start with '/' (e.g. 'uploads/')")
    types = tuple(t.lower() for t in items(env, "SIGNER_ALLOWED_CONTENT_TYPES"))
    for media in types:
        if not re.fullmatch(r"[a-z0-9!#$&^_.+-]+/([a-z0-9!#$&^_.+-]+|\*)|\*/\*", media):
            raise ConfigError(f"SIGNER_ALLOWED_CONTENT_TYPES: {media!r} is not type/subtype or type/*")
    methods = frozenset(m.upper() for m in items(env, "SIGNER_ALLOWED_METHODS")) or frozenset({"GET", "PUT", "HEAD"})
    if not methods <= {"GET", "PUT", "HEAD", "DELETE"}:
        raise ConfigError("SIGNER_ALLOWED_METHODS may list only GET, PUT, HEAD and DELETE")
    acls = frozenset(items(env, "SIGNER_ALLOWED_ACLS")) or frozenset({"private"})
    if not acls <= CANNED_ACLS:
        raise ConfigError(f"SIGNER_ALLOWED_ACLS may list only {', '.join(sorted(CANNED_ACLS))}")
    rules = Rules(
        key_prefix=prefix,
        max_size=optional_integer(env, "SIGNER_MAX_SIZE", 1, 5 * 1024**4),
        allowed_content_types=types,
        max_expires=integer(env, "SIGNER_MAX_EXPIRES", 3600, 1, MAX_EXPIRES),
        allowed_methods=methods,
        allowed_acls=acls,
        clock_skew=integer(env, "SIGNER_CLOCK_SKEW", 900, 0, 3600),
        require_checksum=flag(env, "SIGNER_REQUIRE_CHECKSUM"),
        overwrite=choice(env, "SIGNER_OVERWRITE", ("deny", "allow"), "deny"),
    )

    tokens = _tokens(raw_tokens)
    anonymous = flag(env, "SIGNER_ALLOW_ANONYMOUS")
    user_header = env.get("SIGNER_USER_HEADER", "").strip() or None
    if user_header and not re.fullmatch(r"[A-Za-z0-9-]+", user_header):
        raise ConfigError("SIGNER_USER_HEADER must be a header name such as X-Auth-User")
    jwt = jwt_issuer(env, jwt_secret)
    if serving and not tokens and not anonymous and not user_header and not jwt:
        raise ConfigError(
            "SIGNER_API_TOKENS is required (or SIGNER_USER_HEADER behind a gateway, SIGNER_JWT_ISSUER for the app's "
            "login, or SIGNER_ALLOW_ANONYMOUS=true)"
        )
    origins = frozenset(o.rstrip("/") for o in items(env, "SIGNER_CORS_ORIGINS"))
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"SIGNER_CORS_ORIGINS: {origin!r} must be scheme://host[:port]")
    secret = _cookie_secret(cookie_secret, credentials, anonymous and serving,
                            "SIGNER_PUBLISH_BUCKET" if env.get("SIGNER_PUBLISH_BUCKET", "").strip() else None)
    publish_settings = _publish(env, bucket, prefix, secret)
    return Config(
        credentials_source=credentials,
        bucket=bucket,
        rules=rules,
        api_tokens=tokens,
        user_header=user_header,
        allow_anonymous=anonymous,
        cors_origins=origins,
        trusted_proxies=trusted_proxies(env),
        max_body=max_body(env),
        demo_page=flag(env, "SIGNER_DEMO_PAGE"),
        s3_timeout=float(integer(env, "SIGNER_S3_TIMEOUT", 10, 1, 300)),
        webhook=webhook_from(env.get("SIGNER_WEBHOOK_URL", "").strip() or None, webhook_secret, 5.0),
        finish_interval=integer(env, "SIGNER_FINISH_INTERVAL", 10, 1, 3600),
        max_pending_per_caller=integer(env, "SIGNER_MAX_PENDING_PER_CALLER", DEFAULT_MAX_PENDING, 1, 1_000_000),
        jwt_issuer=jwt,
        finish_shards=_finish_shards(env),
        events=_events(env, region),
        warnings=tuple(unknown_variables(env)),
        cookie_secret=secret,
        publish=publish_settings,
        extra_kinds=_kinds(env, Kind(DEFAULT, bucket, rules, publish=publish_settings), secret),
    )


def jwt_issuer(env: Mapping[str, str], secret: str | None) -> Issuer | None:
    """The one issuer (SIGNER_JWT_ISSUER and its settings) whose bearer JWTs name callers (issue #27; docs/jwt.md)."""
    # SIGNER_JWT_ISSUER: the exact iss to require; unset, JWTs are not accepted at all
    issuer = env.get("SIGNER_JWT_ISSUER", "").strip()
    # SIGNER_JWT_AUDIENCE: comma list; a token's aud must name one of them
    audiences = tuple(items(env, "SIGNER_JWT_AUDIENCE"))
    # SIGNER_JWT_JWKS_URL: the key set; unset, found through <issuer>/.well-known/openid-configuration
    jwks_url = env.get("SIGNER_JWT_JWKS_URL", "").strip() or None
    # SIGNER_JWT_ALGORITHMS: comma list (default RS256,ES256); never none, HS* only with SIGNER_JWT_SECRET
    algorithms = tuple(items(env, "SIGNER_JWT_ALGORITHMS")) or ("RS256", "ES256")
    # SIGNER_JWT_IDENTITY_CLAIM: the claim naming the user's folder <prefix>user/<claim>/ (default sub)
    claim = env.get("SIGNER_JWT_IDENTITY_CLAIM", "").strip() or "sub"
    # SIGNER_JWT_LEEWAY: seconds of clock skew allowed on exp, nbf, iat (default 60)
    leeway = integer(env, "SIGNER_JWT_LEEWAY", 60, 0, 600)
    # SIGNER_JWT_SECRET (or _FILE): the HMAC key, for issuers that sign HS256 (Supabase's legacy secret)
    if not issuer:
        for variable in ("SIGNER_JWT_AUDIENCE", "SIGNER_JWT_JWKS_URL", "SIGNER_JWT_ALGORITHMS",
                         "SIGNER_JWT_IDENTITY_CLAIM", "SIGNER_JWT_LEEWAY", "SIGNER_JWT_SECRET", "SIGNER_JWT_SECRET_FILE"):
            if env.get(variable, "").strip():
                raise ConfigError(f"{variable} needs SIGNER_JWT_ISSUER (the iss the tokens must carry)")
        return None
    if not audiences:
        raise ConfigError("SIGNER_JWT_AUDIENCE is required with SIGNER_JWT_ISSUER (the aud your tokens carry: "
                          "a client id, an API identifier)")
    needs_keys = bool(ASYMMETRIC & set(algorithms))
    if needs_keys and not key_url_allowed(issuer) and jwks_url is None:
        raise ConfigError("SIGNER_JWT_ISSUER must be an https:// URL (http only on loopback) to find its keys; "
                          "or set SIGNER_JWT_JWKS_URL")
    if jwks_url is not None and not key_url_allowed(jwks_url):
        raise ConfigError("SIGNER_JWT_JWKS_URL must be https:// (http only to 127.0.0.1, ::1 or localhost)")
    for algorithm in algorithms:
        if algorithm in HMAC:
            if secret is None:
                raise ConfigError(f"SIGNER_JWT_ALGORITHMS: {algorithm} needs SIGNER_JWT_SECRET (its shared key)")
        elif algorithm not in ASYMMETRIC:
            raise ConfigError(f"SIGNER_JWT_ALGORITHMS: {algorithm!r} is not one of "
                              f"{', '.join(sorted(ASYMMETRIC | HMAC))} ('none' never is)")
    if secret is not None:
        if not HMAC & set(algorithms):
            raise ConfigError("SIGNER_JWT_SECRET is set but SIGNER_JWT_ALGORITHMS lists no HS256/HS384/HS512")
        if len(secret) < 32:
            raise ConfigError("SIGNER_JWT_SECRET must be at least 32 characters")
    if not re.fullmatch(r"[A-Za-z0-9_.:/-]{1,100}", claim):
        raise ConfigError("SIGNER_JWT_IDENTITY_CLAIM must be a claim name such as sub or email")
    return Issuer(issuer=issuer, audiences=audiences, algorithms=algorithms, jwks_url=jwks_url, identity_claim=claim,
                  leeway=leeway, secret=None if secret is None else secret.encode("utf-8"))


def _finish_shards(env: Mapping[str, str]) -> int:
    """The finish step's settings for many uploads (issue #30; docs/events.md)."""
    # SIGNER_FINISH_SHARDS: how many key prefixes new pending markers spread over (1-256; default 1).
    return integer(env, "SIGNER_FINISH_SHARDS", 1, 1, MAX_SHARDS)


def _events(env: Mapping[str, str], region: str) -> EventsQueue | None:
    """SIGNER_EVENTS_QUEUE_URL, with the region its requests are signed for (docs/events.md)."""
    # SIGNER_EVENTS_QUEUE_URL: the SQS queue receiving the bucket's ObjectCreated events (default: none).
    url = env.get("SIGNER_EVENTS_QUEUE_URL", "").strip()
    if url and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?/[A-Za-z0-9._~/-]+", url):
        raise ConfigError("SIGNER_EVENTS_QUEUE_URL must be an SQS queue URL, "
                          "https://sqs.<region>.amazonaws.com/<account>/<queue>")
    return EventsQueue(Queue.at(url, region)) if url else None


def _kinds(env: Mapping[str, str], default: Kind, secret: bytes) -> tuple[Kind, ...]:
    """The upload kinds beside ``default`` (issue #26), validated now so a bad file stops start-up."""
    # SIGNER_CONFIG: path of a TOML file of [kinds.<name>] tables (docs/kinds.md); unset: only `default`.
    path = env.get("SIGNER_CONFIG", "").strip() or None
    return tuple(kind for kind in load_kinds(path, default, secret).by_name.values() if kind.name != DEFAULT)


def _publish(env: Mapping[str, str], uploads: Bucket, key_prefix: str, secret: bytes) -> PublishSettings | None:
    """The publish settings: the public bucket (in the same store: S3 copies server-side), the
    name template, the public URL base. In the upload bucket itself, the public prefix and
    SIGNER_KEY_PREFIX must not overlap, or a caller could presign a PUT over a public object."""
    name = env.get("SIGNER_PUBLISH_BUCKET", "").strip()
    if not name:
        for variable in ("SIGNER_PUBLISH_DELETE_SOURCE", "SIGNER_PUBLISH_ON_UPLOAD", "SIGNER_PUBLISH_PREFIX",
                         "SIGNER_PUBLISH_TEMPLATE", "SIGNER_PUBLISH_URL"):
            if env.get(variable, "").strip():
                raise ConfigError(f"{variable} needs SIGNER_PUBLISH_BUCKET (the bucket to publish to)")
        return None
    try:
        bucket = Bucket(name, uploads.region, uploads.endpoint_url, uploads.addressing_style)
    except SigningError as exc:
        raise ConfigError(f"SIGNER_PUBLISH_BUCKET: {exc.message}") from None
    prefix = env.get("SIGNER_PUBLISH_PREFIX", DEFAULT_PREFIX).strip()
    if prefix and (not prefix.endswith("/") or prefix.startswith("/") or {".", ".."} & set(prefix.split("/"))):
        raise ConfigError("SIGNER_PUBLISH_PREFIX must end with '/' and not start with '/' (e.g. 'public/')")
    if name == uploads.name and (prefix.startswith(key_prefix) or key_prefix.startswith(prefix)):
        raise ConfigError(
            f"SIGNER_PUBLISH_PREFIX {prefix!r} overlaps SIGNER_KEY_PREFIX {key_prefix!r} in the same bucket: "
            "callers could overwrite public objects (choose e.g. 'public/' beside 'uploads/', or another bucket)"
        )
    template = env.get("SIGNER_PUBLISH_TEMPLATE", "").strip() or DEFAULT_TEMPLATE
    problem = template_problem(template)
    if problem:
        raise ConfigError(f"SIGNER_PUBLISH_TEMPLATE {problem}")
    public_url = env.get("SIGNER_PUBLISH_URL", "").strip() or None
    if public_url is not None:
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?", public_url):
            raise ConfigError("SIGNER_PUBLISH_URL must be http(s)://host[:port][/path], e.g. https://cdn.example/")
        public_url = public_url if public_url.endswith("/") else public_url + "/"
    return PublishSettings(
        bucket=bucket, secret=secret, prefix=prefix, template=template, public_url=public_url,
        delete_source=flag(env, "SIGNER_PUBLISH_DELETE_SOURCE"), on_upload=flag(env, "SIGNER_PUBLISH_ON_UPLOAD"),
    )


def _cookie_secret(configured: str | None, credentials: RefreshingCredentials, needed: bool,
                   needed_by: str | None = None) -> bytes:
    """The service's own HMAC key (visitor cookies, Companion upload-id seals):
    SIGNER_COOKIE_SECRET, or, for static credentials from the environment, a key derived
    from the AWS secret key: every worker and replica with the same credentials derives the
    same one (a per-process random secret would fail as soon as a request lands on another
    gunicorn worker), and the HMAC reveals nothing of the key. Credentials that rotate (a role,
    a container or instance profile) would start every visitor afresh at each rotation, so
    with those, anonymous mode requires SIGNER_COOKIE_SECRET."""
    if configured is not None:
        if len(configured) < 32:
            raise ConfigError("SIGNER_COOKIE_SECRET must be at least 32 characters")
        return configured.encode("utf-8")
    if credentials.name != "environment":
        if needed_by:
            raise ConfigError(
                f"SIGNER_COOKIE_SECRET is required with {needed_by} when the credentials come from "
                f"{credentials.name} (they rotate; the key that names public objects must not)"
            )
        if not needed:
            return b""  # nothing stable to derive from; Companion upload ids go unsealed
        raise ConfigError(
            "SIGNER_COOKIE_SECRET is required with SIGNER_ALLOW_ANONYMOUS when the credentials come from "
            f"{credentials.name} (they rotate; the visitor cookie key must not)"
        )
    label = b"sigv4-signer anonymous visitor cookie v1"
    return hmac.new(credentials.get().secret_key.encode("utf-8"), label, hashlib.sha256).digest()
