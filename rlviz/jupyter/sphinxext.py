"""Plotly figures in the book, offline: a myst-nb renderer and a small Sphinx extension.

* :class:`PlotlyMimeRenderer` (registered as a ``myst_nb.mime_renderers`` entry point)
  renders the ``application/vnd.plotly.v1+json`` output of a notebook cell as an HTML
  ``<div>`` plus a ``Plotly.newPlot`` call, without plotly.js inlined. Without it myst-nb
  drops plotly outputs with a warning.
* :func:`setup` (the Sphinx extension ``rlviz.jupyter.sphinxext``) keeps the site offline
  and its pages light (a first visit to any page stays under 3 MiB; the browser test checks):

  - plotly.js is a bundle with only the trace types the book draws (1.0 MB instead of
    4.8 MB), committed in ``static/`` with its build recipe (``static/README.md``), copied
    into ``_static/`` and loaded only on the pages that draw a figure. Its version must
    match the plotly.js the installed ``plotly`` package targets (checked at configuration
    time), and a figure with a trace type missing from it is a build warning.
  - MathJax (files from ``sphinx-mathjax-offline``; Sphinx loads it only on pages with
    math) is loaded as components: TeX input, CommonHTML output and the assistive MathML
    for screen readers, without the 0.4 MB context menu of the combined ``tex-chtml.js``.
  - The theme's Font Awesome JavaScript (1.5 MB; its CSS and web font draw the same icons)
    and, unless ``search_as_you_type`` is on, the search index and scripts (only the search
    page uses them, and it loads its own) are left out of every page
    (``templates/layout.html``); so are sphinx-thebe, sphinx-design's assets on pages
    without its elements, and the inert ipywidgets state (:func:`_drop_unused_assets`).
"""

from __future__ import annotations

import os
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC = os.path.join(HERE, "static")
TEMPLATES = os.path.join(HERE, "templates")

# plotly.js with only the trace types the book draws (rlviz/figures: go.Scatter, go.Bar,
# go.Heatmap), built from plotly.js's sources by static/plotly-bundle/ (static/README.md).
PLOTLY_JS = "plotly-rlviz-4.1.1.min.js"
PLOTLY_LICENSE = "plotly.js-LICENSE.txt"
PLOTLY_TRACES = frozenset({"scatter", "bar", "heatmap"})
PLOTLY_MIME = "application/vnd.plotly.v1+json"

# sphinx-mathjax-offline sets mathjax_path to its combined tex-chtml.js (1.16 MB, 0.43 MB of
# which is the context menu); the same input and output as separate components.
MATHJAX_COMBINED = "mathjax/tex-chtml.js"
MATHJAX_STARTUP = "mathjax/startup.js"
MATHJAX_COMPONENTS = ["input/tex", "output/chtml", "a11y/assistive-mml"]


class PlotlyMimeRenderer:
    """myst-nb mime renderer plugin: plotly JSON -> ``<div>`` + ``Plotly.newPlot`` (HTML builders)."""

    # lower is preferred; text/html is 30, so a plotly output wins over its HTML fallback
    mime_priority_overrides = [
        ("html", PLOTLY_MIME, 5),
        ("dirhtml", PLOTLY_MIME, 5),
        ("singlehtml", PLOTLY_MIME, 5),
    ]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != PLOTLY_MIME or inline:
            return None
        from docutils import nodes

        from rlviz.figures.common import figure_html

        missing = unsupported_traces(data.content)
        if missing:
            renderer.logger.warning(
                f"a plotly figure uses trace types {missing} that the site's plotly.js "
                f"bundle ({PLOTLY_JS}) cannot draw: use another trace type or change the "
                "bundle (rlviz/jupyter/static/README.md)",
                subtype="plotly",
                line=data.line,
            )
        html = figure_html(data.content)
        return [nodes.raw("", html, format="html", classes=["output", "text_html"])]


def unsupported_traces(figure) -> list[str]:
    """The trace types of a figure (JSON dict or string) missing from the plotly.js bundle."""
    import json

    spec = json.loads(figure) if isinstance(figure, str) else figure
    types = {t.get("type", "scatter") for t in spec.get("data", [])}
    for frame in spec.get("frames", []) or []:
        types |= {t.get("type", "scatter") for t in frame.get("data", [])}
    return sorted(types - PLOTLY_TRACES)


def bundle_version(path: str) -> str:
    """The version in a plotly.js file's license header (``plotly.js ... v4.1.1``)."""
    with open(path, encoding="utf-8") as f:
        head = f.read(400)
    match = re.search(r"plotly\.js\b[^\n]*? v(\d+\.\d+\.\d+)", head)
    if not match:
        raise ValueError(f"no plotly.js version in the header of {path}")
    return match.group(1)


def check_plotly_bundle() -> str:
    """The bundle's path, after checking it targets the plotly.js of the installed ``plotly``.

    plotly (Python) writes figure JSON for one plotly.js version; a bundle of another
    major.minor version may misread it, so a plotly upgrade must come with a new bundle.
    """
    from plotly.offline import get_plotlyjs_version

    path = os.path.join(STATIC, PLOTLY_JS)
    if not os.path.exists(path):
        raise FileNotFoundError(f"the plotly.js bundle is missing: {path}")
    ours, wanted = bundle_version(path), get_plotlyjs_version()
    if ours.split(".")[:2] != wanted.split(".")[:2]:
        raise RuntimeError(
            f"{PLOTLY_JS} is plotly.js {ours} but the installed plotly package targets plotly.js "
            f"{wanted}: update the bundle (rlviz/jupyter/static/README.md)"
        )
    return path


def page_has_figure(doctree) -> bool:
    """Whether a page's doctree holds a figure of :class:`PlotlyMimeRenderer` (raw HTML)."""
    if doctree is None:
        return False
    from docutils import nodes

    return any(
        "html" in node.get("format", "").split() and "Plotly.newPlot(" in node.astext()
        for node in doctree.findall(nodes.raw)
    )


def _copy_assets(app) -> None:
    if app.builder.format == "html":
        dest = os.path.join(app.outdir, "_static")
        os.makedirs(dest, exist_ok=True)
        for name in (PLOTLY_JS, PLOTLY_LICENSE):
            shutil.copyfile(os.path.join(STATIC, name), os.path.join(dest, name))


def _add_plotly(app, pagename, templatename, context, doctree) -> None:
    """Load plotly.js, synchronously in ``<head>`` (before the inline ``Plotly.newPlot``
    calls in the body), on the pages that draw a figure only."""
    if app.builder.format == "html" and page_has_figure(doctree):
        app.builder.add_js_file(PLOTLY_JS, priority=200)


def _configure_mathjax(app, config) -> None:
    """MathJax as components (see the module docstring), unless the book chose a path."""
    if config.mathjax_path != MATHJAX_COMBINED:
        return
    config.mathjax_path = MATHJAX_STARTUP
    mj = dict(config.mathjax3_config or {})
    mj["loader"] = {**mj.get("loader", {})}
    mj["loader"].setdefault("load", list(MATHJAX_COMPONENTS))
    config.mathjax3_config = mj


def _configure_templates(app, config) -> None:
    if TEMPLATES not in config.templates_path:
        config.templates_path.append(TEMPLATES)


UNUSED_SCRIPTS = {
    "fontawesome": re.compile(
        r'\s*<script\b[^>]*\bsrc="(?:[^"]*/)?fontawesome\.js(\?[^"]*)?"[^>]*>'
        r"\s*</script>"
    ),
    "search": re.compile(
        r'\s*<script\b[^>]*\bsrc="(?:[^"]*/)?(searchtools|language_data|searchindex)'
        r'\.js(\?[^"]*)?"[^>]*>\s*</script>'
    ),
}


def drop_unused_scripts(html, keep_search=False):
    """A Jinja filter (``templates/layout.html``): the theme's head minus unused scripts."""
    from markupsafe import Markup

    html = UNUSED_SCRIPTS["fontawesome"].sub("", str(html))
    if not keep_search:
        html = UNUSED_SCRIPTS["search"].sub("", html)
    return Markup(html)


def _add_template_filter(app) -> None:
    templates = getattr(app.builder, "templates", None)
    if app.builder.format == "html" and templates is not None:
        templates.environment.filters["rlviz_drop_unused_scripts"] = drop_unused_scripts


SD_CLASS = re.compile(r'class="[^"]*\bsd-')
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def _drop_unused_assets(app, pagename, templatename, context, doctree) -> None:
    """Remove from a page the scripts and stylesheets it cannot use.

    * sphinx-thebe's, on every page: Jupyter Book always loads it, but its live-kernel
      button fetches thebe from a CDN on click, which an offline site cannot use; its inline
      script is also inserted twice ("THEBE_JS_URL has already been declared" in the
      console). The book's live interaction is the downloadable notebook instead.
    * sphinx-design's (63 kB), on pages without a sphinx-design element (class ``sd-*``).
    * the ipywidgets state that myst-nb embeds from a notebook's metadata (25-36 kB per
      chapter), when no widget manager is loaded (``nb_ipywidgets_js: {}``) to read it.
    """
    body = context.get("body", "")
    no_design = not SD_CLASS.search(body)
    no_widgets = not getattr(app.config, "nb_ipywidgets_js", None)

    def keep(asset) -> bool:
        name = str(getattr(asset, "filename", "") or asset).lower()
        attrs = getattr(asset, "attributes", {})
        if "thebe" in name or "THEBE_JS_URL" in str(attrs.get("body", "")):
            return False
        if no_design and ("sphinx-design" in name or "design-tabs" in name):
            return False
        return not (no_widgets and attrs.get("type") == WIDGET_STATE)

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if keep(a)]


def setup(app):
    check_plotly_bundle()  # fail early, at configuration time, on a missing or wrong bundle
    # after sphinx-mathjax-offline's setup, which sets mathjax_path
    app.connect("config-inited", _configure_mathjax)
    app.connect("config-inited", _configure_templates)
    app.connect("builder-inited", _copy_assets)
    app.connect("builder-inited", _add_template_filter)
    # before _drop_unused_assets, which replaces the page's list of scripts
    app.connect("html-page-context", _add_plotly, priority=400)
    # after myst-nb's per-page scripts (priority 500)
    app.connect("html-page-context", _drop_unused_assets, priority=900)
    return {"version": "0.2", "parallel_read_safe": True, "parallel_write_safe": True}
