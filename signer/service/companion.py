"""Uppy's Companion S3 protocol (``@uppy/aws-s3`` with ``companionEndpoint``), no Flask in it.

Uppy asks; the service decides and does the multipart lifecycle itself, with our own signed
requests (:mod:`signer.service.storage`): it chooses the key under the caller's prefix,
creates the upload with a signed, allowed Content-Type, presigns each part, lists parts for a
resume, and completes only after summing the sizes of exactly the parts being completed —
aborting over ``SIGNER_MAX_SIZE`` — so an over-size or wrong-type object never exists.
Every decision comes from :class:`signer.service.rules.CallerRules`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ..credentials import Credentials
from ..post_policy import PostForm
from ..presign import PresignedURL
from ..s3 import Bucket
from . import metrics
from .completion import guard_parts
from .errors import Malformed, NotAllowed, NotFound, Refused
from .finish import Expectation, Finish, expect_upload, forget_upload
from .grants import Grant, Owed, audit, issue
from .publish import PublishSettings, publish
from .rules import CallerRules
from .storage import abort_multipart_upload, complete_multipart_upload, create_multipart_upload, list_parts

log = logging.getLogger("signer")
MAX_BATCH = 100
Signed = TypeVar("Signed")


@dataclass(frozen=True)
class Companion:
    credentials: Credentials
    bucket: Bucket
    caller: CallerRules
    now: datetime
    timeout: float = 10.0
    seal_key: bytes = b""
    """The service's own stable HMAC key (Config.cookie_secret): the same in every worker and
    replica, and across credential rotations. Empty: upload ids are not sealed, and the store's
    own binding of upload ids to keys (S3's, SeaweedFS') is what keeps callers apart."""
    publish: PublishSettings | None = None
    """With ``on_upload`` set, a completed upload is published and the answer says where."""
    finish: Finish | None = None
    """Where uploads are recorded for the finish step (None: not recorded, for tests of the protocol alone)."""
    identity: str | None = None
    owner: str | None = None
    """Whom its markers count against (finish.PendingLedger); default: the identity."""
    kind: str = "default"
    """The upload kind (signer/service/kinds.py), for the audit lines; ``via`` too."""
    via: str = ""

    def _grant(self, key: str, method: str, owed: Owed | None = None) -> Grant:
        return Grant("companion", self.identity or "", self.via, self.kind, self.bucket.name, key, method, owed=owed)

    def _owed(self, key: str, upload_id: str | None = None) -> Owed | None:
        """Both Companion uploads are bounded by what the service signs and does: reported, not re-checked."""
        if self.finish is None:
            return None
        return Owed(Expectation.of(self.caller, self.identity, key), self.owner or self.identity or "", True, upload_id)

    def _finish_for_publish(self) -> Finish:
        if self.finish is None:
            raise TypeError("publishing on upload needs the finish step (Companion.finish)")
        return self.finish

    def _expect(self, key: str, signed_until: datetime, upload_id: str | None = None) -> str | None:
        """Both Companion uploads are bounded by what the service signs and does: reported, not re-checked."""
        if self.finish is None:
            return None
        return expect_upload(self.finish, Expectation.of(self.caller, self.identity, key), protocol="companion",
                             signed_until=signed_until, clock_skew=self.caller.rules.clock_skew, upload_id=upload_id,
                             bounded=True, now=self.now, owner=self.owner)

    def _issue(self, grant: Grant, sign: Callable[[], tuple[Signed, datetime | None]]) -> Signed:
        if self.finish is None:  # tests of the protocol alone: signed, not recorded
            audit(grant)
            return sign()[0]
        return issue(grant, sign, finish=self.finish, clock_skew=self.caller.rules.clock_skew, now=self.now)

    def params(self, filename: object, content_type: object) -> dict[str, Any]:
        """``GET /s3/params``: a POST form whose policy carries the key, type and size range."""
        plan = self.caller.plan_post_policy(filename=filename, content_type=content_type or None, now=self.now,
                                            valid_until=self.credentials.expiration)

        def sign() -> tuple[PostForm, datetime]:
            signed = plan.sign(self.credentials, self.bucket, self.now)
            return signed, signed.expires_at

        form = self._issue(self._grant(plan.key, "POST", self._owed(plan.key)), sign)
        return {"method": "POST", "url": form.url, "fields": form.fields, "key": plan.key,
                "expires": plan.expires_in, "headers": {}}

    def create(self, filename: object, content_type: object) -> dict[str, str]:
        """``POST /s3/multipart``: create the upload ourselves, Content-Type signed."""
        plan = self.caller.plan_multipart_create(filename=filename, content_type=content_type, now=self.now)
        upload_id = create_multipart_upload(self.credentials, self.bucket, plan.key, plan.content_type,
                                            timeout=self.timeout)
        sealed = f"{upload_id}.{self._seal(plan.key, upload_id)}" if self.seal_key else upload_id
        audit(self._grant(plan.key, "create"))
        return {"key": plan.key, "uploadId": sealed}

    # Uppy hands the upload id back to us only, so we bind it to its key with an HMAC: a
    # store that does not bind upload ids to keys (moto does not) cannot be used to reach
    # another caller's upload through one's own key.

    def _seal(self, key: str, upload_id: str) -> str:
        secret = hmac.new(self.seal_key, b"signer companion upload id", hashlib.sha256).digest()
        return hmac.new(secret, f"{key}\n{upload_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def _upload(self, key: object, sealed: object) -> tuple[str, str]:
        """The caller's key and the store's upload id, once the seal proves they belong together."""
        checked_key, checked = self.caller.check_upload(key, sealed)
        if not self.seal_key:
            return checked_key, checked
        upload_id, _, mac = checked.rpartition(".")
        if not upload_id or not hmac.compare_digest(mac, self._seal(checked_key, upload_id)):
            raise NotFound("upload_not_found", "this uploadId was not created for this key")
        return checked_key, upload_id

    def sign_part(self, upload_id: object, part_number: object, key: object) -> dict[str, Any]:
        checked_key, store_id = self._upload(key, upload_id)
        plan = self.caller.plan_upload_part(key=checked_key, upload_id=store_id, part_number=part_number,
                                            now=self.now, valid_until=self.credentials.expiration)
        url = self._issue(self._grant(checked_key, "part"), lambda: _expiring(plan.sign(self.credentials, self.bucket,
                                                                                          self.now)))
        return {"url": url.url, "expires": plan.expires_in}

    def sign_batch(self, upload_id: object, part_numbers: object, key: object) -> dict[str, Any]:
        """The older ``/batch?partNumbers=1,2,3`` call of ``@uppy/aws-s3-multipart``."""
        if not isinstance(part_numbers, str) or not part_numbers:
            raise Malformed("missing_field", "partNumbers is required: a comma-separated list")
        numbers = part_numbers.split(",")
        if len(numbers) > MAX_BATCH:
            raise Malformed("invalid_input", f"at most {MAX_BATCH} part numbers at once")
        urls = {}
        checked_key, store_id = self._upload(key, upload_id)
        for number in numbers:
            plan = self.caller.plan_upload_part(key=checked_key, upload_id=store_id, part_number=number,
                                                now=self.now, valid_until=self.credentials.expiration)
            urls[str(int(number))] = plan.sign(self.credentials, self.bucket, self.now).url
        grant = self._grant(checked_key, f"parts {','.join(urls)}")
        audit(grant, self.now + timedelta(seconds=plan.expires_in))
        metrics.signed(grant.protocol, "PUT", len(urls), kind=grant.kind)
        return {"presignedUrls": urls}

    def list_parts(self, upload_id: object, key: object) -> list[dict[str, Any]]:
        checked_key, checked_id = self._upload(key, upload_id)
        parts = list_parts(self.credentials, self.bucket, checked_key, checked_id, timeout=self.timeout)
        return [{"PartNumber": part.number, "ETag": part.etag, "Size": part.size} for part in parts]

    def complete(self, upload_id: object, key: object, body: dict[str, Any]) -> dict[str, Any]:
        """Sum exactly the parts named, abort over the limit, else complete with those parts;
        under SIGNER_OVERWRITE=deny with ``If-None-Match: *``, so an existing object stays."""
        checked_key, checked_id = self._upload(key, upload_id)
        wanted = _parts(body.get("parts"), self.caller)
        chosen = guard_parts(self.credentials, self.bucket, self.caller, checked_key, checked_id, wanted,
                             timeout=self.timeout)
        marker = self._expect(checked_key, self.now, checked_id)  # before: a process ending in between loses nothing
        try:
            complete_multipart_upload(self.credentials, self.bucket, checked_key, checked_id,
                                      [(part.number, part.etag) for part in chosen], timeout=max(self.timeout, 30.0),
                                      if_none_match=self.caller.rules.deny_overwrite)
        except Refused as exc:
            if exc.code == "object_exists":  # the first object stays; this upload's parts go
                abort_multipart_upload(self.credentials, self.bucket, checked_key, checked_id, timeout=self.timeout)
                if marker is not None and self.finish is not None:  # the object there is the earlier one
                    with suppress(Refused):  # left, it is reported as this upload (at least once, as ever)
                        forget_upload(self.finish, marker)
            raise
        audit(self._grant(checked_key, "complete"))
        answer: dict[str, Any] = {"location": self.bucket.object_url(checked_key), "bucket": self.bucket.name,
                                  "key": checked_key}
        if self.publish is not None and self.publish.on_upload:
            published = publish(self._finish_for_publish(), self.publish, self.caller, self.identity, checked_key,
                                now=self.now)
            answer["published"] = {"key": published.key, "url": published.url}
        return answer

    def abort(self, upload_id: object, key: object) -> dict[str, Any]:
        """Cancel: abort one's own unfinished upload. It deletes no object, so it needs no DELETE in
        SIGNER_ALLOWED_METHODS (:meth:`Rules.check_abort_allowed`); the seal proves the upload is this key's."""
        self.caller.rules.check_abort_allowed()
        checked_key, checked_id = self._upload(key, upload_id)
        abort_multipart_upload(self.credentials, self.bucket, checked_key, checked_id, timeout=self.timeout)
        return {}


def _parts(raw: object, caller: CallerRules) -> list[tuple[int, str]]:
    if not isinstance(raw, list) or not raw:
        raise Malformed("invalid_input", "parts must be a non-empty list of {PartNumber, ETag}")
    if len(raw) > caller.max_part_number:
        raise NotAllowed("too_large", f"at most {caller.max_part_number} parts fit the size limit")
    parts = []
    for item in raw:
        if not isinstance(item, dict) or set(item) - {"PartNumber", "ETag", "Size"}:
            raise Malformed("invalid_input", "each part must be {PartNumber, ETag}")
        etag = item.get("ETag")
        if not isinstance(etag, str) or not 0 < len(etag) <= 200:
            raise Malformed("invalid_input", "each part needs its ETag")
        parts.append((caller.check_part_number(item.get("PartNumber"), "PartNumber"), etag))
    return parts


def _expiring(url: PresignedURL) -> tuple[PresignedURL, datetime]:
    return url, url.expires_at
