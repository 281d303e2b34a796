"""Re-execute chapters in place so their stored outputs are what nbval compares.

Usage: python scripts/refresh_outputs.py book/01_mdps_and_returns.ipynb [...]

Runs from any directory: chapter paths are taken relative to the current directory, and each
chapter is executed with its own folder (book/) as the kernel's working directory, as the
book build and nbval do. Run it with the book's environment (``. .venv/bin/activate``), where
rlviz is installed.

The stored outputs are the reference of the notebook tests (nbval, strict). Cells
tagged ``nbval-ignore-output`` (figures, live widgets) are stored without outputs, to keep the
repository small; the book build executes every chapter anyway. Widget state is not stored.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from rlviz.jupyter.notebooks import clean_notebook


def refresh(path: str | Path) -> None:
    path = Path(path).resolve()
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        store_widget_state=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    clean_notebook(nb)  # the same rules JupyterLab's pre-save hook applies (scripts/lab.sh)
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.perf_counter() - t0:.1f} s")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    missing = [p for p in argv if not Path(p).is_file()]
    if missing:
        print(f"no such chapter: {', '.join(missing)}", file=sys.stderr)
        return 2
    for p in argv:
        refresh(p)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
