"""Each JSON and Fine Uploader endpoint as one call, no Flask in it: plan (rules.py), then
:func:`signer.service.grants.issue` (guard → sign → record → audit). The web layer parses the
request into an :class:`Asking` and the body, calls one function here and serializes its answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypeVar

from ..credentials import Credentials
from ..sigv4 import current_time
from .callers import Caller
from .checksums import CHECKSUM_FIELDS
from .completion import guard_parts, refuse_existing
from .config import Config
from .errors import Malformed, NotAllowed, NotFound, Refused, refusal
from .fineuploader import FineUploader, policy_key
from .finish import Expectation, Finish, check_object
from .grants import Grant, Owed, issue, stamp
from .kinds import Kind
from .publish import publish, required
from .rules import JSON_FIELDS, SIGN_REQUEST_FIELDS, CallerRules, FieldNames, PostPlan
from .storage import delete_object, list_objects

iso = stamp


class Asking(NamedTuple):
    """Who asks, under which kind: all a flow needs of the request. ``owner`` is whom the finish
    step's markers count against (the caller; an anonymous visitor's address). A NamedTuple, as
    :class:`signer.service.grants.Grant`: one per request."""

    config: Config
    who: Caller
    kind: Kind
    owner: str
    finish: Finish
    """The kind's finish step (Config.finish_of), looked up once."""

    @classmethod
    def of(cls, config: Config, who: Caller, kind: Kind, owner: str) -> Asking:
        return cls(config, who, kind, owner, config.finish_of(kind))

    def rules(self, names: FieldNames = JSON_FIELDS) -> CallerRules:
        return self.kind.rules.for_caller(self.who.folder, names)

    def grant(self, protocol: str, key: str, method: str, owed: Owed | None = None) -> Grant:
        return Grant(protocol, self.who.identity, self.who.via, self.kind.name, self.kind.bucket.name, key, method,
                     owed=owed)

    def owed(self, rules: CallerRules, key: str, *, bounded: bool = True, upload_id: str | None = None) -> Owed | None:
        """What the finish step owes this upload; None when a bounded upload needs nothing (no webhook,
        no content check, nothing to publish): the hot path then builds nothing."""
        finish = self.finish
        if bounded and finish.webhook is None and not finish.check_content and finish.publish_unseen is None:
            return None
        return Owed(Expectation.of(rules, self.who.identity, key), self.owner, bounded, upload_id)

    @property
    def clock_skew(self) -> int:
        return self.config.rules.clock_skew


def presign(ask: Asking, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/presign``: one presigned URL."""
    rules, bucket = ask.rules(), ask.kind.bucket
    credentials = ask.config.credentials  # first: a refresh may take a moment, and the date is signed after it
    now = current_time()
    plan = rules.plan_presign(now=now, valid_until=credentials.expiration, **body)
    owed = ask.owed(rules, plan.key) if plan.method == "PUT" else None
    url, expires_at = issue(ask.grant("presign", plan.key, plan.method, owed),
                            lambda: _with_expiry_kept(plan.sign(credentials, bucket, now)),
                            finish=ask.finish, clock_skew=ask.clock_skew, now=now)
    return {"method": plan.method, "url": url.url, "headers": url.headers, "bucket": bucket.name, "key": plan.key,
            "expires_at": iso(expires_at)}


def post_policy(ask: Asking, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /v1/post-policy``: a POST form whose policy carries the key, type and size range."""
    rules, bucket = ask.rules(), ask.kind.bucket
    credentials = ask.config.credentials
    now = current_time()
    plan = rules.plan_post_policy(now=now, valid_until=credentials.expiration, **body)
    form = issue(ask.grant("post-policy", plan.key, "POST", ask.owed(rules, plan.key)),
                 lambda: _with_expiry(plan.sign(credentials, bucket, now)),
                 finish=ask.finish, clock_skew=ask.clock_skew, now=now)
    return {"url": form.url, "fields": form.fields, "bucket": bucket.name, "key": plan.key,
            "expires_at": iso(form.expires_at)}


def sign_request(ask: Asking, body: dict[str, Any]) -> dict[str, Any]:
    """Uppy's ``signRequest`` mode: one S3 step of a simple or multipart upload. A simple PUT is
    answered with a POST form (its policy carries the size range); a complete is signed only after
    the uploaded parts fit the size limit (the guard), and the object is checked afterwards."""
    cfg, kind = ask.config, ask.kind
    rules = ask.rules(SIGN_REQUEST_FIELDS)
    credentials = cfg.credentials
    now = current_time()
    step = rules.plan_sign_request(
        method=body.get("method"), key=body.get("key"), content_type=body.get("contentType"),
        upload_id=body.get("uploadId"), part_number=body.get("partNumber"), now=now,
        valid_until=credentials.expiration, checksums={name: body.get(name) for name in CHECKSUM_FIELDS},
        checksum_algorithm=body.get("checksum_algorithm"),
    )
    key = step.plan.key
    if isinstance(step.plan, PostPlan):
        post = step.plan
        form = issue(ask.grant("sign-request", key, "POST", ask.owed(rules, key, bounded=True)),
                     lambda: _with_expiry(post.sign(credentials, kind.bucket, now)),
                     finish=ask.finish, clock_skew=ask.clock_skew, now=now)
        return {"url": form.url, "fields": form.fields, "key": key}
    guard = None
    owed = None
    if step.operation == "complete":
        upload_id = step.upload_id
        assert upload_id is not None

        def guard() -> None:
            if kind.rules.deny_overwrite:  # refused here, not by the store after a marker is written (issue #25)
                refuse_existing(credentials, kind.bucket, key, timeout=cfg.s3_timeout)
            guard_parts(credentials, kind.bucket, rules, key, upload_id, timeout=cfg.s3_timeout)

        owed = Owed(Expectation.of(rules, ask.who.identity, key), ask.owner, False, upload_id)
    plan = step.plan
    url = issue(ask.grant("sign-request", key, step.operation if step.upload_id else plan.method, owed),
                lambda: _with_expiry(plan.sign(credentials, kind.bucket, now)), guard=guard,
                finish=ask.finish, clock_skew=ask.clock_skew, now=now)
    return {"url": url.url, "headers": url.headers, "key": key}


def publish_upload(ask: Asking, body: dict[str, Any]) -> dict[str, Any]:
    """Copy the caller's own finished upload to the kind's public bucket (server-side, checked first)."""
    settings = required(ask.kind.publish)
    published = publish(ask.finish, settings, ask.rules(), ask.who.identity, body.get("key"), body.get("filename"))
    return published.as_json()


def objects(ask: Asking) -> dict[str, Any]:
    """The caller's own objects of this kind (at most 100) and the kinds it may use."""
    cfg, kind = ask.config, ask.kind
    prefix = ask.rules().prefix
    items = [item for item in list_objects(cfg.credentials, kind.bucket, prefix, timeout=cfg.s3_timeout)
             if not kind.rules.is_reserved_key(str(item["key"]))]  # the service's own markers are not the caller's
    return {"prefix": prefix, "objects": items, **_kinds_said(ask)}


def whoami(ask: Asking) -> dict[str, Any]:
    return {"identity": ask.who.identity, "key_prefix": ask.rules().prefix, **_kinds_said(ask)}


def _kinds_said(ask: Asking) -> dict[str, Any]:
    """With SIGNER_CONFIG: this request's kind, its bucket, and the kinds this caller may use.
    Without, nothing: the answers stay what they were."""
    if not ask.config.extra_kinds:
        return {}
    return {"kind": ask.kind.name, "bucket": ask.kind.bucket.name, "kinds": ask.config.kinds.names_for(ask.who.via)}


# --- Fine Uploader -------------------------------------------------------------------


def fine_uploader(ask: Asking, credentials: Credentials | None = None) -> FineUploader:
    return FineUploader(credentials or ask.config.credentials, ask.kind.bucket, ask.rules(), current_time())


def fine_uploader_signature(ask: Asking, body: dict[str, Any]) -> dict[str, str]:
    """A policy document (simple upload) or one multipart call's string to sign (chunked upload).
    Before a complete the client sends itself: refuse (and abort) when the parts already uploaded
    exceed the size limit, and record the check of the finished object, in case the client never
    calls /s3/success. Under overwrite=deny a complete without ``if-none-match:*`` (Fine Uploader
    cannot send one) is refused when the key already holds an object."""
    cfg, kind = ask.config, ask.kind
    adapter = fine_uploader(ask)
    if "headers" in body:
        if len(body) != 1:
            raise Malformed("invalid_input", "a 'headers' request must have no other fields")
        call = adapter.check_multipart(body["headers"])
        guard, owed = None, None
        if call.kind == "complete":
            upload_id = call.upload_id
            assert upload_id is not None  # a complete always names its upload

            def guard() -> None:
                if kind.rules.deny_overwrite and not call.conditional:
                    refuse_existing(adapter.credentials, kind.bucket, call.key, timeout=cfg.s3_timeout)
                guard_parts(adapter.credentials, kind.bucket, adapter.caller, call.key, upload_id,
                            timeout=cfg.s3_timeout)

            owed = Owed(Expectation.of(adapter.caller, ask.who.identity, call.key), ask.owner, False, upload_id)
        return issue(ask.grant("fine-uploader", call.key, call.kind, owed),
                     lambda: (adapter.sign_call(call), None), guard=guard,
                     finish=ask.finish, clock_skew=ask.clock_skew, now=adapter.now)
    key = _policy_key(body)

    def sign() -> tuple[dict[str, str], datetime]:
        signed = adapter.sign_policy(body)  # its own refusals first
        policy_key(body["conditions"])  # then: only a policy for one exact key is given out
        return signed, adapter.policy_expires(body)

    return issue(ask.grant("fine-uploader", key, "POST", ask.owed(adapter.caller, key)), sign,
                 finish=ask.finish, clock_skew=ask.clock_skew, now=adapter.now)


def _policy_key(document: dict[str, Any]) -> str:
    """The key a policy names, for its grant; a policy without one is refused by ``sign_policy``
    itself (first, with its own message), so here it is only looked for."""
    conditions = document.get("conditions")
    try:
        return policy_key(conditions) if isinstance(conditions, list) else ""
    except Refused:
        return ""


def fine_uploader_key(ask: Asking, bucket: str, key: str) -> str:
    """The form's bucket must be the kind's and its key the caller's."""
    if bucket != ask.kind.bucket.name:
        raise NotAllowed("bucket_not_allowed", f"bucket must be {ask.kind.bucket.name!r}")
    return ask.rules().check_key(key)


def fine_uploader_success(ask: Asking, bucket: str, key: str, name: str | None) -> dict[str, Any]:
    """Confirm the upload landed, and remove it if it breaks the rules after all (a chunked upload's
    total size cannot be bounded by its signatures)."""
    checked = fine_uploader_key(ask, bucket, key)
    settings = ask.kind.publish
    if settings is not None and settings.on_upload:  # publishing checks it as the finish step does
        published = publish(ask.finish, settings, ask.rules(), ask.who.identity, checked, name)
        return {"success": True, "key": checked, "size": published.size,
                "published": {"key": published.key, "url": published.url}}
    verdict = check_object(ask.finish, Expectation.of(ask.rules(), ask.who.identity, checked))
    if verdict.info is None:
        raise NotFound("object_not_found", "the object was not found in the bucket")
    if verdict.code is not None:
        raise refusal(verdict.code, verdict.message or "the upload broke the rules and was deleted")
    return {"success": True, "key": checked, "size": verdict.info.size}


def fine_uploader_delete(ask: Asking, bucket: str, key: str) -> dict[str, Any]:
    checked = fine_uploader_key(ask, bucket, key)
    ask.kind.rules.check_method("DELETE")
    delete_object(ask.config.credentials, ask.kind.bucket, checked, timeout=ask.config.s3_timeout)
    return {"success": True, "key": checked}


class _Expiring(Protocol):
    @property
    def expires_at(self) -> datetime: ...


_Signed = TypeVar("_Signed", bound=_Expiring)


def _with_expiry(signed: _Signed) -> tuple[_Signed, datetime]:
    return signed, signed.expires_at


def _with_expiry_kept(signed: _Signed) -> tuple[tuple[_Signed, datetime], datetime]:
    """For a flow that answers the expiry too: computed once."""
    expires_at = signed.expires_at
    return (signed, expires_at), expires_at
