"""The built website in real Chromium (Playwright), served on localhost.

For every chapter page: MathJax rendered every formula (no raw ``$$`` or unrendered
``.math`` left), at least one plotly figure is drawn, every plotly slider moves and changes
the plotted data, no console error, and no request leaves localhost. Negative controls run
the same checks on doctored copies of a page (math removed, figures removed, an external
asset added) and require them to fail, so these checks can fail.

Needs the built site (``bash scripts/build-site.sh`` or ``scripts/test-all.sh`` builds it)
and Chromium (Debian's ``chromium``; Playwright's own browser download is not used).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("RLVIZ_SITE", ROOT / "_build" / "html"))
SHOTS = ROOT / "_build" / "screenshots"
MAX_PAGE_BYTES = 1_500_000


def chapter_pages() -> list[str]:
    """The chapters' HTML paths, from _toc.yml (files whose name starts with a digit)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [f + ".html" for f in files if re.match(r"\d", Path(f).name)]


CHAPTERS = chapter_pages()


@pytest.fixture(scope="session")
def site() -> Path:
    if not (SITE / "index.html").exists():
        pytest.fail(f"no built site at {SITE}: run `bash scripts/build-site.sh` first")
    return SITE


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


def _serve(directory: Path):
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session")
def base_url(site):
    server, url = _serve(site)
    yield url
    server.shutdown()


JS_PLOTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
    id: gd.id,
    drawn: !!gd.querySelector('.main-svg'),
    sliders: ((gd._fullLayout || {}).sliders || []).length,
    state: JSON.stringify((gd.data || []).map(t => [t.visible, t.x, t.y, t.z])),
}))"""

JS_MATH = """() => {
    const art = document.querySelector('article') || document.body;
    const math = Array.from(document.querySelectorAll('.math'));
    return {
        rendered: document.querySelectorAll('mjx-container').length,
        unrendered: math.filter(m => !m.querySelector('mjx-container')).length,
        rawDollars: art.innerText.includes('$$'),
        // inline math that MathJax never saw (e.g. a formula a markdown list split in two)
        strayDollar: (() => {
            const copy = art.cloneNode(true);
            copy.querySelectorAll('pre, code, script, style, mjx-container, .js-plotly-plot')
                .forEach(n => n.remove());
            const t = copy.textContent, k = t.indexOf('$');
            return k < 0 ? '' : t.slice(Math.max(0, k - 40), k + 40).replace(/\\s+/g, ' ');
        })(),
    };
}"""


def check_page(browser, url: str, shot: Path | None = None) -> list[str]:
    """Load ``url`` and return the problems found (empty when the page is good)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    external: list[str] = []

    def route(r):
        host = urlparse(r.request.url).hostname
        if r.request.url.startswith(("data:", "blob:", "about:")) or host in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url, wait_until="load")
        try:
            page.wait_for_function("() => window.MathJax && window.MathJax.startup && "
                                   "window.MathJax.startup.promise", timeout=10000)
            page.evaluate("() => MathJax.startup.promise")
        except PlaywrightTimeout:
            problems.append("MathJax did not start: no formula rendered")
        math = page.evaluate(JS_MATH)
        if math["rendered"] == 0:
            problems.append("no formula rendered by MathJax")
        if math["unrendered"]:
            problems.append(f"{math['unrendered']} formulas left unrendered")
        if math["rawDollars"]:
            problems.append("raw $$ left in the page text")
        if math["strayDollar"]:
            problems.append(f"unrendered $ math in the page text: ...{math['strayDollar']}...")
        plots = page.evaluate(JS_PLOTS)
        if not plots:
            problems.append("no plotly figure on the page")
        if any(not p["drawn"] for p in plots):
            problems.append("a plotly figure was not drawn")
        if shot is not None:  # the top of the page, before any slider moves
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=False)
        with_sliders = [p for p in plots if p["sliders"]]
        if plots and not with_sliders:
            problems.append("no plotly slider on the page")
        for p in with_sliders:
            rail = page.locator(f"#{p['id']} .slider-rail-touch-rect").first
            rail.scroll_into_view_if_needed()
            box = rail.bounding_box()
            page.mouse.click(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
            page.wait_for_timeout(300)
            after = page.evaluate(JS_PLOTS)
            new = next(q for q in after if q["id"] == p["id"])
            if new["state"] == p["state"]:
                problems.append(f"moving the slider of figure {p['id']} did not change its data")
    finally:
        page.close()
    if external:
        problems.append(f"requests left localhost: {sorted(set(external))[:5]}")
    if errors:
        problems.append(f"console errors: {errors[:5]}")
    return problems


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page(browser, base_url, chapter):
    shot = SHOTS / (Path(chapter).stem + ".png")
    assert check_page(browser, f"{base_url}/{chapter}", shot) == []


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page_size(site, chapter):
    html = (site / chapter).read_text()
    size = len(html.encode())
    assert size < MAX_PAGE_BYTES, f"{chapter} is {size / 1e6:.2f} MB"
    assert "plotly.js v" not in html[:200_000] and html.count("Plotly.newPlot") >= 1
    assert 'src="../_static/plotly.min.js' in html  # served once, from the site


def test_site_pages_present(site):
    for page in ["book/appendix_glossary.html", "book/appendix_errata.html",
                 "book/appendix_api.html", "book/bibliography.html", *CHAPTERS]:
        assert (site / page).exists(), page
    api = (site / "book/appendix_api.html").read_text()
    assert "rlviz.tabular.mdp.state_values" in api  # generated from docstrings


# ---------------------------------------------------------------- negative controls
def _doctored_site(tmp_path: Path, site: Path, edit) -> Path:
    """A copy of the site (static assets linked) whose first chapter page is edited."""
    copy = tmp_path / "site"
    (copy / "book").mkdir(parents=True)
    (copy / "_static").symlink_to(site / "_static")
    page = CHAPTERS[0]
    (copy / page).write_text(edit((site / page).read_text()))
    return copy


CONTROLS = {
    "math removed": (lambda h: re.sub(r'<script[^>]*mathjax[^>]*></script>', "", h,
                                      flags=re.I), "formula"),
    "figures removed": (lambda h: re.sub(r"Plotly\.newPlot\(", "(function(){})(", h),
                        "figure"),
    "stray dollar": (lambda h: h.replace("</article>", "<p>and $\\gamma$ raw</p></article>", 1),
                     "unrendered $ math"),
    "external asset": (lambda h: h.replace("</body>",
                                           '<img src="https://example.com/x.png"></body>'),
                       "requests left localhost"),
}


@pytest.mark.parametrize("name", CONTROLS)
def test_checks_fail_on_a_broken_page(browser, site, tmp_path, name):
    edit, expected = CONTROLS[name]
    copy = _doctored_site(tmp_path, site, edit)
    assert edit((site / CHAPTERS[0]).read_text()) != (site / CHAPTERS[0]).read_text(), \
        f"the {name} edit did not change the page"
    server, url = _serve(copy)
    try:
        problems = check_page(browser, f"{url}/{CHAPTERS[0]}")
    finally:
        server.shutdown()
    assert any(expected in p for p in problems), problems
