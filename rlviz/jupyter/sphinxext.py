"""Plotly figures in the book, offline: a myst-nb renderer and a small Sphinx extension.

* :class:`PlotlyMimeRenderer` (registered as a ``myst_nb.mime_renderers`` entry point)
  renders the ``application/vnd.plotly.v1+json`` output of a notebook cell as an HTML
  ``<div>`` plus a ``Plotly.newPlot`` call, without plotly.js inlined. Without it myst-nb
  drops plotly outputs with a warning.
* :func:`setup` (the Sphinx extension ``rlviz.jupyter.sphinxext``) copies the plotly.js that ships
  with the installed ``plotly`` package into ``_static/`` and loads it on every page, so the
  site needs no network and no CDN, and the library (4.8 MB) is fetched once and cached by
  the browser instead of inlined in every page.
"""

from __future__ import annotations

import os
import shutil

PLOTLY_JS = "plotly.min.js"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


class PlotlyMimeRenderer:
    """myst-nb mime renderer plugin: plotly JSON -> ``<div>`` + ``Plotly.newPlot`` (HTML builders)."""

    # lower is preferred; text/html is 30, so a plotly output wins over its HTML fallback
    mime_priority_overrides = [("html", PLOTLY_MIME, 5), ("dirhtml", PLOTLY_MIME, 5),
                               ("singlehtml", PLOTLY_MIME, 5)]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != PLOTLY_MIME or inline:
            return None
        from docutils import nodes

        from rlviz.figures.common import figure_html

        html = figure_html(data.content)
        return [nodes.raw("", html, format="html", classes=["output", "text_html"])]


def _plotly_js_source() -> str:
    import plotly

    path = os.path.join(os.path.dirname(plotly.__file__), "package_data", PLOTLY_JS)
    if not os.path.exists(path):
        raise FileNotFoundError(f"plotly.js not found at {path}; reinstall plotly")
    return path


def _copy_plotly(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        dest = os.path.join(app.outdir, "_static", PLOTLY_JS)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(_plotly_js_source(), dest)


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    """Remove sphinx-thebe's scripts and stylesheet from every page.

    Jupyter Book always loads sphinx-thebe, whose live-kernel button fetches thebe from a
    CDN on click, which an offline site cannot use; its inline script is also inserted twice
    ("THEBE_JS_URL has already been declared" in the console). The book's live interaction
    is the downloadable notebook instead.
    """
    def keep(asset) -> bool:
        name = str(getattr(asset, "filename", "") or asset)
        body = str(getattr(asset, "attributes", {}).get("body", ""))
        return "thebe" not in name.lower() and "THEBE_JS_URL" not in body

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if keep(a)]


def setup(app):
    _plotly_js_source()  # fail early, at configuration time, if plotly.js is missing
    # loaded synchronously in <head>, before the inline Plotly.newPlot calls in the body
    app.add_js_file(PLOTLY_JS, priority=200)
    app.connect("build-finished", _copy_plotly)
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}
