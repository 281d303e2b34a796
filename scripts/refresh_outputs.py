"""Re-execute chapters in place so their stored outputs are what nbval compares.

Usage: python scripts/refresh_outputs.py book/01_mdps_and_returns.ipynb [...]

The stored outputs are the reference of the notebook tests (nbval, strict). Cells marked
``# NBVAL_IGNORE_OUTPUT`` (figures, live widgets) are stored without outputs, to keep the
repository small; the book build executes every chapter anyway. Widget state is not stored.
"""

from __future__ import annotations

import sys
import time

import nbformat
from nbclient import NotebookClient

from rlviz.jupyter.notebooks import clean_notebook


def refresh(path: str) -> None:
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": "book"}}).execute()
    clean_notebook(nb)  # the same rules JupyterLab's pre-save hook applies (scripts/lab.sh)
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    for p in sys.argv[1:]:
        refresh(p)
