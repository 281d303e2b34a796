# Sourced by build-site.sh and test-all.sh: create .venv if needed and install requirements.
# Works on a fresh Debian machine with Python 3.11 (installs python3-venv if it is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x .venv/bin/python ]; then
    if ! "$PYTHON" -m venv .venv 2>/dev/null; then
        rm -rf .venv
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip
        "$PYTHON" -m venv .venv
    fi
fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=.venv/.requirements-installed
if [ ! -f "$stamp" ] || ! cmp -s requirements.txt "$stamp"; then
    echo "== installing requirements into .venv"
    python -m pip install -q --upgrade pip
    python -m pip install -q -r requirements.txt
    cp requirements.txt "$stamp"
fi
