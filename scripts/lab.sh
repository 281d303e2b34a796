#!/usr/bin/env bash
# Open the chapters in JupyterLab, live widgets included, from the environment the book uses.
#   bash scripts/lab.sh                 # serves book/ on http://127.0.0.1:8888 (or a free port)
# Environment: RLVIZ_LAB_PORT (port), RLVIZ_LAB_TOKEN (token; default: a fresh random one),
# RLVIZ_LAB_DIR (the folder served, relative to the current directory; default the repo's
# book/). Extra arguments go to `jupyter lab`. Runs from any directory.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
root=$(rlviz_root)
dir=$(cd "${RLVIZ_LAB_DIR:-$root/book}" && pwd)
cd "$root"
rlviz_venv
# The kernel is this venv's Python (it imports rlviz): prefer the venv's kernel specs over
# any user-level ones, and register the venv's python3 kernel where Jupyter looks first.
export JUPYTER_PREFER_ENV_PATH=1
python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3" > /dev/null
# Lab defaults for this project: no news or update checks (nothing fetched from the
# internet), widget state not saved into the chapters, every cell kept rendered (a chapter
# is a few dozen cells; lazily rendered cells would hide widgets that scrolled away).
mkdir -p "$VIRTUAL_ENV/share/jupyter/lab/settings"
cat > "$VIRTUAL_ENV/share/jupyter/lab/settings/overrides.json" <<'JSON'
{
  "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false},
  "@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": false},
  "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"}
}
JSON
token=${RLVIZ_LAB_TOKEN:-$(python -c "import secrets; print(secrets.token_hex(24))")}
port=${RLVIZ_LAB_PORT:-$(python - <<'PY'
import socket
def free(p):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", p)); return True
        except OSError:
            return False
if free(8888):
    print(8888)
else:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])
PY
)}
url="http://127.0.0.1:$port/lab/tree/01_mdps_and_returns.ipynb?token=$token"
echo "== JupyterLab on the chapters in $dir/ (stop with Ctrl-C)"
echo "== open: $url"
echo "== in a chapter: Run > Run All Cells, then move the sliders of its live cells"
exec jupyter lab --config="$root/scripts/jupyter_server_config.py" \
    --ServerApp.root_dir="$dir" --ServerApp.port="$port" --IdentityProvider.token="$token" "$@"
