"""Command line: ``python -m signer presign PUT uploads/cat.jpg --content-type image/jpeg --content-length 1234``.

Reads the same environment as the service and makes its decisions through the same
request plan (:meth:`signer.service.rules.CallerRules.plan_presign`); refusals name the
CLI's flags. ``presign`` needs the library and the service's rules only, never Flask.
The URL alone goes to stdout, so ``curl -T cat.jpg "$(python -m signer presign …)"`` works.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import SigningError

CLI_FIELDS = {
    "method": "METHOD",
    "key": "KEY",
    "filename": "--filename",
    "content_type": "--content-type",
    "content_length": "--content-length",
    "max_size": "--max-size",
    "expires_in": "--expires",
    "checksum_sha256": "--checksum-sha256",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sigv4-signer", description="Sign S3 requests within the configured rules.")
    commands = parser.add_subparsers(dest="command", required=True)
    presign = commands.add_parser("presign", help="print a presigned URL")
    presign.add_argument("method", help="GET, PUT, HEAD or DELETE (as allowed by SIGNER_ALLOWED_METHODS)")
    presign.add_argument("key", nargs="?", help="the object key, under SIGNER_KEY_PREFIX (or give --filename)")
    presign.add_argument("--filename", help="PUT: let the service choose the key; only the extension is kept")
    presign.add_argument("--content-type", help="PUT: the Content-Type the upload must send")
    presign.add_argument("--content-length", type=int, help="PUT: the exact size the upload must send "
                         "(required when SIGNER_MAX_SIZE is set)")
    presign.add_argument("--checksum-sha256", metavar="FILE|VALUE",
                         help="PUT: sign the upload's SHA-256, so the store refuses other bytes: a base64 value "
                         "(44 characters, as S3 spells it) is taken as it is; anything else names a file to hash "
                         "(write ./NAME for a file whose name looks like a value)")
    presign.add_argument("--expires", type=int, help="lifetime in seconds (at most SIGNER_MAX_EXPIRES)")
    presign.add_argument("--identity", help="sign as this caller (key prefix <prefix><identity>/)")
    presign.add_argument("--kind", help="the upload kind (SIGNER_CONFIG, docs/kinds.md); default: default")
    presign.add_argument("--json", action="store_true", help="print method, url, headers, key and expiry as JSON")
    commands.add_parser("check-config", help="validate the environment, fetch the credentials once, and exit")
    doctor = commands.add_parser("doctor", help="check the store with signed requests: credentials, clock, "
                                 "signature checks, POST size limits, CORS (writes and deletes probe objects)")
    doctor.add_argument("--json", action="store_true", help="print the findings as JSON")
    return parser


def sha256_argument(text: str) -> str:
    """``--checksum-sha256 FILE|VALUE``: a well-formed base64 SHA-256 (44 characters ending in
    '=') is the value; anything else is a file, hashed here. The two never meet: base64 has no
    '.', so ``./NAME`` always names a file."""
    import base64
    import hashlib

    from .service.checksums import check_checksum
    from .service.errors import Malformed, Refused

    try:
        return check_checksum("checksum_sha256", text, "--checksum-sha256")[1]
    except Refused:
        pass
    digest = hashlib.sha256()
    try:
        with open(text, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise Malformed("invalid_checksum", f"--checksum-sha256 {text!r} is neither a base64 SHA-256 (44 characters) "
                      f"nor a readable file: {exc.strerror.lower() if exc.strerror else 'unreadable'}") from None
    return base64.b64encode(digest.digest()).decode("ascii")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .service.config import load_config
    from .service.errors import ConfigError, Malformed, Refused
    from .service.grants import Grant, issue
    from .service.rules import IDENTITY, is_reserved
    from .sigv4 import current_time

    try:
        config = load_config(serving=args.command == "check-config")
        if args.command == "check-config":
            from .service.server import server_settings

            server_settings(os.environ)
            for warning in config.warnings:
                print(f"warning: {warning}", file=sys.stderr)
            status = config.credentials_status()
            if not status.usable:
                print(f"configuration is valid, but the credentials from {status.provider} are unavailable: "
                      f"{status.error}", file=sys.stderr)
                return 1
            print(f"configuration is valid: bucket {config.bucket.name} at {config.bucket.base_url}")
            for kind in config.extra_kinds:  # SIGNER_CONFIG's kinds (docs/kinds.md)
                print(f"kind {kind.name}: bucket {kind.bucket.name}, key prefix {kind.rules.key_prefix!r}")
            until = status.expiration.strftime("%Y-%m-%dT%H:%M:%SZ") if status.expiration else "never (static keys)"
            print(f"credentials: {status.provider}, access key {status.access_key}, expire {until}")
            events = (f"events from {config.events.queue.url} (region {config.events.queue.region})"
                      if config.events else "no events queue: markers are swept")
            print(f"finish step: {config.finish_shards} shard(s), {events}")
            if config.jwt is not None:
                from .service.jwt_callers import probe

                reachable, line = probe(config.jwt)
                print(f"jwt: {line}", file=sys.stdout if reachable else sys.stderr)
                return 0 if reachable else 1
            return 0
        if args.command == "doctor":
            from .service.doctor import healthy, report, run_doctor

            findings = run_doctor(config)
            print(json.dumps([f.as_json() for f in findings], indent=2) if args.json else report(findings))
            return 0 if healthy(findings) else 1
        if args.identity is not None and (not IDENTITY.fullmatch(args.identity) or is_reserved(args.identity)):
            raise Malformed("invalid_input",
                          "--identity must be 1-64 letters, digits, '.', '_', '@' or '-' (not 'anonymous' or 'user')")
        checksum = None if args.checksum_sha256 is None else sha256_argument(args.checksum_sha256)
        kind = config.kinds.get(args.kind)
        credentials = config.credentials
        now = current_time()
        plan = kind.rules.for_caller(args.identity, CLI_FIELDS).plan_presign(
            method=args.method, key=args.key, filename=args.filename, content_type=args.content_type,
            content_length=args.content_length, expires_in=args.expires, now=now, valid_until=credentials.expiration,
            checksum_sha256=checksum,
        )
        grant = Grant("cli", args.identity or "", "cli", kind.name, kind.bucket.name, plan.key, plan.method)
        url = issue(grant, lambda: (signed := plan.sign(credentials, kind.bucket, now), signed.expires_at),
                    finish=None, clock_skew=config.rules.clock_skew, now=now)
    except ConfigError as exc:
        print(f"configuration error: {exc.message}", file=sys.stderr)
        return 2
    except (Refused, SigningError) as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({
            "method": plan.method, "url": url.url, "headers": url.headers, "bucket": kind.bucket.name,
            "key": plan.key, "expires_at": url.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }))
    else:
        print(url.url)
    return 0
