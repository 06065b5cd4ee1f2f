"""The one table of settings: every environment variable the service, the CLI and the scripts read,
with its default, a one-line description and its section.

It drives the list of known ``SIGNER_*`` names (the start-up warning for a misspelt one, with "did
you mean") and the configuration reference, ``docs/configuration.md``, which is generated from it
(``python -m signer.service.settings --markdown > docs/configuration.md``; a test fails when the
committed page is stale or when a variable read anywhere in ``signer/`` or ``scripts/`` is missing
here). Parsing and validation stay in :mod:`signer.service.config` and
:mod:`signer.service.server`: this module only names things, so adding a setting is one row.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: str  # as a reader should read it: a value in backquotes, or words
    description: str
    section: str
    file: bool = False  # also read from a file named by ``<name>_FILE`` (secrets)


# Sections, in the order the reference shows them.
STORE = "The store"
CREDENTIALS = "Credentials"
RULES = "Rules before signing"
CALLERS = "Callers"
FINISH = "The finish step and webhooks"
PUBLISH = "Publishing"
SERVER = "Server and front"
LOCAL = "The local default (scripts/run.sh) and tests"

SETTINGS: tuple[Setting, ...] = (
    # The store
    Setting("SIGNER_BUCKET", "required", "the one bucket this service signs for", STORE),
    Setting("AWS_REGION", "`us-east-1`", "the bucket's region (`AWS_DEFAULT_REGION` is read too)", STORE),
    Setting("AWS_DEFAULT_REGION", "none", "read when `AWS_REGION` is not set", STORE),
    Setting("SIGNER_ENDPOINT_URL", "AWS", "a custom S3 endpoint, `scheme://host[:port]`, e.g. `http://s3.localhost:9000`",
            STORE),
    Setting("SIGNER_ADDRESSING_STYLE", "`virtual` on AWS, `path` on a custom endpoint",
            "`virtual` (`bucket.host/key`) or `path` (`host/bucket/key`); over https a dotted bucket name is always "
            "path-style", STORE),
    Setting("SIGNER_S3_TIMEOUT", "`10`", "timeout in seconds for the service's own S3 calls (HEAD, DELETE, list, "
            "multipart create/list/abort; complete waits at least 30, a publish copy at least 300)", STORE),
    # Credentials
    Setting("AWS_ACCESS_KEY_ID", "none: the chain in [Deploying on AWS](deploying.md#on-aws)",
            "static signing key id; with `AWS_SECRET_ACCESS_KEY` it wins over every provider", CREDENTIALS, file=True),
    Setting("AWS_SECRET_ACCESS_KEY", "none", "static signing secret", CREDENTIALS, file=True),
    Setting("AWS_SESSION_TOKEN", "none", "session token for temporary credentials", CREDENTIALS, file=True),
    Setting("AWS_ROLE_ARN", "none", "web identity (EKS IRSA): the role to assume; with "
            "`AWS_WEB_IDENTITY_TOKEN_FILE`, both or neither", CREDENTIALS),
    Setting("AWS_WEB_IDENTITY_TOKEN_FILE", "none", "web identity: the token file, re-read at each refresh", CREDENTIALS),
    Setting("AWS_ROLE_SESSION_NAME", "`sigv4-signer-<unix time>`", "session name for the web identity role",
            CREDENTIALS),
    Setting("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "none", "ECS task role: path on `http://169.254.170.2`",
            CREDENTIALS),
    Setting("AWS_CONTAINER_CREDENTIALS_FULL_URI", "none", "container credentials URL (EKS Pod Identity); plain http "
            "only to loopback, `169.254.170.2`, `169.254.170.23`, `fd00:ec2::23`", CREDENTIALS),
    Setting("AWS_CONTAINER_AUTHORIZATION_TOKEN", "none", "`Authorization` header for the container endpoint (the "
            "`_FILE` form is re-read at each refresh and wins)", CREDENTIALS, file=True),
    Setting("AWS_EC2_METADATA_DISABLED", "`false`", "`true`: never ask the instance metadata service (IMDSv2), so no "
            "provider at all is an error at start-up", CREDENTIALS),
    Setting("AWS_EC2_METADATA_SERVICE_ENDPOINT", "`http://169.254.169.254`", "instance metadata endpoint", CREDENTIALS),
    Setting("AWS_METADATA_SERVICE_TIMEOUT", "`2` (container), `1` (IMDS)",
            "seconds per call to the container or instance metadata endpoint", CREDENTIALS),
    Setting("AWS_STS_REGIONAL_ENDPOINTS", "`regional`", "`regional` (`sts.<AWS_REGION>.amazonaws.com`) or `legacy` "
            "(`sts.amazonaws.com`)", CREDENTIALS),
    Setting("AWS_ENDPOINT_URL_STS", "AWS", "another STS endpoint (tests, S3-compatible stores with an STS)",
            CREDENTIALS),
    Setting("SIGNER_ROLE_ARN", "none", "assume this (narrower) role with whatever the chain found; the `AssumeRole` "
            "call is signed by this library", CREDENTIALS),
    Setting("SIGNER_ROLE_SESSION_NAME", "`sigv4-signer`", "session name for `SIGNER_ROLE_ARN`", CREDENTIALS),
    # Rules before signing
    Setting("SIGNER_KEY_PREFIX", "`uploads/`", "every key must start with it; each caller gets its own folder under "
            "it (see [Who writes where](security.md#who-writes-where))", RULES),
    Setting("SIGNER_CONFIG", "none: only the kind `default`", "path of a TOML file of upload kinds, "
            "`[kinds.<name>]` tables with their own bucket and rules; the variables here describe `default` "
            "([Upload kinds](kinds.md))", RULES),
    Setting("SIGNER_MAX_SIZE", "no limit", "largest upload in bytes; when set, PUT URLs sign `Content-Length` and POST "
            "policies always carry `content-length-range`", RULES),
    Setting("SIGNER_ALLOWED_CONTENT_TYPES", "any", "comma list of media types, `image/*` wildcards (`image/*` does not "
            "admit `image/svg+xml`, which can carry script: list it by name); when set, uploads must name one", RULES),
    Setting("SIGNER_MAX_EXPIRES", "`3600`", "longest lifetime of a signature in seconds, at most 604800 (requests "
            "default to min(300, this))", RULES),
    Setting("SIGNER_ALLOWED_METHODS", "`GET,PUT,HEAD`", "methods `/v1/presign` signs, from GET, PUT, HEAD, DELETE",
            RULES),
    Setting("SIGNER_OVERWRITE", "`deny`", "`deny`: every upload the service can condition signs `If-None-Match: *`, "
            "so the store refuses it onto an existing key (see [Integrity and no overwrite]"
            "(security.md#integrity-and-no-overwrite)); `allow`: an upload may replace an object", RULES),
    Setting("SIGNER_REQUIRE_CHECKSUM", "`false`", "`true` refuses to sign a PUT (a presigned upload or a part) "
            "without a declared checksum", RULES),
    Setting("SIGNER_ALLOWED_ACLS", "`private`", "canned ACLs uploads may set", RULES),
    Setting("SIGNER_CLOCK_SKEW", "`900`", "how far (seconds) a client-chosen `x-amz-date` may be from server time",
            RULES),
    Setting("SIGNER_MAX_BODY", "`65536`", "request body cap in bytes", RULES),
    # Callers
    Setting("SIGNER_API_TOKENS", "required unless `SIGNER_USER_HEADER` or `SIGNER_ALLOW_ANONYMOUS`",
            "comma list of `name:token` (token ≥ 16 characters); the name is the caller's identity; `anonymous` and "
            "`user` are reserved in any letter case", CALLERS, file=True),
    Setting("SIGNER_USER_HEADER", "none", "header a trusted gateway sets with the authenticated user id (e.g. "
            "`X-Auth-User`); honoured only from `SIGNER_TRUSTED_PROXIES`", CALLERS),
    Setting("SIGNER_ALLOW_ANONYMOUS", "`false`", "`true` lets callers without a token sign, each visitor in its own "
            "`<prefix>anonymous/<id>/` bound to a signed cookie; logged loudly at start-up", CALLERS),
    Setting("SIGNER_COOKIE_SECRET", "derived from `AWS_SECRET_ACCESS_KEY` (static keys)",
            "the service's own HMAC key (≥ 32 characters): signs visitors' cookies, seals Uppy Companion upload ids "
            "and names published objects; required with anonymous mode or publishing when the credentials rotate "
            "(a role, a container, an instance)", CALLERS, file=True),
    Setting("SIGNER_CORS_ORIGINS", "none", "comma list of browser origins (`https://app.example`) allowed to call the "
            "service", CALLERS),
    Setting("SIGNER_TRUSTED_PROXIES", "`127.0.0.1`", "comma list of proxy addresses/networks allowed to set "
            "`X-Forwarded-*` and the user header", CALLERS),
    Setting("SIGNER_DEMO_PAGE", "`false`", "serve the demo page at `/`", CALLERS),
    Setting("SIGNER_JWT_ISSUER", "unset: JWTs are not accepted", "the exact `iss` of the app's OIDC login; a bearer "
            "JWT from it is a caller writing under `<prefix>user/<claim>/` ([JWT callers](jwt.md))", CALLERS),
    Setting("SIGNER_JWT_AUDIENCE", "required with `SIGNER_JWT_ISSUER`", "comma list; a token's `aud` must name one",
            CALLERS),
    Setting("SIGNER_JWT_JWKS_URL", "from `<issuer>/.well-known/openid-configuration`", "the issuer's key set (https, "
            "or http to loopback only)", CALLERS),
    Setting("SIGNER_JWT_ALGORITHMS", "`RS256,ES256`", "algorithms accepted; never `none`; `HS*` only with "
            "`SIGNER_JWT_SECRET`", CALLERS),
    Setting("SIGNER_JWT_IDENTITY_CLAIM", "`sub`", "the claim that names the user's folder", CALLERS),
    Setting("SIGNER_JWT_LEEWAY", "`60`", "seconds of clock skew allowed on `exp`, `nbf` and `iat` (0–600)", CALLERS),
    Setting("SIGNER_JWT_SECRET", "none", "the shared key for HMAC-signed tokens, at least 32 characters", CALLERS,
            file=True),
    # The finish step and webhooks
    Setting("SIGNER_WEBHOOK_URL", "none", "where the finish step POSTs one signed JSON event per finished upload "
            "(`http(s)://host[:port][/path]`; see [Tell the app](finish.md#tell-the-app-webhooks)); only this URL is "
            "ever called", FINISH),
    Setting("SIGNER_WEBHOOK_SECRET", "none", "the HMAC-SHA256 key of the webhook's `Signer-Signature` header, ≥ 32 "
            "characters; required with `SIGNER_WEBHOOK_URL`; never in an event or a log line", FINISH, file=True),
    Setting("SIGNER_FINISH_INTERVAL", "`10`", "the pace of each replica's one sweeper of the pending markers (idle "
            "pauses of 3, 6, then 9 intervals), and the first webhook retry delay (then doubling, at most an hour)", FINISH),
    Setting("SIGNER_FINISH_SHARDS", "`1`", "how many key prefixes new pending markers spread over (1–256), so the "
            "store's per-prefix write limit grows with the deployment ([At scale](events.md))", FINISH),
    Setting("SIGNER_EVENTS_QUEUE_URL", "none: markers are swept", "an SQS queue receiving the bucket's "
            "`ObjectCreated` events; uploads are finished from them ([At scale](events.md))", FINISH),
    Setting("SIGNER_MAX_PENDING_PER_CALLER", "`200`", "uploads one caller (anonymous visitors: one client address, "
            "an IPv6 client's /64) may record for the finish step within 15 minutes, in each worker process; more "
            "are refused `429` `too_many_pending` before anything is signed", FINISH),
    # Publishing
    Setting("SIGNER_PUBLISH_BUCKET", "none", "where [publish](curl.md#publishing-an-upload) copies uploads: a bucket "
            "of the same store, possibly `SIGNER_BUCKET` itself; unset, publishing is off (403 "
            "`publish_not_configured`)", PUBLISH),
    Setting("SIGNER_PUBLISH_PREFIX", "`public/`", "public names start with it; in `SIGNER_BUCKET` itself it must not "
            "overlap `SIGNER_KEY_PREFIX`", PUBLISH),
    Setting("SIGNER_PUBLISH_TEMPLATE", "`{identity}/{yyyy}/{mm}/{dd}/{slug}{ext}`", "the rest of a public name, from "
            "`{identity}`, `{yyyy}`, `{mm}`, `{dd}` (the upload's date), `{slug}` (required) and `{ext}`", PUBLISH),
    Setting("SIGNER_PUBLISH_URL", "the publish bucket's object URL", "base of the public URLs answered (a CDN in "
            "front of the bucket), the public key appended", PUBLISH),
    Setting("SIGNER_PUBLISH_DELETE_SOURCE", "`false`", "`true`: delete the original once copied", PUBLISH),
    Setting("SIGNER_PUBLISH_ON_UPLOAD", "`false`", "`true`: Fine Uploader's `/s3/success`, Uppy's Companion complete "
            "and the finish step's sweepers publish uploads as they finish", PUBLISH),
    # Server and front
    Setting("SIGNER_BIND", "`0.0.0.0:8080` (the image; `scripts/run.sh`: `127.0.0.1:8080`)",
            "the address clients connect to, `host:port` (the front listens there; `unix:/path` only with "
            "`SIGNER_FRONT=none`)", SERVER),
    Setting("SIGNER_WORKERS", "available CPUs + 1", "gunicorn worker processes (see [Workers, threads and slow "
            "clients](deploying.md#workers-threads-and-slow-clients))", SERVER),
    Setting("SIGNER_THREADS", "`32`", "threads per worker", SERVER),
    Setting("SIGNER_METRICS_BIND", "unset: no metrics (`scripts/run.sh`: `127.0.0.1:9102`)", "`host:port` where "
            "Prometheus' `/metrics` is served on a listener of its own, never the public port ([Metrics](metrics.md))",
            SERVER),
    Setting("SIGNER_FRONT", "`haproxy`", "`haproxy`: gunicorn's master starts HAProxy on `SIGNER_BIND` in front of "
            "itself; `none`: gunicorn listens on `SIGNER_BIND`, only behind your own buffering proxy", SERVER),
    Setting("SIGNER_REQUEST_TIMEOUT", "`5`", "seconds a request's headers may take to reach the front, and its body "
            "as long again; later, it is answered 408 and closed", SERVER),
    Setting("SIGNER_MAX_CONNECTIONS_PER_PEER", "`64`", "connections one client address (IPv6: its /64) may hold open "
            "at the front; from a trusted proxy: requests in progress per forwarded address", SERVER),
    Setting("SIGNER_MAX_CONNECTIONS", "`4096`", "connections the front holds at once, all clients together", SERVER),
    # The local default and tests
    Setting("LOCAL_S3_PORT", "`9000`", "`scripts/run.sh`: the port of the local SeaweedFS", LOCAL),
    Setting("LOCAL_DATA_DIR", "`.local-data/`", "`scripts/run.sh`: where SeaweedFS keeps the uploads (one folder per "
            "running copy)", LOCAL),
    Setting("SIGNER_TEST_IMAGE", "`localhost/sigv4-signer:test`", "`scripts/container_test.sh`: the image to build "
            "and test", LOCAL),
)


def names(settings: tuple[Setting, ...] = SETTINGS) -> frozenset[str]:
    """Every variable name the table covers, ``_FILE`` forms included."""
    return frozenset(n for s in settings for n in ((s.name, s.name + "_FILE") if s.file else (s.name,)))


KNOWN_VARIABLES = frozenset(name for name in names() if name.startswith("SIGNER_"))
"""Every SIGNER_* variable anything reads: any other is warned about at start-up."""


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per SIGNER_* variable nothing reads (a misspelling is otherwise silent), naming
    the setting it most likely meant."""
    warnings = []
    for name in sorted(environ):
        if name.startswith("SIGNER_") and name not in KNOWN_VARIABLES:
            close = difflib.get_close_matches(name, KNOWN_VARIABLES, n=1, cutoff=0.8)
            hint = f"did you mean {close[0]}?" if close else "check the spelling against the README"
            warnings.append(f"{name} is not a setting of this service (ignored); {hint}")
    return warnings


def markdown(settings: tuple[Setting, ...] = SETTINGS) -> str:
    """docs/configuration.md: one table per section, in the table's order."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by `python -m signer.service.settings --markdown > docs/configuration.md` from",
        "     signer/service/settings.py: edit the table there, not this page. -->",
        "",
        "Everything comes from environment variables, read and validated once at start-up. Bad or missing",
        "configuration stops the service with one line naming the variable; it never starts half-configured",
        "(`.venv/bin/python -m signer check-config` checks it without starting). A `SIGNER_*` variable that is",
        "not listed here is warned about once at start-up and by `check-config`, with the closest name",
        "(\"did you mean SIGNER_MAX_SIZE?\"). A variable marked *also `_FILE`* may instead be given as a path",
        "to a file holding it (`SIGNER_API_TOKENS_FILE=/run/secrets/tokens`), for container secrets.",
    ]
    sections = list(dict.fromkeys(s.section for s in settings))
    for section in sections:
        lines += ["", f"## {section}", "", "| variable | meaning | default |", "| --- | --- | --- |"]
        for s in (s for s in settings if s.section == section):
            also = " (also `_FILE`)" if s.file else ""
            lines.append(f"| `{s.name}`{also} | {s.description} | {s.default} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv != ["--markdown"]:
        print("usage: python -m signer.service.settings --markdown > docs/configuration.md", file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
