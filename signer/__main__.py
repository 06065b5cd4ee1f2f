"""Command line: ``python -m signer presign PUT uploads/cat.jpg --content-type image/jpeg --expires 300``.

Reads the same environment as the service and applies the same rules (without a
caller identity: the operator holds the keys anyway), then prints the URL alone on
stdout so ``curl -T cat.jpg -H 'Content-Type: image/jpeg' "$(python -m signer ...)"`` works.
"""

from __future__ import annotations

import argparse
import sys

from .config import load_config
from .errors import SigningError
from .presign import presign_url
from .sigv4 import current_time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m signer", description="Sign S3 requests within the configured rules.")
    commands = parser.add_subparsers(dest="command", required=True)
    presign = commands.add_parser("presign", help="print a presigned URL")
    presign.add_argument("method", help="GET, PUT, HEAD or DELETE (as allowed by SIGNER_ALLOWED_METHODS)")
    presign.add_argument("key", help="the object key, under SIGNER_KEY_PREFIX")
    presign.add_argument("--content-type", help="PUT: the Content-Type the upload must send")
    presign.add_argument("--content-length", type=int, help="PUT: the exact size the upload must send")
    presign.add_argument("--expires", type=int, help="lifetime in seconds (at most SIGNER_MAX_EXPIRES)")
    commands.add_parser("check-config", help="validate the environment and exit")
    args = parser.parse_args(argv)

    try:
        config = load_config()
        if args.command == "check-config":
            print(f"configuration is valid: bucket {config.bucket.name} at {config.bucket.base_url}")
            return 0
        rules = config.rules
        method = rules.check_method(args.method)
        key = rules.check_key(args.key, None)
        headers: dict[str, str] = {}
        if method == "PUT":
            content_type = rules.check_content_type(args.content_type)
            if content_type:
                headers["Content-Type"] = content_type
            if args.content_length is not None:
                headers["Content-Length"] = str(rules.check_size(args.content_length, "content length"))
        url = presign_url(
            config.credentials, config.bucket, key, method=method,
            expires_in=rules.check_expires(args.expires), headers=headers, now=current_time(),
        )
    except SigningError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(url.url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
