"""``doctor``: check the store the service signs for, with its own configuration, and say
in plain words what is wrong and how to fix it.

Most failures of presigned uploads are on the store's side: credentials or region, a clock
off, CORS that does not let the page's origin in or hides ``ETag``, and S3-compatible stores
that are laxer than AWS (accepting a tampered signature, an unsigned ``x-amz-*`` header, or
an upload above a POST policy's ``content-length-range``). Each check sends real signed
requests; every object it writes lies under ``<prefix>signer-doctor-<uuid>/`` and is deleted
before it returns. No Flask here: the CLI and ``GET /v1/doctor`` share it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlencode

from ..post_policy import presign_post
from ..presign import presign_url
from ..sigv4 import current_time
from .config import Config
from .errors import Refused
from .rules import SERVICE_FOLDER
from .storage import Answer, StorageError, exchange, folders, list_keys, list_objects, signed_request

PROBE_BODY = b"sigv4-signer doctor probe\n"
POST_LIMIT = 8  # bytes: the POST probe's content-length-range is 0..8


@dataclass(frozen=True)
class Finding:
    """One check: ``ok`` None means it could not run (an earlier check failed)."""

    check: str
    ok: bool | None
    message: str
    fix: str = ""

    def as_json(self) -> dict[str, object]:
        return {"check": self.check, "ok": self.ok, "message": self.message, "fix": self.fix}


def cors_rules(origins: list[str]) -> str:
    """The bucket CORS configuration browsers need (S3 API JSON, for ``put-bucket-cors``)."""
    rule = {
        "AllowedOrigins": origins, "AllowedMethods": ["GET", "PUT", "POST", "HEAD", "DELETE"],
        "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3000,
    }
    return json.dumps({"CORSRules": [rule]}, indent=2)


def check_clock(date_header: str | None, now: datetime, skew: int) -> Finding:
    """The store's ``Date`` against ours; presigned URLs start at our time."""
    if not date_header:
        return Finding("clock", None, "the store sent no Date header, so the clocks could not be compared")
    try:
        theirs = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return Finding("clock", None, f"the store's Date header {date_header!r} could not be read")
    if theirs.tzinfo is None:
        return Finding("clock", None, f"the store's Date header {date_header!r} has no time zone")
    offset = (now - theirs).total_seconds()
    if abs(offset) > skew:
        return Finding("clock", False, f"this machine's clock is {offset:+.0f} s from the store's (more than "
                       f"SIGNER_CLOCK_SKEW={skew} s): URLs will look expired or not yet valid",
                       "synchronise this machine's clock (NTP, e.g. chrony or systemd-timesyncd)")
    return Finding("clock", True, f"this machine's clock is within {abs(offset):.0f} s of the store's")


def _error_code(answer: Answer) -> str:
    from xml.etree import ElementTree  # here, not at import: the service's workers never need it

    try:
        return ElementTree.fromstring(answer.body).findtext("Code") or ""  # noqa: S314 - our store's answer, no DTDs
    except ElementTree.ParseError:
        return ""


def _refused(answer: Answer) -> bool:
    return 400 <= answer.status < 500


def _multipart(fields: dict[str, str], content: bytes) -> tuple[bytes, str]:
    boundary = f"----signer-doctor-{uuid.uuid4().hex}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="probe.bin"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Doctor:
    """The checks, in order; ``run()`` returns the findings and leaves the bucket as it was."""

    def __init__(self, config: Config, now: Callable[[], datetime] = current_time,
                 swept: frozenset[str] = frozenset()) -> None:
        self.config, self.now = config, now
        self.swept = swept | {config.finish.pending_prefix}
        """Pending folders in this bucket some kind's sweeps cover (signer/service/kinds.py)."""
        self.timeout = config.s3_timeout
        self.prefix = f"{config.rules.key_prefix}signer-doctor-{uuid.uuid4().hex[:12]}/"
        self.source = self.prefix + "source.txt"

    # --- plumbing ---------------------------------------------------------------

    def _signed(self, method: str, key: str, body: bytes = b"", headers: dict[str, str] | None = None,
                query: str = "") -> Answer:
        cfg = self.config
        url = cfg.bucket.object_url(key) + (f"?{query}" if query else "")
        return signed_request(cfg.credentials, cfg.bucket, method, url, headers=headers, body=body,
                              timeout=self.timeout, now=self.now())

    def _presigned_put(self, key: str, headers: dict[str, str] | None = None) -> str:
        cfg = self.config
        return presign_url(cfg.credentials, cfg.bucket, key, method="PUT", expires_in=300, headers=headers,
                           now=self.now()).url

    # --- the checks ---------------------------------------------------------------

    def bucket(self) -> tuple[Finding, Answer | None]:
        cfg = self.config
        where = f"bucket {cfg.bucket.name!r} at {cfg.bucket.base_url} (region {cfg.bucket.region})"
        query = urlencode({"list-type": "2", "max-keys": "1", "prefix": self.prefix}, quote_via=quote)
        try:
            answer = self._signed("GET", "", query=query)
        except StorageError as exc:
            return Finding("bucket", False, f"the store could not be reached: {exc.message}",
                           "check SIGNER_ENDPOINT_URL (scheme, host, port) and that the store is running"), None
        except Refused as exc:  # credentials_unavailable: no provider in the chain could give any
            return Finding("bucket", False, f"no signing credentials: {exc.message}",
                           "fix the credentials source named above (see 'Running on AWS')"), None
        code = _error_code(answer)
        if answer.status == 200:
            return Finding("bucket", True, f"the credentials are accepted and {where} can be listed"), answer
        region = answer.headers.get("x-amz-bucket-region")
        fixes = {
            "InvalidAccessKeyId": "AWS_ACCESS_KEY_ID is not known to the store: set the right access key",
            "SignatureDoesNotMatch": "AWS_SECRET_ACCESS_KEY does not match the access key: set the right secret",
            "NoSuchBucket": f"create bucket {cfg.bucket.name!r} or set SIGNER_BUCKET to an existing one",
            "AccessDenied": "give the credentials s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject "
                            "on the bucket",
            "AuthorizationHeaderMalformed": f"set AWS_REGION to the bucket's region{f' ({region})' if region else ''}",
            "PermanentRedirect": f"set AWS_REGION to the bucket's region{f' ({region})' if region else ''}",
        }
        fix = fixes.get(code) or (f"set AWS_REGION={region}" if region and region != cfg.bucket.region else
                                  "check the credentials, SIGNER_BUCKET, AWS_REGION and SIGNER_ENDPOINT_URL")
        return Finding("bucket", False, f"listing {where} answered {answer.status} {code}".rstrip(), fix), answer

    def tampered_signature(self) -> Finding:
        url = self._presigned_put(self.prefix + "tampered.txt")
        tampered = re.sub(r"(X-Amz-Signature=[0-9a-f]{63})([0-9a-f])",
                          lambda match: match.group(1) + ("0" if match.group(2) != "0" else "1"), url)
        answer = exchange("PUT", tampered, body=PROBE_BODY, timeout=self.timeout)
        if _refused(answer):
            return Finding("tampered signature", True, f"a presigned PUT with one signature digit changed is "
                           f"refused ({answer.status} {_error_code(answer)})".rstrip(" )") + ")")
        return Finding("tampered signature", False, f"the store accepted a presigned PUT whose signature was "
                       f"altered ({answer.status}): it does not verify signatures, so anyone can write or read "
                       "anything", "use a store that verifies SigV4 signatures (turn on its authentication)")

    def conditional_writes(self) -> Finding:
        """The finish step claims a marker with ``If-Match`` and records one with ``If-None-Match: *``
        (signer/service/finish.py): a store that ignores them lets two sweepers work on one marker."""
        absent = self._signed("PUT", self.source, PROBE_BODY, {"Content-Type": "text/plain", "If-None-Match": "*"})
        changed = self._signed("PUT", self.source, PROBE_BODY, {"Content-Type": "text/plain",
                                                                "If-Match": '"00000000000000000000000000000000"'})
        ignored = [name for name, answer in (("If-None-Match: *", absent), ("If-Match", changed))
                   if answer.status != 412]
        if not ignored:
            return Finding("conditional writes", True, "PUT with If-None-Match: * on an existing key and with a "
                           "stale If-Match are refused (412): one sweeper claims each pending marker")
        return Finding("conditional writes", False, f"the store ignores {' and '.join(ignored)} on PUT: two "
                       "replicas may check one upload twice and send its webhook event twice (harmless, but "
                       "not once)", "use a store that honours S3 conditional writes (AWS S3 does since 2024, "
                       "SeaweedFS 4.48 does)")

    def unsigned_header(self) -> Finding:
        key = self.prefix + "copy-target.txt"
        url = self._presigned_put(key)
        control = exchange("PUT", url, body=PROBE_BODY, timeout=self.timeout)
        if control.status not in (200, 204):
            return Finding("unsigned x-amz header", False, f"a correctly presigned PUT was refused ({control.status} "
                           f"{_error_code(control)}): browsers cannot upload", "check AWS_REGION, "
                           "SIGNER_ENDPOINT_URL and SIGNER_ADDRESSING_STYLE (path or virtual) for this store")
        source = f"/{self.config.bucket.name}/{quote(self.source)}"
        answer = exchange("PUT", url, headers={"x-amz-copy-source": source}, timeout=self.timeout)
        if _refused(answer):
            return Finding("unsigned x-amz header", True, "a presigned PUT with an added, unsigned "
                           f"x-amz-copy-source header is refused ({answer.status})")
        return Finding("unsigned x-amz header", False, "the store accepted an unsigned x-amz-copy-source header on "
                       f"a presigned PUT ({answer.status}): an upload URL can be turned into a copy of any object "
                       "in the bucket", "use a store that refuses x-amz-* headers not listed in X-Amz-SignedHeaders")

    def checksum(self) -> Finding:
        """A PUT URL signing the SHA-256 of the probe: other bytes must be refused, the probe accepted."""
        header = {"x-amz-checksum-sha256": base64.b64encode(hashlib.sha256(PROBE_BODY).digest()).decode()}
        url = self._presigned_put(self.prefix + "checksum.txt", header)
        wrong = exchange("PUT", url, header, PROBE_BODY.upper(), timeout=self.timeout)
        if not _refused(wrong):
            return Finding("checksum", False, f"the store stored other bytes than a presigned PUT's signed "
                           f"x-amz-checksum-sha256 ({wrong.status}): checksums are not enforced, so a signed "
                           "checksum neither stops a swapped nor a corrupted upload",
                           "use a store that checks x-amz-checksum-* headers (S3, SeaweedFS do)")
        right = exchange("PUT", url, header, PROBE_BODY, timeout=self.timeout)
        if right.status not in (200, 204):
            return Finding("checksum", False, f"a PUT with its correct signed x-amz-checksum-sha256 was refused "
                           f"({right.status} {_error_code(right)}): uploads declaring a checksum cannot work",
                           "use a store that supports x-amz-checksum-* headers, or declare no checksums")
        return Finding("checksum", True, "a PUT whose bytes do not match its signed x-amz-checksum-sha256 is "
                       f"refused ({wrong.status} {_error_code(wrong)})".rstrip(" )") + ")")

    def no_overwrite(self) -> Finding:
        """A PUT URL signing ``If-None-Match: *`` onto the existing probe object must be refused."""
        header = {"If-None-Match": "*"}
        answer = exchange("PUT", self._presigned_put(self.source, header), header, PROBE_BODY, timeout=self.timeout)
        if answer.status == 412 or (_refused(answer) and _error_code(answer) == "PreconditionFailed"):
            return Finding("no overwrite", True, "a PUT signing If-None-Match: * onto an existing object is "
                           f"refused ({answer.status} {_error_code(answer)})".rstrip(" )") + ")")
        denied = self.config.rules.deny_overwrite
        return Finding("no overwrite", False if denied else None,
                       f"the store replaced an existing object despite a signed If-None-Match: * "
                       f"({answer.status} {_error_code(answer)})".rstrip() + ": "
                       + ("SIGNER_OVERWRITE=deny is not enforced by the store for PUT URLs and Companion completes"
                          if denied else "SIGNER_OVERWRITE=allow, so nothing relies on it"),
                       "use a store that honours If-None-Match on PutObject and CompleteMultipartUpload "
                       "(S3, SeaweedFS do)")

    def post_policy(self) -> tuple[Finding, str | None]:
        cfg = self.config
        form = presign_post(cfg.credentials, cfg.bucket, self.prefix + "post.bin", expires_in=300,
                            content_length_range=(0, POST_LIMIT), now=self.now())
        body, content_type = _multipart(form.fields, b"x" * (POST_LIMIT * 4))
        answer = exchange("POST", form.url, {"Content-Type": content_type}, body, timeout=self.timeout)
        if not _refused(answer):
            return Finding("post policy size", False, f"the store accepted a POST upload of {POST_LIMIT * 4} bytes "
                           f"under a policy allowing 0..{POST_LIMIT} ({answer.status}): size limits are not "
                           "enforced", "use a store that enforces POST policy conditions, or sign PUTs with "
                           "Content-Length only (no POST policies)"), form.url
        small_body, small_type = _multipart(form.fields, b"x" * (POST_LIMIT // 2))
        control = exchange("POST", form.url, {"Content-Type": small_type}, small_body, timeout=self.timeout)
        if control.status not in (200, 201, 204):
            return Finding("post policy size", False, f"the store refuses POST policy uploads altogether "
                           f"({control.status} {_error_code(control)}): form and Fine Uploader uploads cannot work",
                           "check AWS_REGION, SIGNER_ENDPOINT_URL and SIGNER_ADDRESSING_STYLE, or use PUT "
                           "uploads"), form.url
        return Finding("post policy size", True, f"a POST upload above its content-length-range is refused "
                       f"({answer.status} {_error_code(answer)})".rstrip(" )") + ")"), form.url

    def cors(self, post_url: str | None) -> Finding:
        cfg = self.config
        origins = sorted(cfg.cors_origins - {"*"}) or (["https://example.com"] if "*" in cfg.cors_origins else [])
        if not origins:
            return Finding("cors", None, "SIGNER_CORS_ORIGINS is empty, so no browser origin was checked",
                           "set SIGNER_CORS_ORIGINS to the origins of the pages that upload")
        problems: list[str] = []
        targets = [("PUT", cfg.bucket.object_url(self.source))] + ([("POST", post_url)] if post_url else [])
        for origin in origins:
            for method, url in targets:
                answer = exchange("OPTIONS", url, {"Origin": origin, "Access-Control-Request-Method": method,
                                                   "Access-Control-Request-Headers": "content-type"},
                                  timeout=self.timeout)
                allowed = answer.headers.get("Access-Control-Allow-Origin")
                methods = [m.strip() for m in (answer.headers.get("Access-Control-Allow-Methods") or method).split(",")]
                if answer.status >= 300 or allowed not in (origin, "*") or not {method, "*"} & set(methods):
                    problems.append(f"{origin} may not {method} ({answer.status}, Allow-Origin {allowed!r})")
            answer = self._signed("HEAD", self.source, headers={"Origin": origin})
            exposed = (answer.headers.get("Access-Control-Expose-Headers") or "").lower()
            if not {"etag", "*"} & {item.strip() for item in exposed.split(",")}:
                problems.append(f"ETag is not exposed to {origin} (Expose-Headers {exposed or 'absent'!r})")
        if problems:
            return Finding("cors", False, "the bucket's CORS does not let browsers upload: " + "; ".join(problems),
                           "apply this bucket CORS configuration (e.g. aws s3api put-bucket-cors --bucket "
                           f"{cfg.bucket.name} --cors-configuration file://cors.json):\n{cors_rules(origins)}")
        return Finding("cors", True, f"{', '.join(origins)} may PUT and POST, and ETag is exposed")

    def cleanup(self) -> Finding:
        """Delete everything under the probe prefix, then make sure nothing is left."""
        cfg = self.config
        try:
            for item in list_objects(cfg.credentials, cfg.bucket, self.prefix, timeout=self.timeout):
                self._signed("DELETE", str(item["key"]))
            left = list_objects(cfg.credentials, cfg.bucket, self.prefix, timeout=self.timeout)
        except Refused as exc:
            return Finding("cleanup", False, f"could not remove the probe objects: {exc.message}",
                           f"delete the objects under {self.prefix!r} by hand")
        if left:
            return Finding("cleanup", False, f"{len(left)} probe object(s) remain under {self.prefix!r}",
                           f"delete the objects under {self.prefix!r} by hand")
        return Finding("cleanup", True, f"every probe object under {self.prefix!r} was deleted")

    def markers_elsewhere(self) -> Finding:
        """Pending markers under another key prefix (SIGNER_KEY_PREFIX changed since they were
        written) are swept by no replica of this configuration: name them, with the way out."""
        cfg = self.config
        elsewhere = []
        for folder in ["", *folders(cfg.credentials, cfg.bucket, timeout=self.timeout)[:100]]:
            pending = f"{folder}{SERVICE_FOLDER}pending/"
            if pending not in self.swept and list_keys(cfg.credentials, cfg.bucket, pending, max_keys=1,
                                                       timeout=self.timeout).keys:
                elsewhere.append(folder)
        if elsewhere:  # not the store's fault, so not unhealthy: said, with what to do
            names = ", ".join(repr(folder) for folder in elsewhere)
            return Finding("markers elsewhere", True, f"uploads are waiting for the finish step under another "
                           f"SIGNER_KEY_PREFIX ({names}), which no replica of this configuration sweeps: run one "
                           "replica with that SIGNER_KEY_PREFIX until doctor no longer names it")
        return Finding("markers elsewhere", True, "no upload waits for the finish step under another key prefix")

    def run(self) -> list[Finding]:
        found, answer = self.bucket()
        findings = [found]
        if answer is not None:
            findings.append(check_clock(answer.headers.get("Date"), self.now(), self.config.rules.clock_skew))
        if not found.ok:
            names = ["tampered signature", "unsigned x-amz header", "checksum", "no overwrite",
                     "conditional writes", "post policy size", "cors", "markers elsewhere"]
            return findings + [Finding(name, None, "not checked: the bucket is not reachable") for name in names]
        try:
            written = self._signed("PUT", self.source, PROBE_BODY, {"Content-Type": "text/plain"})
            if written.status not in (200, 204):
                findings.append(Finding("write", False, f"a signed PUT was refused ({written.status} "
                                        f"{_error_code(written)})", "give the credentials s3:PutObject"))
                return findings
            post_finding, post_url = self.post_policy()
            findings += [self.tampered_signature(), self.unsigned_header(), self.checksum(), self.no_overwrite(),
                         self.conditional_writes(), post_finding, self.cors(post_url), self.markers_elsewhere()]
        except Refused as exc:
            findings.append(Finding("store", False, f"the checks stopped: {exc.message}"))
        finally:
            findings.append(self.cleanup())
        return findings


def run_doctor(config: Config, now: Callable[[], datetime] = current_time) -> list[Finding]:
    """The checks for the ``default`` kind's bucket, then for every other kind's (SIGNER_CONFIG,
    issue #26), each finding of those named ``<kind>: <check>``."""
    def swept(bucket: str) -> frozenset[str]:
        return frozenset(f.pending_prefix for f in config.finishes.values() if f.bucket.name == bucket)

    findings = Doctor(config, now, swept(config.bucket.name)).run()
    for kind in config.extra_kinds:
        as_kind = replace(config, bucket=kind.bucket, rules=kind.rules, publish=kind.publish, extra_kinds=())
        findings += [replace(finding, check=f"{kind.name}: {finding.check}")
                     for finding in Doctor(as_kind, now, swept(kind.bucket.name)).run()]
    if config.jwt is not None:
        from .jwt_callers import probe  # PyJWT only where an issuer is configured

        reachable, line = probe(config.jwt)
        findings.append(Finding("jwt issuer", reachable, line, "" if reachable else
                                "check SIGNER_JWT_ISSUER / SIGNER_JWT_JWKS_URL and that this machine reaches them"))
    return findings


def report(findings: list[Finding]) -> str:
    """Plain text, one line per check, each failure followed by its fix."""
    marks = {True: "ok  ", False: "FAIL", None: "skip"}
    lines: list[str] = []
    for finding in findings:
        lines.append(f"[{marks[finding.ok]}] {finding.check}: {finding.message}")
        if finding.fix and finding.ok is not True:
            lines.extend(f"       fix: {line}" if number == 0 else f"       {line}"
                         for number, line in enumerate(finding.fix.splitlines()))
    return "\n".join(lines)


def healthy(findings: list[Finding]) -> bool:
    return all(finding.ok is not False for finding in findings)
