"""Displaying plotly figures so they work in the book, in Jupyter and offline.

:func:`show` emits the figure as ``application/vnd.plotly.v1+json``, which JupyterLab,
Notebook 7 and VS Code render with their own plotly, and which the book renders with
:class:`rlviz.jupyter.sphinxext.PlotlyMimeRenderer` as a ``<div>`` and a ``Plotly.newPlot`` call
(plotly.js itself is served once from the site's ``_static``). The div id is a hash of the
figure, so a rebuild gives the same page.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["show", "mime_bundle", "slider_steps", "rounded", "figure_html", "legend_below"]

CONFIG = {"displaylogo": False, "responsive": True}

# The book's look: legends above the plot (not beside it, which squeezes the axes on a
# narrow page), the title below the strip where plotly draws its mode bar (top right, about
# 30 px high) so the two never overlap, a white background.
MODEBAR_STRIP = 34  # px kept free above the title
pio.templates["rlviz"] = go.layout.Template(
    layout={
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.07, "xanchor": "left", "x": 0},
        "margin": {"l": 60, "r": 20, "t": 140, "b": 50},
        "title": {"yref": "container", "y": 1, "yanchor": "top", "pad": {"t": MODEBAR_STRIP}},
    }
)
pio.templates.default = "plotly_white+rlviz"


def rounded(x, digits: int = 5) -> list:
    """A float array as a rounded nested list: figures stay small and stable across platforms."""
    return np.round(np.asarray(x, dtype=float), digits).tolist()


def figure_html(fig) -> str:
    """The HTML fragment of a figure (object or dict), without plotly.js, with a stable div id."""
    spec = pio.to_json(fig, validate=False, remove_uids=True, pretty=False)
    div_id = "fig-" + hashlib.sha1(spec.encode()).hexdigest()[:12]
    return pio.to_html(
        fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=CONFIG, validate=False
    )


def mime_bundle(fig: go.Figure) -> dict:
    """The output bundle of a figure: plotly JSON and a one-line text fallback."""
    return {
        "application/vnd.plotly.v1+json": json.loads(
            pio.to_json(fig, validate=False, remove_uids=True)
        ),
        "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
    }


def show(fig: go.Figure) -> None:
    """Display ``fig`` as plotly JSON (rendered by Jupyter live and by the book statically)."""
    from IPython.display import display

    display(mime_bundle(fig), raw=True)


def slider_steps(labels, traces_per_step: int, *, prefix: str = "") -> dict:
    """A plotly slider over a figure whose traces come in blocks, one block per label.

    Step ``k`` shows traces ``k * traces_per_step`` to ``(k + 1) * traces_per_step - 1`` and
    hides the others, so the figure must hold ``len(labels) * traces_per_step`` traces, added
    block by block. The data for every step are computed at build time and stored in the
    figure, so the slider works on the static site with no kernel.
    """
    labels = list(labels)
    if not labels:
        raise ValueError("slider_steps needs at least one label")
    if int(traces_per_step) != traces_per_step or traces_per_step < 1:
        raise ValueError(f"traces_per_step must be a positive integer, got {traces_per_step!r}")
    per, n = int(traces_per_step), len(labels)
    steps = [
        {
            "method": "update",
            "label": str(label),
            "args": [{"visible": [j // per == k for j in range(per * n)]}],
        }
        for k, label in enumerate(labels)
    ]
    return {"active": 0, "steps": steps, "currentvalue": {"prefix": prefix}, "pad": {"t": 40}}


LEGEND_ROW = 22  # px a legend row takes


def legend_below(fig: go.Figure, entries: int, above: int = 70, per_row: int = 2) -> go.Figure:
    """Move the legend of ``fig`` to the figure's bottom edge, for figures with many or long
    legend entries: above the plot (the template's place) they would wrap into rows that grow
    into the title. ``above``: the px between the plot and the legend (the x axis, and a slider
    if any); the bottom margin and the height grow by room for ``ceil(entries / per_row)`` rows
    (two entries a row: long names on a narrow page). Returns ``fig``."""
    rows = math.ceil(int(entries) / per_row)
    bottom = above + LEGEND_ROW * rows + 20
    height = (fig.layout.height or 450) + bottom - (fig.layout.margin.b or 50)
    fig.update_layout(
        legend={"yref": "container", "y": 0, "yanchor": "bottom", "x": 0, "xanchor": "left"},
        margin={"b": bottom, "t": 110},
        height=height,
    )
    return fig
