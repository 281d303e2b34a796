"""Plotly figures of the chapters, one module per chapter, and :func:`show` to display them."""

from rlviz.figures.common import show, slider_steps

__all__ = ["show", "slider_steps"]
