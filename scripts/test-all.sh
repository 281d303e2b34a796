#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (Debian's chromium
# included), then runs the unit tests, the identity checks, nbval (strict) on every chapter,
# builds the book and runs the browser tests: the website, and the chapters' live widgets in
# JupyterLab (started with scripts/lab.sh), side by side. Prints the time of each stage. Runs from any
# directory. The first stage is the lint and format check (ruff, configured in pyproject.toml).
# The conformance test against TRL and verl (scripts/conformance.sh) runs after the identity
# checks, in its own venv (.venv-conformance), installed in the background meanwhile; then
# its negative control: with an rlviz loss perturbed, the same test must fail.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0
fi
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
cd "$(rlviz_root)"
mkdir -p _build
# the conformance venv installs (network and unpacking, one core) in the background from the
# start: beside the book's venv, chromium and the unit tests
bash scripts/conformance.sh --prepare < /dev/null > _build/conformance-install.log 2>&1 &
conformance_install_pid=$!
rlviz_venv
rlviz_fresh_cache
if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the browser test"
    rlviz_as_root apt-get update -qq
    rlviz_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
fi
t0=$(date +%s)
stage() { local s; s=$(date +%s); echo; echo "== $1"; shift; "$@"; echo "== done in $(( $(date +%s) - s )) s"; }
lint() { ruff check . && ruff format --check .; }
stage "lint and format (ruff check, ruff format --check)" lint
stage "unit tests" pytest tests --ignore=tests/browser --ignore=tests/conformance -q \
    -p no:cacheprovider
stage "identity checks" python -m rlviz verify
conformance() {
    local rc=0
    wait "$conformance_install_pid" || rc=$?
    echo "---- conformance venv (installed in the background) ----"
    cat _build/conformance-install.log
    [ "$rc" = 0 ] || return "$rc"
    bash scripts/conformance.sh
    echo "---- negative control: rlviz's per-answer token mean without 1/|y_i| must FAIL ----"
    local log=_build/conformance-perturbed.log
    rc=0
    RLVIZ_CONFORMANCE_PERTURB=drop-length-norm bash scripts/conformance.sh > "$log" 2>&1 || rc=$?
    grep -E "^[0-9]+ (failed|passed)|failed,|passed in" "$log" | tail -n 1
    if [ "$rc" = 0 ] || ! grep -qE "[0-9]+ failed" "$log"; then
        echo "the perturbed rlviz passed the conformance test: it cannot fail" >&2
        tail -n 30 "$log" >&2
        return 1
    fi
}
stage "conformance against TRL and verl (and its negative control)" conformance
# The trained runs of chapters 14-17 are data (runs/, rlviz/experiments/run_store.py): every
# run the book reads must be stored with the current code's hash, and a seeded sample (one run
# per chapter and variant) is trained again here and must give the stored log bit for bit
# (wall-clock fields aside). Its negative control, a doctored stored log that the replay must
# reject, is a unit test (tests/experiments/test_run_store.py).
runs_stage() {
    python -m rlviz runs check
    python -m rlviz runs replay --jobs 2 --sample-seed "${RLVIZ_REPLAY_SEED:-0}"
}
stage "run store: every run fresh, a sample replayed" runs_stage
# From here on a chapter that reads a run missing from the store (or stale) fails instead of
# training it: the notebooks never train a spread in CI.
export RLVIZ_RUNS_STRICT=1
# The heavy stages, on both cores: nbval and the book build execute every chapter side by
# side; the website's browser test starts as soon as the build is done (beside the rest of
# nbval), the JupyterLab test as soon as nbval is done (beside the rest of the website's
# test). Each part's time and log are printed.
heavy_stages() {
    local s; s=$(date +%s)
    local build_rc=0 nbval_rc=0 site_rc=0 lab_rc=0 chapters
    mapfile -t chapters < <(ls book/*.ipynb | sort -r)
    pytest --nbval --nbval-current-env "${chapters[@]}" -q -p no:cacheprovider < /dev/null > _build/nbval.log 2>&1 &
    local nbval_pid=$!
    jupyter-book build . -W --keep-going < /dev/null > _build/book-build.log 2>&1 || build_rc=$?
    echo "-- book build finished after $(( $(date +%s) - s )) s (exit $build_rc)"
    pytest tests/browser/test_site.py -q -p no:cacheprovider < /dev/null > _build/site-test.log 2>&1 &
    local site_pid=$!
    wait "$nbval_pid" || nbval_rc=$?
    echo "-- nbval finished after $(( $(date +%s) - s )) s (exit $nbval_rc)"
    pytest tests/browser/test_lab.py -q -p no:cacheprovider < /dev/null > _build/lab-test.log 2>&1 || lab_rc=$?
    echo "-- JupyterLab test finished after $(( $(date +%s) - s )) s (exit $lab_rc)"
    wait "$site_pid" || site_rc=$?
    echo "-- website test finished after $(( $(date +%s) - s )) s (exit $site_rc)"
    echo "---- nbval (strict) ----"; tail -n 30 _build/nbval.log
    echo "---- book build (warnings and result) ----"
    grep -E "WARNING|ERROR|build succeeded|build finished|Exception|Error" _build/book-build.log | tail -n 40 || true
    echo "---- browser test: the website ----"; tail -n 30 _build/site-test.log
    echo "---- browser test: the chapters live in JupyterLab ----"; tail -n 30 _build/lab-test.log
    echo "---- live widgets in JupyterLab: recompute time per control (_build/lab-widgets.md) ----"
    cat _build/lab-widgets.md 2>/dev/null || true
    [ "$build_rc" = 0 ] && [ "$nbval_rc" = 0 ] && [ "$site_rc" = 0 ] && [ "$lab_rc" = 0 ]
}
stage "notebooks (nbval, strict), book build and the browser tests, on both cores" heavy_stages
echo; echo "== all tests passed in $(( $(date +%s) - t0 )) s"
