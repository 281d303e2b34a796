# Shared helpers of build-site.sh, test-all.sh and lab.sh. Sourcing this file only defines
# functions (all named rlviz_*): it sets no shell option, no variable and does not cd. Each
# script sets its own strict mode and calls what it needs:
#   rlviz_root            print the repository root (found from this file's location)
#   rlviz_venv            create the venv if needed, install the lock into it when
#                         requirements.txt (or pyproject.toml) changed, then activate it
#   rlviz_fresh_cache     clear the book's execution cache when rlviz's source changed
#   rlviz_as_root CMD...  run CMD as root (directly when root, else with sudo)
# The venv is $RLVIZ_VENV if set (e.g. a throwaway one in /tmp), else <root>/.venv.
# Works on a fresh Debian machine with Python 3.11 (installs python3-venv if it is missing);
# $PYTHON picks the interpreter that creates the venv (default python3).

# rlviz_root's answer is fixed when this file is sourced (BASH_SOURCE may be a relative path,
# and the caller may cd afterwards).
eval "rlviz_root() { printf '%s\\n' $(printf '%q' "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"); }"

rlviz_as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Install the hash-locked LOCK (every package pinned with its hashes, dependencies included)
# into VENV: with uv (itself pinned with hashes in scripts/uv.txt and installed by the venv's
# pip; it installs in parallel: the book's lock in about 10 s here, where pip took 5 minutes),
# or with pip when RLVIZ_INSTALLER=pip. Both refuse a file whose hash is not in the lock.
# uv does not read pip's configuration: the wheel folders pip is told about in
# $PIP_FIND_LINKS (this machine's torch CPU wheel) are passed to it; the lock names no folder.
rlviz_install_lock() {
    local venv=$1 lock=$2 log="$1/.lock-install.log" links=()
    if [ "${RLVIZ_INSTALLER:-uv}" = pip ]; then
        "$venv/bin/python" -m pip install -q --require-hashes -r "$lock" > "$log" 2>&1 \
            || { cat "$log" >&2; return 1; }
        return 0
    fi
    if [ ! -x "$venv/bin/uv" ]; then
        "$venv/bin/python" -m pip install -q --require-hashes -r "$(rlviz_root)/scripts/uv.txt" \
            > "$log" 2>&1 || { cat "$log" >&2; return 1; }
    fi
    local link
    for link in ${PIP_FIND_LINKS:-}; do links+=(--find-links "$link"); done
    "$venv/bin/uv" pip install --python "$venv/bin/python" --require-hashes --no-deps \
        ${links[@]+"${links[@]}"} -r "$lock" > "$log" 2>&1 || { cat "$log" >&2; return 1; }
}

rlviz_venv() {
    local root venv python
    root=$(rlviz_root) || return 1
    venv=${RLVIZ_VENV:-$root/.venv}
    python=${PYTHON:-python3}
    if [ ! -x "$venv/bin/python" ]; then
        if ! "$python" -m venv "$venv" 2>/dev/null; then
            rm -rf "$venv"
            rlviz_as_root apt-get update -qq || return 1
            rlviz_as_root env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq python3-venv python3-pip || return 1
            "$python" -m venv "$venv" || return 1
        fi
    fi
    # The lock: every package pinned with its hashes (pip, setuptools and torch's CPU wheel
    # included: the venv's own pip installs the pinned pip in the same step). Reinstalled
    # whenever requirements.txt differs from the copy stamped in the venv.
    local lock_stamp="$venv/.requirements-installed"
    if [ ! -f "$lock_stamp" ] || ! cmp -s "$root/requirements.txt" "$lock_stamp"; then
        echo "== installing requirements.txt (the lock, hashes required) into $venv"
        rm -f "$lock_stamp" "$venv/.pyproject-installed"
        rlviz_install_lock "$venv" "$root/requirements.txt" || return 1
        cp "$root/requirements.txt" "$lock_stamp"
    fi
    # rlviz itself, editable, from the lock's setuptools: no index, no build isolation, no
    # dependencies (the lock has them). Redone when pyproject.toml changes (entry points).
    local project_stamp="$venv/.pyproject-installed"
    if [ ! -f "$project_stamp" ] || ! cmp -s "$root/pyproject.toml" "$project_stamp"; then
        echo "== installing rlviz (editable) into $venv"
        local log="$venv/.rlviz-install.log"
        if ! "$venv/bin/python" -m pip install --no-index --no-deps --no-build-isolation \
                -e "$root" > "$log" 2>&1; then
            cat "$log" >&2
            return 1
        fi
        cp "$root/pyproject.toml" "$project_stamp"
    fi
    # shellcheck disable=SC1091
    . "$venv/bin/activate"
}

# A hash of rlviz's source: every *.py under rlviz/, paths and contents. The one definition is
# rlviz._cache.source_hash; the file runs as a script
# with the standard library alone, so no venv or import of rlviz is needed.
rlviz_source_hash() {
    "${PYTHON:-python3}" "$(rlviz_root)/rlviz/_cache.py"
}

# jupyter-book's execution cache (_build/.jupyter_cache) is keyed on a chapter's cells, not
# on rlviz, and Sphinx re-reads only changed chapters: after a change to rlviz a rebuild
# would show stale outputs. So when rlviz's source hash differs from the one stamped beside
# the cache, clear the cache and Sphinx's doctrees (every chapter is re-executed).
rlviz_fresh_cache() {
    local build hash stamp
    build="$(rlviz_root)/_build"
    stamp="$build/.rlviz-source-hash"
    hash=$(rlviz_source_hash) || return 1
    if [ -d "$build/.jupyter_cache" ] || [ -d "$build/.doctrees" ]; then
        if [ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]; then
            echo "== rlviz's source changed since the last build: clearing _build/.jupyter_cache and _build/.doctrees"
            rm -rf "$build/.jupyter_cache" "$build/.doctrees"
        fi
    fi
    mkdir -p "$build" && echo "$hash" > "$stamp"
}
