"""The chapters run live in JupyterLab, driven in real Chromium (Playwright).

Starts JupyterLab the way the README says (``bash scripts/lab.sh``) on a copy of ``book/``,
on localhost with a fresh random token, then for every chapter that has live widgets:

1. opens it and runs all cells (the command behind Run > Run All Cells); every code cell
   must finish with no error output, and no "Error displaying widget" or lasting
   "Loading widget..." may appear;
2. for every live explorer (``rlviz.jupyter.widgets.explorer``), moves each of its controls in turn
   (sliders with the keyboard, as a user can; dropdowns by choosing another option) and
   requires the status line to report a new figure drawn for the new value and the plotted
   data to change; a recompute longer than a second must have shown "computing" and a
   partly filled progress bar while it ran; the recompute time of each control is written
   to ``_build/lab-widgets.md``;
3. moves a slider several steps in quick succession and requires the figure finally shown to
   be the one of the last value, and to stay so (no stale result arriving late);
4. saves the notebook (the lab's pre-save hook strips what nbval must not compare) and
   requires the saved file to equal the committed chapter, so running a chapter
   interactively cannot break the notebook tests.

Negative controls run the same checks on doctored notebooks (a callback that ignores its
slider, one that raises, a slow one with no progress display, a widget whose front-end model
does not exist) and require each fault to be reported. The server is stopped at the end, and the
test checks that it is gone.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
REPORT = ROOT / "_build" / "lab-widgets.md"
SHOTS = ROOT / "_build" / "screenshots" / "lab"
RUN_ALL_TIMEOUT_S = 300
# a recompute longer than this must fill the progress bar while it runs, if its draw reports
# progress (the training explorers); the others' slow recomputes are listed in the report
# (a machine under load makes a 0.1 s draw take 1 s: a wall-clock limit would be flaky)
SLOW_S = 1.0


def live_chapters() -> list[str]:
    """Chapters (files starting with a digit) with a cell that builds a live explorer."""
    names = []
    for path in sorted(BOOK.glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any(c.cell_type == "code" and "explorer(" in c.source for c in nb.cells):
            names.append(path.name)
    return names


LIVE = live_chapters()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab started by scripts/lab.sh on a copy of book/; yields (url, token, folder)."""
    folder = tmp_path_factory.mktemp("lab") / "book"
    shutil.copytree(BOOK, folder)
    port, token = _free_port(), secrets.token_hex(24)
    env = dict(
        os.environ, RLVIZ_LAB_DIR=str(folder), RLVIZ_LAB_PORT=str(port), RLVIZ_LAB_TOKEN=token
    )
    log = open(folder.parent / "lab.log", "w")
    proc = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "lab.sh"), "--LabApp.expose_app_in_browser=True"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"JupyterLab did not start: {(folder.parent / 'lab.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        printed = (folder.parent / "lab.log").read_text()
        assert f"{url}/lab/tree/" in printed and f"token={token}" in printed, (
            "scripts/lab.sh did not print the URL it serves"
        )
        yield url, token, folder
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
    assert not _port_open(port), "the JupyterLab server is still listening after the test"


# ---------------------------------------------------------------- browser helpers
JS_KERNEL_IDLE = """() => {
    const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
    const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
    return !!(k && k.status === 'idle' && w.content && w.content.widgets.length);
}"""

# every code cell executed (has a count), none running, kernel idle; errors listed
JS_RUN_STATE = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    const k = w.sessionContext.session.kernel;
    const cells = [];
    for (const cell of w.content.widgets) {
        if (cell.model.type !== 'code') continue;
        const outs = cell.model.toJSON().outputs || [];
        cells.push({count: cell.model.executionCount,
                    errors: (outs || []).filter(o => o.output_type === 'error')
                                        .map(o => o.ename + ': ' + o.evalue)});
    }
    const running = Array.from(document.querySelectorAll('.jp-InputPrompt'))
        .some(e => e.innerText.includes('*'));
    return {idle: k.status === 'idle', running, cells};
}"""

JS_EXPLORERS = """() => Array.from(window.jupyterapp.shell.currentWidget.node
        .querySelectorAll('.rlviz-explorer')).map((e, i) => ({
    index: i,
    status: (e.querySelector('.rlviz-status') || {}).textContent || '',
    sliders: e.querySelectorAll('.noUi-handle').length,
    selects: e.querySelectorAll('select').length,
    reports_progress: e.classList.contains('rlviz-reports-progress'),
    readouts: Array.from(e.querySelectorAll('.widget-readout')).map(r => r.textContent.trim()),
    plots: JSON.stringify(Array.from(e.querySelectorAll('.rlviz-output .js-plotly-plot'))
        .map(g => [(g.data || []).map(t => [t.x, t.y, t.z, t.visible]),
                   ((g.layout || {}).shapes || []), ((g.layout || {}).annotations || []),
                   ((g.layout || {}).title || {}).text])),
    nplots: e.querySelectorAll('.rlviz-output .js-plotly-plot .main-svg').length,
}))"""

STATUS_DONE = re.compile(r"^(?P<label>.*) · drawn in (?P<seconds>[0-9.]+) s$")
ERROR_MARK = " · error: "  # rlviz.jupyter.widgets shows "<values> · error: <exception>"


def _explorer(page, i: int) -> dict:
    return page.evaluate(JS_EXPLORERS)[i]


JS_STATUS = """(i) => {
    const e = window.jupyterapp.shell.currentWidget.node.querySelectorAll('.rlviz-explorer')[i];
    const p = e.querySelector('.widget-hprogress');
    const shown = p && p.style.visibility !== 'hidden';
    return {status: (e.querySelector('.rlviz-status') || {}).textContent || '',
            progress: shown ? parseFloat(p.querySelector('.progress-bar').style.width) : null};
}"""


def _wait_status(page, i: int, not_label: str | None, timeout_s: float) -> dict:
    """Wait until explorer ``i`` reports a drawn figure (with a label other than ``not_label``),
    or an error; return its state, with what was seen meanwhile under ``"seen"``: whether
    the status said "computing" and the progress bar's fill levels (percent)."""
    deadline = time.monotonic() + timeout_s
    seen = {"computing": False, "progress": set()}
    while True:
        st = page.evaluate(JS_STATUS, i)
        seen["computing"] |= st["status"].startswith("computing")
        if st["progress"] is not None:
            seen["progress"].add(round(st["progress"]))
        m = STATUS_DONE.match(st["status"].strip())
        if (
            ERROR_MARK in st["status"]
            or (m and m["label"] != not_label)
            or time.monotonic() > deadline
        ):
            e = _explorer(page, i)
            e["seen"] = seen
            return e
        page.wait_for_timeout(40)


def _label(e: dict) -> str | None:
    m = STATUS_DONE.match(e["status"].strip())
    return m["label"] if m else None


# the status label is "name=value, name=value": split at a comma only where a name and "="
# follow, so a dropdown value may hold ", " ("token clip 0.2/0.2, 2 inner steps")
_LABEL_SEP = re.compile(r", (?=[A-Za-z_]\w*=)")


def _values(label: str) -> dict:
    return dict(part.split("=", 1) for part in _LABEL_SEP.split(label))


def _explorers(page):
    """Locator of the explorers in the notebook shown (other tabs' are hidden)."""
    panel = page.evaluate("() => window.jupyterapp.shell.currentWidget.id")
    return page.locator(f"[id='{panel}'] .rlviz-explorer")


def _move_slider(page, i: int, j: int, presses: int = 1) -> None:
    """Press an arrow key on slider ``j`` of explorer ``i``: right, or left at the maximum."""
    explorer = _explorers(page).nth(i)
    handle, readout = (
        explorer.locator(".noUi-handle").nth(j),
        explorer.locator(".widget-readout").nth(j),
    )
    handle.scroll_into_view_if_needed()
    handle.focus()
    before = readout.text_content()
    handle.press("ArrowRight")
    page.wait_for_timeout(150)
    key = "ArrowRight"
    if readout.text_content() == before:  # at the maximum
        key = "ArrowLeft"
        handle.press(key)
    for _ in range(presses - 1):
        handle.press(key)


def _same_value(shown: str, readout: str) -> bool:
    """The drawn value equals the slider's readout, to the readout's precision."""
    readout = readout.replace("\u2212", "-")  # the readout writes negatives with a true minus
    decimals = len(readout.split(".")[1]) if "." in readout else 0
    return abs(float(shown) - float(readout)) <= 0.5 * 10**-decimals + 1e-9


def check_chapter(
    browser, url: str, token: str, name: str, timings: list | None = None, quick_moves: bool = True
) -> list[str]:
    """Open ``name`` in the lab, run all, move every control; return the problems found."""
    problems: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page_errors: list[str] = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    try:
        # a workspace of its own, reset: only this notebook open
        workspace = "t" + secrets.token_hex(4)
        page.goto(
            f"{url}/lab/workspaces/{workspace}/tree/{name}?token={token}&reset", wait_until="load"
        )
        page.wait_for_function(JS_KERNEL_IDLE, timeout=90_000)
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        t0 = time.monotonic()
        # the command behind Run > Run All Cells; its promise resolves when the run ends
        finished = page.evaluate(
            """(ms) => Promise.race([
            window.jupyterapp.commands.execute('notebook:run-all-cells').then(() => true),
            new Promise(resolve => setTimeout(() => resolve(false), ms))])""",
            RUN_ALL_TIMEOUT_S * 1000,
        )
        page.wait_for_function(JS_KERNEL_IDLE, timeout=60_000)
        state = page.evaluate(JS_RUN_STATE)
        if not finished:
            problems.append(f"Run All did not finish in {RUN_ALL_TIMEOUT_S} s: {state}")
            return problems
        unrun = [k for k, c in enumerate(state["cells"]) if c["count"] is None]
        if unrun and not any(c["errors"] for c in state["cells"]):
            problems.append(f"code cells {unrun} did not run")
        run_s = time.monotonic() - t0
        errors = [e for c in state["cells"] for e in c["errors"]]
        if errors:
            problems.append(f"cell errors after Run All: {errors[:3]}")
            return problems
        explorers = page.evaluate(JS_EXPLORERS)
        if not explorers:
            problems.append("no live explorer rendered (widgets missing)")
        for i, e in enumerate(explorers):
            _explorers(page).nth(i).scroll_into_view_if_needed()
            e = _wait_status(page, i, None, 60)
            if _label(e) is None:
                problems.append(f"explorer {i}: no figure drawn (status {e['status']!r})")
                continue
            if e["nplots"] == 0:
                problems.append(f"explorer {i}: status says drawn but no plotly figure shown")
            controls = [("slider", j) for j in range(e["sliders"])] + [
                ("select", j) for j in range(e["selects"])
            ]
            slider_names = {}  # slider j -> the draw argument it sets (seen when it moves)
            for kind, j in controls:
                before = _explorer(page, i)
                if kind == "slider":
                    _move_slider(page, i, j)
                else:
                    sel = _explorers(page).nth(i).locator("select").nth(j)
                    sel.scroll_into_view_if_needed()
                    # by value: ipywidgets writes an option's text with non-breaking spaces
                    options = sel.evaluate("s => Array.from(s.options).map(o => o.value)")
                    current = sel.input_value()
                    sel.select_option(value=next(o for o in options if o != current))
                after = _wait_status(page, i, _label(before), 90)
                what = f"explorer {i}, {kind} {j}"
                if ERROR_MARK in after["status"]:
                    problems.append(f"{what}: the callback failed: {after['status']}")
                elif _label(after) == _label(before):
                    problems.append(
                        f"{what}: moving it drew no new figure (status {after['status']!r})"
                    )
                elif after["plots"] == before["plots"]:
                    problems.append(
                        f"{what}: a new figure was reported but the plotted data "
                        "(traces, shapes, annotations, title) did not change"
                    )
                else:
                    if kind == "slider":
                        old_v, new_v = _values(_label(before)), _values(_label(after))
                        moved = [k for k, v in new_v.items() if old_v.get(k) != v]
                        if len(moved) == 1:
                            slider_names[j] = moved[0]
                    seconds = float(STATUS_DONE.match(after["status"].strip())["seconds"])
                    partial = {p for p in after["seen"]["progress"] if 0 < p < 100}
                    if (
                        e["reports_progress"]
                        and seconds > SLOW_S
                        and not (after["seen"]["computing"] and partial)
                    ):
                        problems.append(
                            f"{what}: a {seconds:.1f} s recompute showed no progress "
                            f"(computing seen: {after['seen']['computing']}, "
                            f"bar levels: {sorted(after['seen']['progress'])})"
                        )
                    if timings is not None:
                        timings.append(
                            (
                                name,
                                i,
                                kind,
                                j,
                                _label(before),
                                _label(after),
                                seconds,
                                e["reports_progress"],
                            )
                        )
            if quick_moves and e["sliders"]:
                # several values in quick succession: the last one must win, and stay
                before = _explorer(page, i)
                _move_slider(page, i, 0, presses=3)
                page.wait_for_timeout(200)
                final = _wait_status(page, i, _label(before), 90)
                wanted = _explorer(page, i)["readouts"][0]
                label = _label(final)
                values = _values(label) if label else {}
                shown = values.get(slider_names.get(0, next(iter(values), None)))
                if shown is None or not _same_value(shown, wanted):
                    problems.append(
                        f"explorer {i}: after quick moves the slider shows {wanted} "
                        f"but the figure is for {label!r}"
                    )
                last = max(
                    (t[6] for t in (timings or []) if t[0] == name and t[2] != "run all"),
                    default=1.0,
                )
                page.wait_for_timeout(int(1000 * max(1.0, 2 * last)))
                if _explorer(page, i)["status"] != final["status"]:
                    problems.append(
                        f"explorer {i}: a stale figure replaced the newest one "
                        f"({_explorer(page, i)['status']!r})"
                    )
        text = page.evaluate("() => window.jupyterapp.shell.currentWidget.node.innerText")
        broken = page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.node"
            ".querySelectorAll('.jupyter-widgets-error-widget').length"
        )
        if "Error displaying widget" in text or broken:
            problems.append(f"Error displaying widget: {broken} widget(s) failed to render")
        if "Loading widget" in text:
            problems.append("'Loading widget...' still shown")
        if page_errors:
            problems.append(f"page errors: {page_errors[:3]}")
        if timings is not None:
            timings.append((name, None, "run all", None, None, None, run_s, None))
        # save: the pre-save hook must leave the committed file
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        page.wait_for_function(
            "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=30_000
        )
        # free the kernel's memory and core for the next chapter
        page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / (Path(name).stem + ".png")))
        page.close()
    return problems


def _comparable(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    return {
        "metadata": nb["metadata"],
        "cells": [
            {k: c.get(k) for k in ("cell_type", "source", "outputs", "execution_count", "metadata")}
            for c in nb["cells"]
        ],
    }


# ---------------------------------------------------------------- the tests
def test_every_chapter_has_live_widgets():
    chapters = [p.name for p in sorted(BOOK.glob("[0-9]*.ipynb"))]
    assert len(chapters) >= 17
    assert LIVE == chapters, (
        f"chapters without a live explorer: {sorted(set(chapters) - set(LIVE))}"
    )


_TIMINGS: list = []


@pytest.mark.parametrize("name", LIVE)
def test_chapter_live_in_jupyterlab(browser, lab, name):
    url, token, folder = lab
    problems = check_chapter(browser, url, token, name, _TIMINGS)
    _write_report()
    assert problems == []
    if (folder / name).read_bytes() != (BOOK / name).read_bytes():
        saved, committed = _comparable(folder / name), _comparable(BOOK / name)
        diff = [i for i, (a, b) in enumerate(zip(saved["cells"], committed["cells"])) if a != b]
        pytest.fail(
            f"running and saving {name} in the lab changed the file (metadata changed: "
            f"{saved['metadata'] != committed['metadata']}, cells changed: {diff[:5]}, "
            f"{len(saved['cells'])} cells saved, {len(committed['cells'])} committed): "
            "nbval would compare different outputs"
        )


def _write_report() -> None:
    rows = [
        "| chapter | control | from | to | recompute (s) | progress bar |",
        "|---|---|---|---|---|---|",
    ]
    for name, i, kind, j, a, b, s, bar in _TIMINGS:
        if kind == "run all":
            rows.append(f"| {name} | Run All | | | {s:.1f} | |")
        else:
            slow = f"no (slower than {SLOW_S:.1f} s here)"
            mark = "yes" if bar else (slow if s > SLOW_S else "no")
            rows.append(f"| {name} | explorer {i} {kind} {j} | {a} | {b} | {s:.2f} | {mark} |")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(rows) + "\n")


# ---------------------------------------------------------------- negative controls
BROKEN = {
    "ignores its slider": (
        "explorer(lambda gamma: figs.weights_figure(n=8, lambdas=[0.5]),\n"
        "         gamma=w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1))",
        "did not change",
    ),
    "raises": (
        "def draw(gamma):\n"
        "    if gamma != 0.5:\n"
        "        raise RuntimeError('broken callback')\n"
        "    return figs.weights_figure(n=8, lambdas=[gamma])\n"
        "explorer(draw, gamma=w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1))",
        "the callback failed",
    ),
    "slow with no progress": (
        "import time\n"
        "def draw(gamma, progress):  # says it reports progress, never does\n"
        "    time.sleep(1.5)\n"
        "    return figs.weights_figure(n=8, lambdas=[gamma])\n"
        "explorer(draw, gamma=w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1))",
        "showed no progress",
    ),
    "front-end model missing": (
        "display(explorer(lambda gamma: figs.weights_figure(n=8, lambdas=[gamma]),\n"
        "         gamma=w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1)))\n"
        "from traitlets import Unicode\n"
        "class Ghost(w.DOMWidget):\n"
        "    _view_module = Unicode('no-such-module').tag(sync=True)\n"
        "    _view_name = Unicode('GhostView').tag(sync=True)\n"
        "    _model_module = Unicode('no-such-module').tag(sync=True)\n"
        "    _model_name = Unicode('GhostModel').tag(sync=True)\n"
        "Ghost()",
        "Error displaying widget|Loading widget",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_checks_fail_on_a_broken_widget(browser, lab, case):
    url, token, folder = lab
    code, expected = BROKEN[case]
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import ipywidgets as w\n"
            "from rlviz.figures import ch08 as figs\n"
            "from rlviz.jupyter.widgets import explorer"
        ),
        nbformat.v4.new_code_cell(code),
    ]
    name = f"zz_broken_{re.sub(r'[^a-z]+', '_', case)}.ipynb"
    nbformat.write(nb, folder / name)
    problems = check_chapter(browser, url, token, name, quick_moves=False)
    assert any(re.search(expected, p) for p in problems), problems
