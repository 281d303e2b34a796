#!/usr/bin/env bash
# Build the website from nothing: create .venv, install, execute every chapter, build HTML.
#   bash scripts/build-site.sh           build into _build/html
#   bash scripts/build-site.sh --serve   build, then serve it on http://127.0.0.1:8000
# Executed chapters are cached in _build/.jupyter_cache, so an unchanged chapter is not re-run;
# the cache is cleared when rlviz's source changed since the last build (scripts/_env.sh).
# The build fails on any cell error and on any Sphinx warning (-W). Runs from any directory.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; exit 0
fi
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
cd "$(rlviz_root)"
rlviz_venv
rlviz_fresh_cache
start=$(date +%s)
jupyter-book build . -W --keep-going < /dev/null
echo "== book built in $(( $(date +%s) - start )) s: open $(pwd)/_build/html/index.html"
if [ "${1:-}" = "--serve" ]; then
    echo "== serving on http://127.0.0.1:8000 (Ctrl-C to stop)"
    exec python -m http.server --directory _build/html --bind 127.0.0.1 8000
fi
