#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (Debian's chromium
# included), then on two lanes, one per core: the chapters' live widgets in JupyterLab (the
# longest test, started with scripts/lab.sh) from the start on one; on the other the unit
# tests, the identity checks, the conformance test against TRL and verl and its negative
# control (in its own venv, .venv-conformance, installed in the background from the start),
# the run store (every run fresh, a sample replayed), nbval (strict) on every chapter, the
# book build and the website's browser test. Prints the time of each stage. Runs from any
# directory. The first stage is the lint and format check (ruff, configured in pyproject.toml).
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
# The JupyterLab test runs every chapter with its widgets in a browser (about 13 minutes): it
# needs only the venv and chromium, so it starts now, on its own core, and is waited for at
# the end. From here on the notebooks read the run store strictly: a chapter that would train
# a spread (a run missing from runs/ or stale) fails instead.
export RLVIZ_RUNS_STRICT=1
mkdir -p _build
lab_start=$(date +%s)
pytest tests/browser/test_lab.py -q -p no:cacheprovider < /dev/null > _build/lab-test.log 2>&1 &
lab_pid=$!
# a stage that fails ends the script: stop the lab test (and the lab server it started) too
stop_lab() { pkill -TERM -P "$lab_pid" 2>/dev/null || true; kill "$lab_pid" 2>/dev/null || true; }
trap stop_lab EXIT
stage "unit tests" env -u RLVIZ_RUNS_STRICT pytest tests --ignore=tests/browser \
    --ignore=tests/conformance -q -p no:cacheprovider
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
# nbval, then the book build, then the website's browser test, on this lane; then the lab
# test's result. Each part's time and log are printed.
chapters_stage() {
    local s; s=$(date +%s)
    local build_rc=0 nbval_rc=0 site_rc=0 lab_rc=0 chapters
    mapfile -t chapters < <(ls book/*.ipynb | sort -r)
    pytest --nbval --nbval-current-env "${chapters[@]}" -q -p no:cacheprovider < /dev/null > _build/nbval.log 2>&1 || nbval_rc=$?
    echo "-- nbval finished after $(( $(date +%s) - s )) s (exit $nbval_rc)"
    jupyter-book build . -W --keep-going < /dev/null > _build/book-build.log 2>&1 || build_rc=$?
    echo "-- book build finished after $(( $(date +%s) - s )) s (exit $build_rc)"
    pytest tests/browser/test_site.py -q -p no:cacheprovider < /dev/null > _build/site-test.log 2>&1 || site_rc=$?
    echo "-- website test finished after $(( $(date +%s) - s )) s (exit $site_rc)"
    wait "$lab_pid" || lab_rc=$?
    echo "-- JupyterLab test (started with the unit tests) finished after $(( $(date +%s) - lab_start )) s in all (exit $lab_rc)"
    echo "---- nbval (strict) ----"; tail -n 30 _build/nbval.log
    echo "---- book build (warnings and result) ----"
    grep -E "WARNING|ERROR|build succeeded|build finished|Exception|Error" _build/book-build.log | tail -n 40 || true
    echo "---- browser test: the website ----"; tail -n 30 _build/site-test.log
    echo "---- browser test: the chapters live in JupyterLab ----"; tail -n 30 _build/lab-test.log
    echo "---- live widgets in JupyterLab: recompute time per control (_build/lab-widgets.md) ----"
    cat _build/lab-widgets.md 2>/dev/null || true
    [ "$build_rc" = 0 ] && [ "$nbval_rc" = 0 ] && [ "$site_rc" = 0 ] && [ "$lab_rc" = 0 ]
}
stage "notebooks (nbval, strict), book build, website test; and the JupyterLab test's result" chapters_stage
echo; echo "== all tests passed in $(( $(date +%s) - t0 )) s"
