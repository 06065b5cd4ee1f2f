# Sourced by run.sh and test.sh: make .venv (once) and install the given requirements file.
# On Debian, `python3 -m venv` needs the python3-venv package; install it when we can.
ensure_venv() {
    local requirements="$1"
    if [ ! -x .venv/bin/python ]; then
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
    .venv/bin/python -m pip install -q --disable-pip-version-check -r "$requirements"
}
