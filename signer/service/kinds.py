"""Upload kinds: several rule sets and buckets in one deployment (issue #26).

A kind is a name for one set of upload rules, one bucket and one way of finishing (``avatar``: a
small image, replaced freely; ``doc``: a PDF, never overwritten, downloaded). ``SIGNER_CONFIG``
names a TOML file with ``[kinds.<name>]`` tables; the ``SIGNER_*`` environment variables describe
the kind ``default``, so a deployment without the file behaves as it always did.

:data:`KEYS` and :data:`PUBLISH_KEYS` are the one table of a kind's keys: name, type, default and
description. They drive parsing (a key not in them is refused), validation and the reference in
``docs/kinds.md`` (:func:`reference`). Every refusal is one line naming the file, the kind and the
key, raised as :class:`ConfigError` (start-up stops with exit 2).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..errors import SigningError
from ..post_policy import CANNED_ACLS
from ..s3 import Bucket
from ..sigv4 import MAX_EXPIRES
from .errors import ConfigError, Malformed, NotAllowed, NotFound
from .publish import DEFAULT_PREFIX, DEFAULT_TEMPLATE, PublishSettings, template_problem
from .rules import Rules

DEFAULT = "default"
"""The kind the environment variables describe; chosen when a request names none."""
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
"""A kind's name: it is a path segment (``/kinds/<name>/``), so lower-case letters, digits, '-', '_'."""
CALLER_CLASSES = {"token": "tokens", "gateway": "users", "jwt": "users", "anonymous": "anonymous"}
"""How each way of identifying a caller (``Caller.via``) is named in ``callers``: a gateway's user and
a JWT's (issue #27) are both the app's users, in one namespace."""
MEDIA_RANGE = re.compile(r"[a-z0-9!#$&^_.+-]+/([a-z0-9!#$&^_.+-]+|\*)|\*/\*")
PUBLIC_URL = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?")
DISPOSITIONS = ("inline", "attachment")


@dataclass(frozen=True)
class Kind:
    """One kind of upload: where it goes (``bucket``), what may be signed (``rules``), who may
    use it (``callers``; None: every caller, as for ``default``) and what the finish step owes
    (``check_content``: the bytes must match the declared type; ``publish``)."""

    name: str
    bucket: Bucket
    rules: Rules
    check_content: bool = False
    callers: frozenset[str] | None = None
    publish: PublishSettings | None = None

    @property
    def content_disposition(self) -> str:
        """``inline`` or ``attachment``: a rule of what GET URLs sign, so it lives in the rules."""
        return self.rules.content_disposition

    def allows(self, via: str) -> bool:
        """Whether a caller identified this way (``Caller.via``) may use this kind."""
        return self.callers is None or CALLER_CLASSES.get(via, "") in self.callers

    @property
    def attachment(self) -> bool:
        return self.rules.content_disposition == "attachment"


@dataclass(frozen=True)
class Kinds:
    """Every kind of one deployment, ``default`` first."""

    by_name: Mapping[str, Kind]

    @property
    def default(self) -> Kind:
        return self.by_name[DEFAULT]

    def get(self, name: str | None) -> Kind:
        """The kind called ``name`` (None: ``default``); an unknown name is a 404 naming it."""
        if name is None:
            return self.by_name[DEFAULT]
        found = self.by_name.get(name) if isinstance(name, str) else None
        if found is None:
            shown = name if isinstance(name, str) and len(name) <= 64 and name.isprintable() else "?"
            raise NotFound("unknown_kind", f"there is no upload kind {shown!r}")
        return found

    def choose(self, name: object, via: str) -> Kind:
        """The kind a request names, refused (403) when this caller may not use it."""
        if name is not None and not isinstance(name, str):
            raise Malformed("invalid_input", "kind must be the name of an upload kind (a string)")
        kind = self.get(name)
        if not kind.allows(via):
            raise NotAllowed("kind_not_allowed", f"the upload kind {kind.name!r} is not open to this caller "
                             f"({CALLER_CLASSES.get(via, via)})")
        return kind

    def names_for(self, via: str) -> list[str]:
        """The kinds a caller identified this way may use (for /v1/whoami and /v1/objects)."""
        return [name for name, kind in self.by_name.items() if kind.allows(via)]

    def buckets(self) -> list[Bucket]:
        """Every bucket in use (uploads), each once, default's first."""
        seen: dict[str, Bucket] = {}
        for kind in self.by_name.values():
            seen.setdefault(kind.bucket.name, kind.bucket)
        return list(seen.values())


# --- the table of keys ---------------------------------------------------------


@dataclass(frozen=True)
class KindKey:
    """One key of a ``[kinds.<name>]`` table: its TOML type, its default and what it does."""

    name: str
    type: str  # "string", "integer", "boolean", "list of strings", "table"
    default: str
    description: str


KEYS: tuple[KindKey, ...] = (
    KindKey("bucket", "string", "SIGNER_BUCKET", "The bucket this kind's uploads go to (S3's naming rules)."),
    KindKey("key_prefix", "string", "SIGNER_KEY_PREFIX",
            "Where in the bucket; ends with '/'. Kinds in one bucket must not overlap."),
    KindKey("max_size", "integer", "SIGNER_MAX_SIZE", "Largest upload in bytes (signed, so the store enforces it)."),
    KindKey("content_types", "list of strings", "SIGNER_ALLOWED_CONTENT_TYPES",
            "Allowed types, e.g. [\"image/png\", \"image/jpeg\"]; `type/*` wildcards; empty: any."),
    KindKey("max_expires", "integer", "SIGNER_MAX_EXPIRES", "Longest lifetime of a signature, in seconds."),
    KindKey("methods", "list of strings", "SIGNER_ALLOWED_METHODS", "Of GET, PUT, HEAD, DELETE."),
    KindKey("acls", "list of strings", "SIGNER_ALLOWED_ACLS", "Canned ACLs a POST form may set."),
    KindKey("overwrite", "string", "SIGNER_OVERWRITE",
            "`deny` signs If-None-Match: * (a second upload to a key gets 412); `allow` replaces."),
    KindKey("check_content", "boolean", "false",
            "The finish step reads the first bytes and deletes an object whose bytes are not its declared type."),
    KindKey("content_disposition", "string", "\"inline\"",
            "`attachment`: GET URLs sign response-content-disposition, so a file downloads rather than renders."),
    KindKey("callers", "list of strings", "[\"tokens\", \"users\", \"anonymous\"]",
            "Which callers may use the kind: bearer `tokens`, gateway `users`, `anonymous` visitors."),
    KindKey("publish", "table", "none", "Copy finished uploads to a public bucket (keys below)."),
)
PUBLISH_KEYS: tuple[KindKey, ...] = (
    KindKey("bucket", "string", "(required)", "The public bucket, in the same store."),
    KindKey("template", "string", DEFAULT_TEMPLATE, "The public name, as SIGNER_PUBLISH_TEMPLATE."),
    KindKey("url", "string", "the bucket's URL", "Base of public URLs (a CDN), as SIGNER_PUBLISH_URL."),
    KindKey("delete_source", "boolean", "false", "Delete the upload once copied."),
    KindKey("on_upload", "boolean", "false", "Publish every finished upload of this kind."),
)
_TYPES: Mapping[str, Callable[[object], bool]] = {
    "string": lambda value: isinstance(value, str),
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "list of strings": lambda value: isinstance(value, list) and all(isinstance(item, str) for item in value),
    "table": lambda value: isinstance(value, dict),
}


def reference() -> str:
    """The Markdown reference of the keys (docs/kinds.md holds this text; a test compares)."""
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    lines += [f"| `{k.name}` | {k.type} | {k.default} | {k.description} |" for k in KEYS]
    lines += ["", "The `publish` table:", "", "| key | type | default | description |", "| --- | --- | --- | --- |"]
    lines += [f"| `{k.name}` | {k.type} | {k.default} | {k.description} |" for k in PUBLISH_KEYS]
    return "\n".join(lines) + "\n"


# --- loading -------------------------------------------------------------------


class _Problem(Exception):
    """A bad value of one key (the loader adds the file and the kind)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def load_kinds(path: str | None, default: Kind, secret: bytes) -> Kinds:
    """``default`` (from the environment) and the kinds in the TOML file at ``path``. A key left
    out of a kind is the ``default`` kind's (``publish``: none); ``secret`` names public objects."""
    kinds: dict[str, Kind] = {DEFAULT: default}
    if path is None:
        return Kinds(kinds)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"SIGNER_CONFIG: cannot read {path}: {(exc.strerror or 'unreadable').lower()}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    for top in document:
        if top != "kinds":
            raise ConfigError(f"{path}: unknown table or key {top!r} (only [kinds.<name>] tables)")
    tables = document.get("kinds", {})
    if not isinstance(tables, dict):
        raise ConfigError(f"{path}: kinds must be tables, [kinds.<name>]")
    for name, table in tables.items():
        where = f"{path}: [kinds.{name}]"
        if name == DEFAULT:
            raise ConfigError(f"{where}: the kind 'default' is described by the SIGNER_* environment variables")
        if not NAME.fullmatch(name):
            raise ConfigError(f"{where}: a kind's name must be 1-32 lower-case letters, digits, '-' or '_'")
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: must be a table")
        try:
            kinds[name] = _kind(name, table, default, secret)
        except _Problem as problem:
            raise ConfigError(f"{where} {problem.key}: {problem.message}") from None
    _check_overlaps(path, kinds)
    return Kinds(kinds)


def _typed(keys: tuple[KindKey, ...], table: Mapping[str, Any], within: str = "") -> dict[str, Any]:
    known = {key.name: key for key in keys}
    for name, value in table.items():
        key = known.get(name)
        if key is None:
            raise _Problem(within + name, f"unknown key (a kind has {', '.join(known)})")
        if not _TYPES[key.type](value):
            raise _Problem(within + name, f"must be a {key.type}")
    return dict(table)


def _kind(name: str, table: Mapping[str, Any], default: Kind, secret: bytes) -> Kind:
    values = _typed(KEYS, table)
    rules = default.rules
    bucket = default.bucket
    if "bucket" in values:
        try:
            bucket = Bucket(values["bucket"], bucket.region, bucket.endpoint_url, bucket.addressing_style)
        except SigningError as exc:
            raise _Problem("bucket", exc.message) from None
    changes: dict[str, Any] = {}
    if "key_prefix" in values:
        prefix = values["key_prefix"]
        if prefix and (not prefix.endswith("/") or prefix.startswith("/") or {".", ".."} & set(prefix.split("/"))):
            raise _Problem("key_prefix", "must end with '/' and not start with '/' (e.g. 'avatars/')")
        changes["key_prefix"] = prefix
    if "max_size" in values:
        changes["max_size"] = _whole(values["max_size"], "max_size", 1, 5 * 1024**4)
    if "content_types" in values:
        types = tuple(media.lower() for media in values["content_types"])
        for media in types:
            if not MEDIA_RANGE.fullmatch(media):
                raise _Problem("content_types", f"{media!r} is not type/subtype or type/*")
        changes["allowed_content_types"] = types
    if "max_expires" in values:
        changes["max_expires"] = _whole(values["max_expires"], "max_expires", 1, MAX_EXPIRES)
    if "methods" in values:
        methods = frozenset(method.upper() for method in values["methods"])
        if not methods or not methods <= {"GET", "PUT", "HEAD", "DELETE"}:
            raise _Problem("methods", "may list only GET, PUT, HEAD and DELETE (at least one)")
        changes["allowed_methods"] = methods
    if "acls" in values:
        acls = frozenset(values["acls"])
        if not acls or not acls <= CANNED_ACLS:
            raise _Problem("acls", f"may list only {', '.join(sorted(CANNED_ACLS))} (at least one)")
        changes["allowed_acls"] = acls
    if "overwrite" in values:
        changes["overwrite"] = _one_of(values["overwrite"], "overwrite", ("allow", "deny"))
    changes["content_disposition"] = _one_of(values.get("content_disposition", "inline"), "content_disposition",
                                             DISPOSITIONS)
    callers = frozenset(values.get("callers", CALLER_CLASSES.values()))
    if not callers or not callers <= set(CALLER_CLASSES.values()):
        raise _Problem("callers", "may list only tokens, users and anonymous (at least one)")
    return Kind(name, bucket, replace(rules, **changes), bool(values.get("check_content", False)), callers,
                _publish(values.get("publish"), bucket, secret))


def _whole(value: int, key: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise _Problem(key, f"must be between {low} and {high}, got {value}")
    return value


def _one_of(value: str, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _Problem(key, f"must be {' or '.join(repr(choice) for choice in choices)}, got {value!r}")
    return value


def _publish(table: Mapping[str, Any] | None, uploads: Bucket, secret: bytes) -> PublishSettings | None:
    if table is None:
        return None
    values = _typed(PUBLISH_KEYS, table, "publish.")
    if "bucket" not in values:
        raise _Problem("publish.bucket", "is required (the bucket to publish to)")
    if not secret:
        raise _Problem("publish", "needs SIGNER_COOKIE_SECRET when the credentials rotate (it names public objects)")
    try:
        bucket = Bucket(values["bucket"], uploads.region, uploads.endpoint_url, uploads.addressing_style)
    except SigningError as exc:
        raise _Problem("publish.bucket", exc.message) from None
    template = values.get("template", DEFAULT_TEMPLATE)
    problem = template_problem(template)
    if problem:
        raise _Problem("publish.template", problem)
    url = values.get("url")
    if url is not None:
        if not PUBLIC_URL.fullmatch(url):
            raise _Problem("publish.url", "must be http(s)://host[:port][/path], e.g. https://cdn.example/")
        url = url if url.endswith("/") else url + "/"
    return PublishSettings(bucket=bucket, secret=secret, prefix=DEFAULT_PREFIX, template=template, public_url=url,
                           delete_source=bool(values.get("delete_source", False)),
                           on_upload=bool(values.get("on_upload", False)))


def _check_overlaps(path: str, kinds: Mapping[str, Kind]) -> None:
    """Two kinds in one bucket under overlapping prefixes would let one kind's rules write over
    the other's objects (an ``overwrite = "allow"`` avatar over a denied doc), and a public prefix
    inside an upload prefix would let callers write public objects: refused, naming the later kind."""
    places: list[tuple[str, str, str, str]] = []  # bucket, prefix, kind, key
    for kind in kinds.values():
        mine = [(kind.bucket.name, kind.rules.key_prefix, kind.name, "key_prefix")]
        if kind.publish is not None:
            mine.append((kind.publish.bucket.name, kind.publish.prefix, kind.name, "publish.bucket"))
        for bucket, prefix, name, key in mine:
            for other_bucket, other_prefix, other_name, other_key in places:
                both_public = key == other_key == "publish.bucket"  # callers write neither
                if bucket == other_bucket and not both_public and (
                        prefix.startswith(other_prefix) or other_prefix.startswith(prefix)):
                    raise ConfigError(
                        f"{path}: [kinds.{name}] {key}: {prefix!r} in bucket {bucket!r} overlaps kind {other_name!r} "
                        f"({other_prefix!r}); give each kind its own key_prefix or bucket")
            places.append((bucket, prefix, name, key))
