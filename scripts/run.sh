#!/usr/bin/env bash
# Set up and run the signing service on http://127.0.0.1:8080.
# With no SIGNER_BUCKET in the environment it runs the local default: moto's S3 on
# 127.0.0.1:9000 with a bucket, the demo page for anonymous callers (loopback only) and
# one API token for curl: local-dev-token-0123456789 (identity "local").
# With SIGNER_BUCKET (and AWS credentials, optionally SIGNER_ENDPOINT_URL) set, it
# serves that store instead.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
if [ -z "${SIGNER_BUCKET:-}" ]; then
    ensure_venv requirements-local.txt
    if [ -f package.json ] && command -v npm >/dev/null; then
        npm ci --silent --no-audit --no-fund || echo "npm install failed: the demo page falls back to a plain form" >&2
    fi
    export AWS_ACCESS_KEY_ID=local-access-key AWS_SECRET_ACCESS_KEY=local-secret-key AWS_REGION=us-east-1
    export SIGNER_BUCKET=local-uploads SIGNER_ENDPOINT_URL="http://127.0.0.1:${LOCAL_S3_PORT:-9000}"
    export SIGNER_ALLOW_ANONYMOUS=true SIGNER_DEMO_PAGE=true SIGNER_MAX_SIZE="${SIGNER_MAX_SIZE:-52428800}"
    export SIGNER_API_TOKENS="${SIGNER_API_TOKENS:-local:local-dev-token-0123456789}"
    export SIGNER_BIND="${SIGNER_BIND:-127.0.0.1:8080}" SIGNER_WORKERS="${SIGNER_WORKERS:-2}"
    export SIGNER_CORS_ORIGINS="${SIGNER_CORS_ORIGINS:-http://127.0.0.1:8080,http://localhost:8080}"
    echo "local default: http://${SIGNER_BIND} (loopback only; demo page anonymous; API token local-dev-token-0123456789); Ctrl-C to stop"
    exec .venv/bin/python scripts/local_s3.py
fi
ensure_venv requirements.txt
exec .venv/bin/gunicorn --config gunicorn.conf.py wsgi:app
