#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (Debian's chromium
# included), then runs the unit tests, the identity checks, nbval (strict) on every chapter,
# builds the book and runs the browser test against it. Prints the time of each stage.
source "$(dirname "$0")/_env.sh"
if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the browser test"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
fi
t0=$(date +%s)
stage() { local s; s=$(date +%s); echo; echo "== $1"; shift; "$@"; echo "== done in $(( $(date +%s) - s )) s"; }
stage "unit tests" pytest tests --ignore=tests/browser -q -p no:cacheprovider
stage "identity checks" python -m rlviz verify
stage "notebooks (nbval, strict)" pytest --nbval --nbval-current-env book/ -q -p no:cacheprovider < /dev/null
stage "book build" jupyter-book build . -W --keep-going < /dev/null
stage "browser test" pytest tests/browser -q -p no:cacheprovider
echo; echo "== all tests passed in $(( $(date +%s) - t0 )) s"
