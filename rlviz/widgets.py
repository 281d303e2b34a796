"""Live ipywidgets for the notebooks (they need a running kernel; the website uses plotly sliders).

Each explorer recomputes its figure from rlviz for any slider value, calling the same figure
functions the static pages use.
"""

from __future__ import annotations

from .figures.common import mime_bundle

__all__ = ["explorer"]


def explorer(draw, **sliders):
    """A box of sliders that redraws ``draw(**values)`` (a plotly figure) whenever one moves.

    ``sliders`` maps keyword names to ipywidgets controls, e.g.
    ``explorer(lambda gamma: discount_figure([gamma]), gamma=FloatSlider(...))``.
    """
    import ipywidgets as w

    out = w.Output()

    def redraw(_change=None):
        # set the Output widget's content directly (a plain state update) rather than
        # capturing display() inside ``with out:``, whose message protocol races under nbclient
        fig = draw(**{k: s.value for k, s in sliders.items()})
        out.outputs = ({"output_type": "display_data", "data": mime_bundle(fig), "metadata": {}},)

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox(list(sliders.values())), out])
