#!/usr/bin/env bash
# Conformance of rlviz's GRPO functions against TRL and verl: feeds the same tensors
# (log-probabilities, old and reference log-probabilities, masks, rewards) to rlviz's functions
# and to the libraries' own loss, advantage and KL code, and requires agreement to float
# precision (tests/conformance, see conformance/README.md). Creates or updates a separate venv,
# .venv-conformance ($RLVIZ_CONFORMANCE_VENV overrides it), from the lock
# conformance/requirements.txt (hashes required; torch is the book's CPU wheel 2.13.0), installs
# rlviz into it (editable, no dependencies), then runs pytest on tests/conformance. Extra
# arguments go to pytest (e.g. -k verl). Prints the time of the install and of the tests.
# The negative control: RLVIZ_CONFORMANCE_PERTURB=drop-length-norm runs the same tests against
# an rlviz whose per-answer token mean forgets 1/|y_i|; the comparisons that use it then fail.
# --prepare: only create or update the venv (scripts/test-all.sh does it in the background
# while the unit tests run). Runs from any directory. Needs the package index (the first
# install downloads about 1 GB).
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0
fi
prepare_only=0
if [ "${1:-}" = "--prepare" ]; then prepare_only=1; shift; fi
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
root=$(rlviz_root)
cd "$root"
# rlviz_venv (scripts/_env.sh) does the same for .venv: the lock, then rlviz itself, each
# redone only when its input file differs from the copy stamped in the venv.
venv=${RLVIZ_CONFORMANCE_VENV:-$root/.venv-conformance}
lock=conformance/requirements.txt
python=${PYTHON:-python3}
t0=$(date +%s)
if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        rm -rf "$venv"
        rlviz_as_root apt-get update -qq
        rlviz_as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq python3-venv python3-pip
        "$python" -m venv "$venv"
    fi
fi
if [ ! -f "$venv/.requirements-installed" ] || ! cmp -s "$lock" "$venv/.requirements-installed"; then
    echo "== installing $lock (hashes required) into $venv"
    rm -f "$venv/.requirements-installed" "$venv/.pyproject-installed"
    rlviz_install_lock "$venv" "$lock"
    cp "$lock" "$venv/.requirements-installed"
fi
if [ ! -f "$venv/.pyproject-installed" ] || ! cmp -s pyproject.toml "$venv/.pyproject-installed"; then
    echo "== installing rlviz (editable, no dependencies) into $venv"
    if ! "$venv/bin/python" -m pip install --no-index --no-deps --no-build-isolation \
            -e "$root" > "$venv/.rlviz-install.log" 2>&1; then
        cat "$venv/.rlviz-install.log" >&2
        exit 1
    fi
    cp pyproject.toml "$venv/.pyproject-installed"
fi
t1=$(date +%s)
echo "== environment ready in $(( t1 - t0 )) s"
if [ "$prepare_only" = 1 ]; then exit 0; fi
# RLVIZ_CONFORMANCE=1: tests/conformance/conftest.py then fails (instead of skipping) when TRL
# or verl cannot be imported.
rc=0
RLVIZ_CONFORMANCE=1 "$venv/bin/python" -m pytest tests/conformance -q -p no:cacheprovider "$@" \
    || rc=$?
echo "== conformance tests finished in $(( $(date +%s) - t1 )) s (exit $rc)"
exit "$rc"
