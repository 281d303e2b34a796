"""Displaying plotly figures so they work in the book, in Jupyter and offline.

:func:`show` emits the figure as ``application/vnd.plotly.v1+json``, which JupyterLab,
Notebook 7 and VS Code render with their own plotly, and which the book renders with
:class:`rlviz.sphinxext.PlotlyMimeRenderer` as a ``<div>`` and a ``Plotly.newPlot`` call
(plotly.js itself is served once from the site's ``_static``). The div id is a hash of the
figure, so a rebuild gives the same page.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

__all__ = ["show", "mime_bundle", "slider_steps", "rounded", "figure_html"]

CONFIG = {"displaylogo": False, "responsive": True}

# The book's look: legends above the plot (not beside it, which squeezes the axes on a
# narrow page), room for the title, a white background.
pio.templates["rlviz"] = go.layout.Template(layout={
    "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.07, "xanchor": "left", "x": 0},
    "margin": {"l": 60, "r": 20, "t": 120, "b": 50},
    "title": {"y": 0.98, "yanchor": "top"},
})
pio.templates.default = "plotly_white+rlviz"


def rounded(x, digits: int = 5) -> list:
    """A float array as a rounded nested list: figures stay small and stable across platforms."""
    return np.round(np.asarray(x, dtype=float), digits).tolist()


def figure_html(fig) -> str:
    """The HTML fragment of a figure (object or dict), without plotly.js, with a stable div id."""
    spec = pio.to_json(fig, validate=False, remove_uids=True, pretty=False)
    div_id = "fig-" + hashlib.sha1(spec.encode()).hexdigest()[:12]
    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id,
                       config=CONFIG, validate=False)


def mime_bundle(fig: go.Figure) -> dict:
    """The output bundle of a figure: plotly JSON and a one-line text fallback."""
    return {
        "application/vnd.plotly.v1+json": json.loads(pio.to_json(fig, validate=False,
                                                                 remove_uids=True)),
        "text/plain": f"<plotly figure: {fig.layout.title.text or 'untitled'}>",
    }


def show(fig: go.Figure) -> None:
    """Display ``fig`` as plotly JSON (rendered by Jupyter live and by the book statically)."""
    from IPython.display import display

    display(mime_bundle(fig), raw=True)


def slider_steps(labels, n_traces: int, visible_per_step, *, prefix: str = "") -> dict:
    """A plotly slider whose step k shows the traces flagged in ``visible_per_step[k]``.

    The data for every step are computed at build time and stored in the figure, so the
    slider works on the static site with no kernel.
    """
    steps = []
    for label, vis in zip(labels, visible_per_step):
        vis = list(vis)
        if len(vis) != n_traces:
            raise ValueError(f"visible_per_step entries must have {n_traces} flags, got {len(vis)}")
        steps.append({"method": "update", "label": str(label), "args": [{"visible": vis}]})
    return {"active": 0, "steps": steps, "currentvalue": {"prefix": prefix}, "pad": {"t": 40}}
