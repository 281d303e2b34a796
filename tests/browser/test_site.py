"""The built website in real Chromium (Playwright), served on localhost.

For every chapter page: MathJax rendered every formula (no raw ``$$`` or unrendered
``.math`` left), at least one plotly figure is drawn, every plotly slider moves and changes
the plotted data, no console error, and no request leaves localhost. For every page: a first
visit (fresh browser profile, empty cache) transfers under 3 MB (MiB), and plotly.js and
MathJax are loaded only where there is a figure or a formula. Negative controls run the
same checks on doctored copies of a page (math removed, figures removed, an external asset
added, the full 4.8 MB plotly.js added) and require them to fail, so these checks can fail.

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
WEIGHTS = ROOT / "_build" / "page-weight.md"
MAX_PAGE_BYTES = 1_500_000
MiB = 1024 * 1024
MAX_FIRST_VISIT_BYTES = 3 * MiB  # the "3 MB" (it gave plotly.min.js's 4.8e6 B as 4.6 MB)
# the site's plotly.js: a bundle in _static, never the full 4.8 MB plotly.min.js
PLOTLY_SCRIPT = re.compile(r'<script[^>]*\bsrc="[^"]*_static/(plotly[^"?/]*\.js)')
MATHJAX_SCRIPT = re.compile(r'<script[^>]*\bsrc="[^"]*_static/mathjax/')


def chapter_pages() -> list[str]:
    """The chapters' HTML paths, from _toc.yml (files whose name starts with a digit)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [f + ".html" for f in files if re.match(r"\d", Path(f).name)]


CHAPTERS = chapter_pages()


def site_pages(site: Path) -> list[str]:
    """Every HTML page of the built site (book pages, indexes, search), but the root
    index.html, a redirect to book/intro.html."""
    pages = [p for p in site.glob("*.html") if p.name != "index.html"]
    return sorted(str(p.relative_to(site)) for p in [*pages, *site.glob("book/*.html")])


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


def _keep_offline(external: list[str], r) -> None:
    """A route handler: requests to localhost go through, others are blocked and noted."""
    host = urlparse(r.request.url).hostname
    if r.request.url.startswith(("data:", "blob:", "about:")) or host in ("127.0.0.1", "localhost"):
        r.continue_()
    else:
        external.append(r.request.url)
        r.abort()


JS_PLOTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
    id: gd.id,
    drawn: !!gd.querySelector('.main-svg'),
    sliders: ((gd._fullLayout || {}).sliders || []).length,
    state: JSON.stringify((gd.data || []).map(t => [t.visible, t.x, t.y, t.z])),
}))"""

# Where plotly put each figure's legend, title and plot areas: a legend drawn over the title or
# over a plot area (many long entries wrap into rows that grow into the title) is a problem.
JS_LAYOUT = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
    const box = el => el ? el.getBoundingClientRect() : null;
    const title = box(gd.querySelector('.g-gtitle .gtitle'));
    const legend = box(gd.querySelector('.legend .bg'));
    const areas = Array.from(gd.querySelectorAll('.draglayer .nsewdrag')).map(box);
    const meet = (a, b) => !!(a && b && a.width > 0 && a.height > 0 && b.width > 0 &&
        b.height > 0 && a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 &&
        b.top < a.bottom - 1);
    const out = [];
    if (meet(legend, title)) out.push('its legend is drawn over its title');
    if (areas.some(a => meet(legend, a))) out.push('its legend is drawn over a plot area');
    return {id: gd.id, overlaps: out};
})"""

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


# MyST that the parser did not turn into HTML shows as text: a fence that was no fence (a
# backtick in its title line), a directive or a role name, an option line.
JS_RAW_MYST = """() => {
    const art = document.querySelector('article') || document.body;
    const copy = art.cloneNode(true);
    copy.querySelectorAll('pre, code, script, style, mjx-container, .js-plotly-plot, .highlight')
        .forEach(n => n.remove());
    const t = copy.textContent;
    const directive = /```|\\{(prf|exercise|solution|admonition|glue|math|eval-rst|code-cell)[:}]/;
    const option = /^\\s*:(label|class|nonumber):/m;
    const m = t.match(directive) || t.match(option);
    return m ? t.slice(Math.max(0, m.index - 40), m.index + 60).replace(/\\s+/g, ' ') : '';
}"""


def raw_myst(page) -> str:
    """Text around the first unparsed MyST construct of the loaded page ('' if none)."""
    return page.evaluate(JS_RAW_MYST)


def check_page(browser, url: str, shot: Path | None = None) -> list[str]:
    """Load ``url`` and return the problems found (empty when the page is good)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    external: list[str] = []

    page.route("**/*", functools.partial(_keep_offline, external))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url, wait_until="load")
        try:
            page.wait_for_function(
                "() => window.MathJax && window.MathJax.startup && window.MathJax.startup.promise",
                timeout=10000,
            )
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
        raw = raw_myst(page)
        if raw:
            problems.append(f"raw MyST in the page text: ...{raw}...")
        plots = page.evaluate(JS_PLOTS)
        if not plots:
            problems.append("no plotly figure on the page")
        if any(not p["drawn"] for p in plots):
            problems.append("a plotly figure was not drawn")
        for fig in page.evaluate(JS_LAYOUT):
            problems += [f"figure {fig['id']}: {o}" for o in fig["overlaps"]]
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
    scripts = PLOTLY_SCRIPT.findall(html)  # served once, from the site: the small bundle
    assert len(scripts) == 1 and scripts[0] != "plotly.min.js", scripts


def test_plotly_and_mathjax_only_where_used(site):
    """plotly.js only on pages with a figure, MathJax only on pages with a formula."""
    wrong = []
    for page in site_pages(site):
        html = (site / page).read_text()
        figure, plotly = "Plotly.newPlot(" in html, bool(PLOTLY_SCRIPT.search(html))
        math, mathjax = 'class="math' in html, bool(MATHJAX_SCRIPT.search(html))
        if figure != plotly:
            wrong.append(f"{page}: figure={figure} but plotly.js loaded={plotly}")
        if math != mathjax:
            wrong.append(f"{page}: math={math} but MathJax loaded={mathjax}")
    assert "book/intro.html" in site_pages(site) and not wrong, wrong


def test_no_raw_myst_on_any_page(browser, base_url, site):
    """Every page of the site, appendices and bibliography included: no unparsed MyST. The
    chapter pages are checked by :func:`check_page` (test_chapter_page), so not loaded again."""
    problems = []
    others = [name for name in site_pages(site) if name not in CHAPTERS]
    assert len(others) >= 6, others
    for name in others:
        page = browser.new_page()
        try:
            page.goto(f"{base_url}/{name}", wait_until="load")
            raw = raw_myst(page)
        finally:
            page.close()
        if raw:
            problems.append(f"{name}: ...{raw}...")
    assert not problems, "raw MyST on the site:\n" + "\n".join(problems)


def test_site_pages_present(site):
    for page in [
        "book/appendix_glossary.html",
        "book/appendix_errata.html",
        "book/appendix_api.html",
        "book/bibliography.html",
        *CHAPTERS,
    ]:
        assert (site / page).exists(), page
    api = (site / "book/appendix_api.html").read_text()
    assert "rlviz.tabular.mdp.state_values" in api  # generated from docstrings


def first_visit(browser, url: str) -> tuple[list[tuple[int, str]], list[str]]:
    """The bytes transferred (body and headers) by each response of a first visit to ``url``
    (a new browser context: fresh profile, empty cache), once the page has loaded, MathJax
    has typeset (its fonts included) and no request was in flight for 0.5 s; and the
    requests that left localhost (blocked)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    done, external, pending = [], [], set()

    page.route("**/*", functools.partial(_keep_offline, external))
    page.on("request", lambda r: pending.add(r))
    page.on("requestfinished", lambda r: (pending.discard(r), done.append(r)))
    page.on("requestfailed", lambda r: pending.discard(r))
    try:
        page.goto(url, wait_until="load")
        page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        quiet = 0
        for _ in range(100):  # at most 10 s
            page.wait_for_timeout(100)
            quiet = quiet + 1 if not pending else 0
            if quiet >= 5:
                break
        rows = []
        for r in done:
            sizes = r.sizes()
            rows.append((sizes["responseBodySize"] + sizes["responseHeadersSize"], r.url))
    finally:
        context.close()
    return rows, external


def check_weight(browser, url: str) -> tuple[int, list[str]]:
    """The bytes of a first visit to ``url`` and the problems (over the budget, external)."""
    rows, external = first_visit(browser, url)
    total = sum(n for n, _ in rows)
    problems = []
    if total >= MAX_FIRST_VISIT_BYTES:
        biggest = ", ".join(
            f"{urlparse(u).path.rsplit('/', 1)[-1]} {n / MiB:.2f}"
            for n, u in sorted(rows, reverse=True)[:3]
        )
        problems.append(
            f"first visit transfers {total / MiB:.2f} MiB, over "
            f"{MAX_FIRST_VISIT_BYTES / MiB:.0f} MiB (largest: {biggest})"
        )
    if external:
        problems.append(f"requests left localhost: {sorted(set(external))[:5]}")
    return total, problems


def test_first_visit_weight(browser, base_url, site, capsys):
    """A first visit to any page transfers under 3 MiB; prints (and writes to
    _build/page-weight.md) the table page -> MiB."""
    rows, problems = [], []
    for page in site_pages(site):
        total, found = check_weight(browser, f"{base_url}/{page}")
        rows.append((page, total))
        problems += [f"{page}: {p}" for p in found]
    table = ["| page | first visit (MiB) |", "|---|---:|"]
    table += [f"| {page} | {total / MiB:.2f} |" for page, total in rows]
    WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
    WEIGHTS.write_text("\n".join(table) + "\n")
    with capsys.disabled():
        print("\n" + "\n".join(table))
    assert len(rows) >= len(CHAPTERS) + 6 and problems == [], problems


# ---------------------------------------------------------------- negative controls
def _doctored_site(tmp_path: Path, site: Path, edit, extra: dict | None = None) -> Path:
    """A copy of the site (static assets linked) whose first chapter page is edited, plus
    ``extra`` files (path in the copy -> file linked there)."""
    copy = tmp_path / "site"
    (copy / "book").mkdir(parents=True)
    (copy / "_static").symlink_to(site / "_static")
    page = CHAPTERS[0]
    (copy / page).write_text(edit((site / page).read_text()))
    for path, source in (extra or {}).items():
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        (copy / path).symlink_to(source)
    return copy


CONTROLS = {
    "math removed": (
        lambda h: re.sub(r"<script[^>]*mathjax[^>]*></script>", "", h, flags=re.I),
        "formula",
    ),
    "figures removed": (lambda h: re.sub(r"Plotly\.newPlot\(", "(function(){})(", h), "figure"),
    "stray dollar": (
        lambda h: h.replace("</article>", "<p>and $\\gamma$ raw</p></article>", 1),
        "unrendered $ math",
    ),
    "raw MyST": (
        lambda h: h.replace("</article>", "<p>```{prf:theorem} A title {cite}`x`</p></article>", 1),
        "raw MyST in the page text",
    ),
    "raw MyST option": (
        lambda h: h.replace("</article>", "<p>:label: thm-raw</p></article>", 1),
        "raw MyST in the page text",
    ),
    # every figure's legend moved to the middle of its plot (the template's y = 1.07 above it)
    "legend over the plot": (
        lambda h: h.replace('"y":1.07,"yanchor":"bottom"', '"y":0.5,"yanchor":"bottom"'),
        "legend is drawn over",
    ),
    "external asset": (
        lambda h: h.replace("</body>", '<img src="https://example.com/x.png"></body>'),
        "requests left localhost",
    ),
}


@pytest.mark.parametrize("name", CONTROLS)
def test_checks_fail_on_a_broken_page(browser, site, tmp_path, name):
    edit, expected = CONTROLS[name]
    copy = _doctored_site(tmp_path, site, edit)
    assert edit((site / CHAPTERS[0]).read_text()) != (site / CHAPTERS[0]).read_text(), (
        f"the {name} edit did not change the page"
    )
    server, url = _serve(copy)
    try:
        problems = check_page(browser, f"{url}/{CHAPTERS[0]}")
    finally:
        server.shutdown()
    assert any(expected in p for p in problems), problems


def _full_plotly_js() -> Path:
    """The full plotly.js (4.8 MB) that the plotly package ships."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def test_weight_check_fails_on_a_heavy_page(browser, site, tmp_path):
    """A page that loads the full plotly.js (as every page did before) fails the budget."""

    def edit(h):
        return h.replace("</head>", '<script src="../full/plotly.min.js"></script></head>', 1)

    assert edit((site / CHAPTERS[0]).read_text()) != (site / CHAPTERS[0]).read_text()
    copy = _doctored_site(tmp_path, site, edit, {"full/plotly.min.js": _full_plotly_js()})
    server, url = _serve(copy)
    try:
        _, problems = check_weight(browser, f"{url}/{CHAPTERS[0]}")
    finally:
        server.shutdown()
    assert any("first visit transfers" in p for p in problems), problems
