#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs (Debian's chromium
# included), then runs on two lanes, one per core, printing the time of each stage:
#   lane A (background): the chapters' live widgets in JupyterLab (the longest test, started
#     with scripts/lab.sh), the identity checks, the run store's replay and the unit tests;
#   lane B: the book build, the website's browser test, nbval (strict), the
#     conformance test against TRL and verl and its negative control (in its own venv,
#     .venv-conformance, installed in the background meanwhile).
# First, before both: the lint and format check (ruff, configured in pyproject.toml) and the
# run store's check (every run the book reads stored with the current code's hash). Lane A's
# log is printed when both are done. Runs from any directory.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0
fi
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
cd "$(rlviz_root)"
mkdir -p _build
rlviz_venv
rlviz_fresh_cache
if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the browser test"
    rlviz_as_root apt-get update -qq
    rlviz_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null
fi
t0=$(date +%s)
# a stage prints its name, its time and, when it fails, its exit status, which it returns
stage() {
    local s rc=0; s=$(date +%s); echo; echo "== $1"; shift
    "$@" || rc=$?
    echo "== done in $(( $(date +%s) - s )) s$([ "$rc" = 0 ] || echo " (FAILED: exit $rc)")"
    return "$rc"
}
lint() { ruff check . && ruff format --check .; }
stage "lint and format (ruff check, ruff format --check)" lint
# From here on the notebooks read the run store strictly: a chapter that would train a spread
# (a run missing from runs/ or stale) fails instead. The unit tests make their own stores.
export RLVIZ_RUNS_STRICT=1
stage "run store: every run the book reads is stored fresh" python -m rlviz runs check

conformance() {
    local rc=0
    wait "$conformance_install_pid" || rc=$?
    echo "---- conformance venv (installed in the background) ----"
    cat _build/conformance-install.log
    [ "$rc" = 0 ] || return "$rc"
    bash scripts/conformance.sh || return $?
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
lab() {
    local rc=0
    pytest tests/browser/test_lab.py -q -p no:cacheprovider < /dev/null > _build/lab-test.log 2>&1 || rc=$?
    echo "---- the chapters live in JupyterLab ----"; tail -n 30 _build/lab-test.log
    echo "---- live widgets in JupyterLab: recompute time per control (_build/lab-widgets.md) ----"
    cat _build/lab-widgets.md 2>/dev/null || true
    return "$rc"
}
# The trained runs of chapters 13-17 are data (runs/, rlviz/experiments/run_store.py): a
# seeded sample (one run per chapter and variant) is trained again and must give the stored
# record bit for bit (wall-clock fields aside). Its negative control, a doctored stored record
# that the replay must reject, is a unit test (tests/experiments/test_run_store.py).
replay() { python -m rlviz runs replay --jobs 2 --sample-seed "${RLVIZ_REPLAY_SEED:-0}"; }
# every stage of lane A runs (a failure is reported, then the next stage starts)
lane_a() {
    local rc=0
    stage "browser test: the chapters live in JupyterLab" lab || rc=1
    stage "identity checks" python -m rlviz verify || rc=1
    stage "run store: a sample replayed" replay || rc=1
    stage "unit tests" env -u RLVIZ_RUNS_STRICT pytest tests --ignore=tests/browser \
        --ignore=tests/conformance -q -p no:cacheprovider || rc=1
    return "$rc"
}
# the conformance venv installs in the background meanwhile (it runs at the end of lane B)
bash scripts/conformance.sh --prepare < /dev/null > _build/conformance-install.log 2>&1 &
conformance_install_pid=$!
lane_a_start=$(date +%s)
( lane_a ) < /dev/null > _build/lane-a.log 2>&1 &
lane_a_pid=$!
# a stage of lane B that fails ends the script: stop lane A (and the lab server it started)
stop_lane_a() {
    pkill -TERM -P "$lane_a_pid" 2>/dev/null || true; kill "$lane_a_pid" 2>/dev/null || true
    echo; echo "== lane B failed: lane A stopped; its log so far:"; cat _build/lane-a.log
}
trap stop_lane_a EXIT

build() {
    local rc=0
    jupyter-book build . -W --keep-going < /dev/null > _build/book-build.log 2>&1 || rc=$?
    grep -E "WARNING|ERROR|build succeeded|build finished|Exception|Error" _build/book-build.log | tail -n 40 || true
    return "$rc"
}
nbval() {
    local chapters
    mapfile -t chapters < <(ls book/*.ipynb | sort)
    pytest --nbval --nbval-current-env "${chapters[@]}" -q -p no:cacheprovider < /dev/null
}
stage "book build" build
stage "browser test: the website" pytest tests/browser/test_site.py -q -p no:cacheprovider
stage "notebooks (nbval, strict)" nbval
stage "conformance against TRL and verl (and its negative control)" conformance
lane_a_rc=0
wait "$lane_a_pid" || lane_a_rc=$?
trap - EXIT
echo; echo "== lane A (started after the lint) finished after $(( $(date +%s) - lane_a_start )) s (exit $lane_a_rc); its log:"
cat _build/lane-a.log
[ "$lane_a_rc" = 0 ]
echo; echo "== all tests passed in $(( $(date +%s) - t0 )) s"
