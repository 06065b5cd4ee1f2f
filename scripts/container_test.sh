#!/usr/bin/env bash
# Build the project's Dockerfile with podman and run the container checks
# (tests/e2e/test_container.py). Usage:
#   scripts/container_test.sh            install the tools if missing, build, run the checks
#   scripts/container_test.sh build      install the tools if missing, build; print the image name
#
# There is no Docker engine on CI's machine; podman builds the Dockerfile unchanged. Its base,
# python:3.11-slim, cannot be pulled there (no registry but Debian's, PyPI and npm), so a
# stand-in base is made from Debian packages with debootstrap and imported under that name.
# The stand-in is for these tests only and is never published. It stays in podman's storage,
# so later runs skip debootstrap (cold: ~2 min, warm: seconds).
# Exit 3 means "tools missing and not installable" (never under CI=true: there it is exit 1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CONTAINERS_CONF="$ROOT/scripts/podman/containers.conf"
BASE=docker.io/library/python:3.11-slim
IMAGE=${SIGNER_TEST_IMAGE:-localhost/sigv4-signer:test}

log() { echo "container_test: $*" >&2; }

ensure_tools() {
    local missing=()
    for tool in podman runc debootstrap; do
        command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing ${missing[*]} from Debian"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc debootstrap >/dev/null; } \
            || true
    fi
    export PATH="$PATH:/usr/sbin:/sbin"
    for tool in podman runc debootstrap; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            if [ "${CI:-}" = true ]; then
                log "FAILED: $tool is missing and could not be installed (apt-get install podman runc debootstrap)"
                exit 1
            fi
            log "SKIPPED: $tool is missing; install it with: apt-get install podman runc debootstrap (as root)"
            exit 3
        fi
    done
}

# The machine's pip settings as one pip.conf: files as they are, PIP_* variables as [global] keys,
# so pip inside the build reaches the same index the machine does.
pip_settings() {
    local rootfs=$1
    for file in /etc/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf"; do
        [ -f "$file" ] || continue
        mkdir -p "$rootfs/$(dirname "$file")"
        cp "$file" "$rootfs/$file"
    done
    [ -d /etc/xdg/pip ] && mkdir -p "$rootfs/etc/xdg" && cp -r /etc/xdg/pip "$rootfs/etc/xdg/"
    local extra
    extra=$(env | sed -n 's/^PIP_\([A-Z0-9_]*\)=\(.*\)$/\1=\2/p' | while IFS='=' read -r name value; do
        key=$(echo "$name" | tr 'A-Z_' 'a-z-'); echo "$key = $value"; done)
    if [ -n "$extra" ]; then
        mkdir -p "$rootfs/etc/xdg/pip"
        # pip reads /etc/xdg/pip/pip.conf before the user files, like the variables' lowest layer.
        { cat "$rootfs/etc/xdg/pip/pip.conf" 2>/dev/null || echo "[global]"; echo "$extra"; } > "$rootfs/etc/xdg/pip/pip.conf.new"
        mv "$rootfs/etc/xdg/pip/pip.conf.new" "$rootfs/etc/xdg/pip/pip.conf"
    fi
}

build_base() {
    if podman image exists "$BASE"; then
        log "stand-in base $BASE is cached"
        return 0
    fi
    local work
    work=$(mktemp -d /var/tmp/signer-base.XXXXXX)
    trap 'rm -rf "$work"' RETURN
    log "making the stand-in base $BASE with debootstrap (about 2 minutes, once)"
    debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
        bookworm "$work/rootfs" >"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; return 1; }
    rm -f "$work"/rootfs/usr/lib/python3*/EXTERNALLY-MANAGED
    cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
    if [ -d /usr/local/share/ca-certificates ]; then
        cp -r /usr/local/share/ca-certificates/. "$work/rootfs/usr/local/share/ca-certificates/"
    fi
    pip_settings "$work/rootfs"
    rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
    tar -C "$work/rootfs" -c . | podman import --change 'CMD ["python3"]' - "$BASE" >/dev/null
    log "stand-in base imported"
}

build_image() {
    # docker format: the OCI format drops HEALTHCHECK.
    podman build --quiet --format docker --pull=never -t "$IMAGE" . >/dev/null
}

ensure_tools
build_base
build_image
if [ "${1:-}" = build ]; then
    echo "$IMAGE"
    exit 0
fi
source scripts/venv.sh
ensure_venv requirements-test.txt
SIGNER_TEST_IMAGE=$IMAGE exec .venv/bin/python -m pytest -p no:cacheprovider tests/e2e/test_container.py "$@"
