# Sourced by run.sh and test.sh: make .venv (once) and install the given requirements file, and
# install the npm peers; each step is skipped when a stamp says it is already done.
# On Debian, `python3 -m venv` needs the python3-venv package; install it when we can.

# The hash of a requirements file and of every file it includes with -r.
requirements_hash() {
    local file="$1" dir
    dir="$(dirname "$file")"
    {
        cat "$file"
        sed -n 's/^-r[[:space:]]*//p' "$file" | while read -r included; do requirements_hash "$dir/$included"; done
    } | sha256sum | cut -d' ' -f1
}

ensure_venv() {
    local requirements="$1" stamp wanted
    if [ ! -x .venv/bin/python ]; then
        echo "setting up: Python virtualenv .venv/" >&2
        if ! python3 -m venv .venv 2>/dev/null; then
            rm -rf .venv
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
                sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv >/dev/null
            fi
            python3 -m venv .venv || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
        fi
    fi
    stamp=".venv/.installed-$(basename "$requirements")"
    wanted="$(requirements_hash "$requirements")"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        return 0
    fi
    echo "setting up: pip install -r $requirements (once; a minute or two the first time)" >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$stamp"
}

# npm ci, unless node_modules was installed from this very package-lock.json.
ensure_npm() {
    local stamp=node_modules/.installed-package-lock wanted
    wanted="$(sha256sum package-lock.json | cut -d' ' -f1)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
        return 0
    fi
    echo "setting up: npm ci (the browser peers from package-lock.json)" >&2
    npm ci --silent --no-audit --no-fund || return 1
    echo "$wanted" > "$stamp"
}

# HAProxy, the front gunicorn.conf.py starts (signer/service/front.py): Debian's package, installed
# when missing and we can (root, or sudo). Not needed with SIGNER_FRONT=none.
ensure_haproxy() {
    [ "${SIGNER_FRONT:-haproxy}" = none ] && return 0
    command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] && return 0
    echo "setting up: apt-get install haproxy (the front that reads each request whole before the app)" >&2
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        { apt-get install -y -qq --no-install-recommends haproxy || { apt-get update -qq && apt-get install -y -qq --no-install-recommends haproxy; }; } >/dev/null
    elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then
        { sudo apt-get install -y -qq --no-install-recommends haproxy || { sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends haproxy; }; } >/dev/null
    fi
    command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || {
        echo "haproxy is missing: install it (Debian: apt-get install haproxy), or set SIGNER_FRONT=none behind your own buffering proxy" >&2
        exit 1
    }
}
