"""The one adapter between a live widget's progress bar and a trainer's callback.

The widgets of :mod:`rlviz.jupyter.widgets` pass ``progress(fraction)``; the trainers call
``callback(step, total)`` after each update. :func:`progress_callback` turns the first into the
second (None stays None), and :func:`stage_callback` maps the steps of run ``k`` of ``n`` runs
made one after the other onto one bar (its ``k``-th ``n``-th).
"""

from __future__ import annotations

__all__ = ["progress_callback", "stage_callback"]


def progress_callback(progress):
    """``callback(step, total)`` calling ``progress(step / total)``; None if ``progress`` is."""
    if progress is None:
        return None
    return lambda step, total: progress(step / total)


def stage_callback(callback, k: int, n: int):
    """``callback`` for run ``k`` (0-based) of ``n`` runs in a row: its ``(step, total)`` is
    reported as ``(k * total + step, n * total)``; None if ``callback`` is."""
    if callback is None:
        return None
    if not 0 <= k < n:
        raise ValueError(f"k must be in [0, {n}), got {k!r}")
    return lambda step, total: callback(k * total + step, n * total)
