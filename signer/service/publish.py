"""Publish: a server-side copy of a caller's finished upload to the public bucket, no Flask in it.

``POST /v1/uploads/publish``, Fine Uploader's ``/s3/success`` and Uppy's Companion complete (with
``SIGNER_PUBLISH_ON_UPLOAD``) call :func:`publish`; so can a background job, since it needs only
the credentials, the buckets and the caller's rules. The object is checked first
(:func:`check_source`), then copied by S3 itself (CopyObject, or UploadPartCopy over 5 GiB) with
the checked ETag as a precondition, so what is copied is exactly what was checked.

The public name is ``SIGNER_PUBLISH_PREFIX`` + the template (``{identity}/{yyyy}/{mm}/{dd}/{slug}{ext}``
by default). The slug is an HMAC (the service's own key) of the source bucket, key and ETag:
nobody can guess it from the source's name, and publishing the same upload again gives the same
name, so a retry finds the copy already there instead of making a second public object. The
extension comes from the object's checked type, never from the caller's file name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string
from dataclasses import dataclass, field
from datetime import datetime

from ..s3 import Bucket, encode_key
from ..sigv4 import CONTROL_CHARACTERS, current_time
from .errors import Malformed, NotAllowed, NotFound, refusal
from .finish import Expectation, Finish, check_object, queue_event
from .rules import CallerRules
from .storage import (
    MAX_COPY_SIZE,
    MAX_OBJECT_SIZE,
    ObjectInfo,
    copy_large_object,
    copy_object,
    delete_object,
    head_object,
)

DEFAULT_PREFIX = "public/"
DEFAULT_TEMPLATE = "{identity}/{yyyy}/{mm}/{dd}/{slug}{ext}"
PLACEHOLDERS = frozenset({"identity", "yyyy", "mm", "dd", "slug", "ext"})

EXTENSIONS = {
    "image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif", "image/webp": ".webp", "image/avif": ".avif",
    "image/heic": ".heic", "application/pdf": ".pdf", "text/plain": ".txt", "text/csv": ".csv",
    "video/mp4": ".mp4", "video/webm": ".webm", "audio/mpeg": ".mp3", "audio/ogg": ".ogg",
    "application/zip": ".zip", "application/json": ".json",
}
"""The only extensions a public name gets, by the object's checked type. Types a browser runs as a
page (HTML, SVG, XML) get none: a CDN that types by extension must not make them documents."""

DOWNLOAD_TYPE = "application/octet-stream"
"""The public copy's type for every type not in :data:`EXTENSIONS`: stores and CDNs serve the
stored type, so a copy that kept ``text/html`` would be a page on the public origin."""

_SLUG_TEXT = re.compile(r"[^a-z0-9]+")
MAX_NAME_PART = 40


@dataclass(frozen=True)
class PublishSettings:
    """The publish settings (SIGNER_PUBLISH_BUCKET and the rest), validated once by :func:`signer.service.config.load_config`."""

    bucket: Bucket
    secret: bytes = field(repr=False)
    """The service's own stable HMAC key (Config.cookie_secret): names are the same in every
    worker and replica, and across credential rotations."""
    prefix: str = DEFAULT_PREFIX
    template: str = DEFAULT_TEMPLATE
    public_url: str | None = None
    """Base of public URLs (a CDN, ending in ``/``); None: the publish bucket's own object URL."""
    delete_source: bool = False
    on_upload: bool = False

    def url_of(self, key: str) -> str:
        return f"{self.public_url}{encode_key(key)}" if self.public_url else self.bucket.object_url(key)


@dataclass(frozen=True)
class Published:
    """What one publish did: what an ``upload.published`` event needs, and the HTTP answer."""

    source_key: str
    bucket: str
    key: str
    url: str
    size: int
    content_type: str | None
    etag: str | None
    copied: bool
    """False when this upload was already published under this name (nothing was copied)."""

    def as_json(self) -> dict[str, object]:
        return {"source_key": self.source_key, "bucket": self.bucket, "key": self.key, "url": self.url,
                "size": self.size, "content_type": self.content_type, "etag": self.etag, "copied": self.copied}


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot name public objects (None when it can): only the known placeholders,
    ``{slug}`` required (it is what makes names unique and unguessable), no format specs, and a
    rendered name with no empty, ``.`` or ``..`` segment."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(template)
                  if name is not None]
    except ValueError as exc:
        return f"is not a template ({exc})"
    for name, spec, conversion in fields:
        if name not in PLACEHOLDERS or spec or conversion:
            return f"has {{{name}}}: only {', '.join('{' + p + '}' for p in sorted(PLACEHOLDERS))} are known"
    if "slug" not in {name for name, _, _ in fields}:
        return "must contain {slug}"
    sample = render(template, identity="user/alice", now=datetime(2026, 1, 2), slug="s", ext=".png")
    if CONTROL_CHARACTERS.search(sample) or any(part in ("", ".", "..") for part in sample.split("/")):
        return "must make names without empty, '.' or '..' segments or control characters"
    return None


def render(template: str, *, identity: str, now: datetime, slug: str, ext: str) -> str:
    return template.format(identity=identity, yyyy=f"{now:%Y}", mm=f"{now:%m}", dd=f"{now:%d}", slug=slug, ext=ext)


def public_slug(secret: bytes, source: Bucket, key: str, etag: str | None, filename: object = None) -> str:
    """``[<file name as a-z0-9->-]<26 characters>``: an HMAC of this exact upload (bucket, key,
    ETag), 128 bits and more, so the same upload always gets the same name and nobody without the
    service's key can find it from the source's name. The file name part only makes URLs readable:
    lower-case ASCII letters, digits and single hyphens, at most 40 characters, its extension dropped."""
    own_key = hmac.new(secret, b"signer publish names v1", hashlib.sha256).digest()
    digest = hmac.new(own_key, f"{source.name}\n{key}\n{etag or ''}".encode(), hashlib.sha256).digest()
    code = base64.b32encode(digest).decode("ascii").lower()[:26]
    if filename is None:
        return code
    if not isinstance(filename, str) or not filename or len(filename) > 1024:
        raise Malformed("invalid_input", "filename must be a non-empty string of at most 1024 characters")
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    words = _SLUG_TEXT.sub("-", stem.lower()).strip("-")[:MAX_NAME_PART].strip("-")
    return f"{words}-{code}" if words else code


def extension_for(content_type: str | None) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return EXTENSIONS.get(media, "")


def public_key(settings: PublishSettings, caller: CallerRules, source: Bucket, key: str, info: ObjectInfo,
               filename: object, now: datetime) -> str:
    """The public name: prefix + template, dated by the upload (its Last-Modified), so a retry
    on another day finds the same name."""
    slug = public_slug(settings.secret, source, key, info.etag, filename)
    rendered = render(settings.template, identity=caller.identity or "", now=info.last_modified or now, slug=slug,
                      ext=extension_for(info.content_type))
    return settings.prefix + "/".join(part for part in rendered.split("/") if part)


def check_source(finish: Finish, caller: CallerRules, identity: str | None, key: object) -> tuple[Expectation, ObjectInfo]:
    """The caller's own finished object, within the rules: its key under the caller's folder
    (another caller's key is refused by its text alone, 403, whether or not it exists: nothing
    leaks), then the finish step's own check (:func:`signer.service.finish.check_object`: HEAD,
    folder, size, type), so publish holds an upload to exactly what the sweeper would. 404 when
    absent; an object that breaks the rules is deleted, as the finish step does, and refused."""
    if key is None:
        raise Malformed("missing_field", "key is required: the uploaded object to publish")
    expected = Expectation.of(caller, identity, caller.check_key(key))
    verdict = check_object(finish, expected)
    if verdict.info is None:
        raise NotFound("object_not_found", "the object to publish is not in the bucket (not uploaded yet?)")
    if verdict.code is not None:
        queue_event(finish, "upload.rejected", expected, verdict.info, code=verdict.code, message=verdict.message)
        raise refusal(verdict.code, f"{verdict.message}: the upload was deleted")
    return expected, verdict.info


def publish(finish: Finish, settings: PublishSettings, caller: CallerRules, identity: str | None, key: object,
            filename: object = None, *, now: datetime | None = None) -> Published:
    """Check the caller's object, copy it to the public name (unless this upload is already
    there), delete the original when configured, queue ``upload.published`` (once: a repeat
    copies nothing and tells nothing) and say where it is."""
    expected, info = check_source(finish, caller, identity, key)
    checked, bucket, timeout, credentials = expected.key, finish.bucket, finish.timeout, finish.credentials()
    if info.size > MAX_OBJECT_SIZE:
        raise NotAllowed("too_large", f"the object is {info.size} bytes, above S3's largest object")
    target = public_key(settings, caller, bucket, checked, info, filename, now or current_time())
    public_type = info.content_type if extension_for(info.content_type) else DOWNLOAD_TYPE
    existing = head_object(credentials, settings.bucket, target, timeout=timeout)
    if existing is not None:
        etag, copied = existing.etag, False
    elif info.size <= MAX_COPY_SIZE:
        etag, copied = copy_object(credentials, settings.bucket, target, bucket, checked, content_type=public_type,
                                   source_etag=info.etag, timeout=timeout), True
    else:
        etag, copied = copy_large_object(credentials, settings.bucket, target, bucket, checked, info.size,
                                         content_type=public_type, source_etag=info.etag, timeout=timeout), True
    if settings.delete_source:
        delete_object(credentials, bucket, checked, timeout=timeout)
    published = Published(checked, settings.bucket.name, target, settings.url_of(target), info.size, public_type,
                          _quoted(etag), copied)
    # Queued on every publish, the copy's or a repeat's, under one id per (upload, public name): a
    # publish whose event could not be queued after its copy is told by its retry (issue #25), and
    # a receiver that deduplicates by Signer-Event-Id sees each publication once.
    event_id = hashlib.sha256(f"upload.published\n{bucket.name}\n{checked}\n{info.etag}\n{settings.bucket.name}\n"
                              f"{target}".encode()).hexdigest()[:32]
    queue_event(finish, "upload.published", expected, info, event_id=event_id,
                extra={"published": {"bucket": published.bucket, "key": published.key, "url": published.url}})
    return published


def _quoted(etag: str | None) -> str | None:
    """ETags as HEAD gives them (quoted): stores differ in copy results (SeaweedFS leaves them bare)."""
    return f'"{etag.strip().strip(chr(34))}"' if etag else None


def required(settings: PublishSettings | None) -> PublishSettings:
    """The publish settings, or a clear refusal where publishing is not set up."""
    if settings is None:
        raise NotAllowed("publish_not_configured", "publishing is not set up here: SIGNER_PUBLISH_BUCKET is not set")
    return settings
