#!/usr/bin/env bash
# Set up and run the signing service on http://127.0.0.1:8080 (loopback only unless SIGNER_BIND
# says otherwise).
# With no SIGNER_BUCKET in the environment it runs the local default: SeaweedFS (a real S3 that
# checks signatures and POST policies) on 127.0.0.1:${LOCAL_S3_PORT:-9000} with a bucket
# `local-uploads` (and `local-public`, where POST /v1/uploads/publish copies uploads; anyone may
# read its objects), data kept in .local-data/, the demo page for anonymous callers and one API
# token for curl: local-dev-token-0123456789 (identity "local").
# With SIGNER_BUCKET (and AWS credentials, optionally SIGNER_ENDPOINT_URL) set, it serves that
# store instead. Set-up steps already done are skipped on later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
# The mode first, and why: an exported SIGNER_BUCKET (the README's CLI block sets one) means that store.
if [ -z "${SIGNER_BUCKET:-}" ]; then
    echo "run.sh: the local default (SeaweedFS, no AWS account), since SIGNER_BUCKET is not set" >&2
else
    echo "run.sh: serving bucket '$SIGNER_BUCKET' at ${SIGNER_ENDPOINT_URL:-AWS S3}, since SIGNER_BUCKET is set" \
         "(unset it for the local default)" >&2
fi
source scripts/venv.sh
ensure_haproxy
export SIGNER_BIND="${SIGNER_BIND:-127.0.0.1:8080}"
# Prometheus metrics on their own listener, loopback only (docs/metrics.md); SIGNER_METRICS_BIND= turns them off.
export SIGNER_METRICS_BIND="${SIGNER_METRICS_BIND-127.0.0.1:9102}"
if [ -z "${SIGNER_BUCKET:-}" ]; then
    ensure_venv requirements-local.txt
    if [ -f package.json ] && command -v npm >/dev/null; then
        ensure_npm || echo "npm ci failed: the demo page falls back to a plain form" >&2
    else
        echo "npm not found: the demo page is a plain form (install npm for Fine Uploader's page)" >&2
    fi
    export AWS_ACCESS_KEY_ID=local-access-key AWS_SECRET_ACCESS_KEY=local-secret-key AWS_REGION=us-east-1
    export SIGNER_BUCKET=local-uploads SIGNER_ADDRESSING_STYLE=virtual
    export SIGNER_PUBLISH_BUCKET="${SIGNER_PUBLISH_BUCKET-local-public}"
    export SIGNER_ENDPOINT_URL="http://s3.localhost:${LOCAL_S3_PORT:-9000}"
    export SIGNER_ALLOW_ANONYMOUS=true SIGNER_DEMO_PAGE=true SIGNER_MAX_SIZE="${SIGNER_MAX_SIZE:-52428800}"
    export SIGNER_API_TOKENS="${SIGNER_API_TOKENS:-local:local-dev-token-0123456789}"
    export SIGNER_WORKERS="${SIGNER_WORKERS:-2}" SIGNER_ALLOWED_METHODS="${SIGNER_ALLOWED_METHODS:-GET,PUT,HEAD,DELETE}"
    port="${SIGNER_BIND##*:}"
    export SIGNER_CORS_ORIGINS="${SIGNER_CORS_ORIGINS:-http://127.0.0.1:$port,http://localhost:$port}"
    exec .venv/bin/python -m scripts.local_store
fi
ensure_venv requirements.txt
.venv/bin/python -m scripts.local_store --check-bind || exit 1
exec .venv/bin/gunicorn --config gunicorn.conf.py wsgi:app
