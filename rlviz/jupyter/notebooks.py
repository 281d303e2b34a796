"""Keeping the chapters' stored outputs exactly what the notebook tests compare.

nbval (strict) compares a fresh run of each chapter with the outputs stored in its ``.ipynb``.
Cells tagged ``nbval-ignore-output`` (figures, live widgets, timings; a cell tag, so readers
of the website never see the marker) are stored without outputs; widget state and execution
timestamps are not stored. :func:`clean_notebook`
applies these rules; ``scripts/refresh_outputs.py`` uses it after re-executing a chapter, and
:func:`pre_save_hook` applies it whenever JupyterLab saves a chapter (``scripts/lab.sh``
installs the hook), so running a chapter interactively and saving it leaves the same file.
"""

from __future__ import annotations

IGNORE_TAG = "nbval-ignore-output"  # nbval reads it from the cell's metadata.tags

__all__ = ["IGNORE_TAG", "ignores_output", "clean_notebook", "coalesce_streams", "pre_save_hook"]


def _joined(value) -> str:
    """A notebook text field (source, stream text), stored as a string or a list of lines."""
    return "".join(value) if isinstance(value, list) else value


def ignores_output(cell: dict) -> bool:
    """True for a code cell tagged ``nbval-ignore-output``.

    The source-comment form of the marker (``# NBVAL_IGNORE_OUTPUT``) is refused: it would show
    in the rendered source on the website. Use the cell tag instead.
    """
    if "NBVAL_IGNORE_OUTPUT" in _joined(cell.get("source", "")):
        raise ValueError(
            "a cell's source holds the comment '# NBVAL_IGNORE_OUTPUT', which readers would see; "
            f"remove it and tag the cell {IGNORE_TAG!r} instead (metadata.tags)"
        )
    return IGNORE_TAG in (cell.get("metadata", {}).get("tags") or [])


def clean_notebook(nb: dict) -> dict:
    """Strip, in place, what must not be stored in a chapter; returns ``nb``.

    Outputs and execution counts of cells tagged ``nbval-ignore-output``, every cell's execution
    timestamps (``metadata.execution``) and the notebook's widget state (``metadata.widgets``);
    consecutive prints to the same stream are merged into one output (:func:`coalesce_streams`).
    """
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError(
            f"clean_notebook expects a notebook dict with a 'cells' list, got {type(nb).__name__}"
        )
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("execution", None)
        if cell.get("cell_type") != "code":
            continue
        if ignores_output(cell):
            cell["outputs"] = []
            cell["execution_count"] = None
        else:
            cell["outputs"] = coalesce_streams(cell.get("outputs", []))
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def coalesce_streams(outputs: list) -> list:
    """Merge consecutive stream outputs of the same stream (stdout, stderr) into one.

    A kernel's prints arrive in chunks that nbclient and JupyterLab group differently; merged,
    the stored outputs are the same whichever ran the chapter (nbval merges them too).
    """
    merged: list = []
    for out in outputs:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and out.get("output_type") == "stream"
            and prev.get("output_type") == "stream"
            and prev.get("name") == out.get("name")
        ):
            prev["text"] = _joined(prev.get("text", "")) + _joined(out.get("text", ""))
        else:
            merged.append(out)
    return merged


def pre_save_hook(model, **kwargs):
    """Jupyter server pre-save hook: :func:`clean_notebook` on every notebook saved.

    Set it with ``c.FileContentsManager.pre_save_hook = "rlviz.jupyter.notebooks.pre_save_hook"``
    (``scripts/jupyter_server_config.py`` does).
    """
    if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
        clean_notebook(model["content"])
