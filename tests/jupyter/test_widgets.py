"""rlviz.jupyter.widgets.explorer: first draw, newest value wins, progress and cancellation, errors;
rlviz.jupyter.notebooks: what a saved chapter keeps."""

from __future__ import annotations

import threading

import ipywidgets as w
import nbformat
import plotly.graph_objects as go
import pytest

from rlviz.jupyter import widgets
from rlviz.jupyter.notebooks import clean_notebook, coalesce_streams, pre_save_hook
from rlviz.jupyter.widgets import Explorer, Superseded, explorer

PLOTLY = "application/vnd.plotly.v1+json"


def fig(value):
    return go.Figure(go.Scatter(y=[value]))


def shown(e: Explorer):
    """The y value of the figure the explorer's output area shows (None if not a figure)."""
    (out,) = e.out.outputs
    if out["output_type"] != "display_data":
        return None
    return out["data"][PLOTLY]["data"][0]["y"][0]


def slider(value=0.5, **kw):
    return w.FloatSlider(value=value, min=0.0, max=1.0, step=0.1, **kw)


def test_first_figure_is_drawn_in_the_cell():
    e = explorer(lambda gamma: fig(gamma), gamma=slider())
    assert shown(e) == 0.5
    assert "gamma=0.5 · drawn in" in e.status.value
    assert [h["outcome"] for h in e.history] == ["drawn"]
    assert "rlviz-explorer" in e._dom_classes
    assert e.history.maxlen == 200  # a long session does not grow it without bound


def test_moving_a_slider_redraws_for_the_new_value():
    e = explorer(lambda gamma, n: fig(gamma * n), gamma=slider(), n=w.IntSlider(value=2))
    e.controls["gamma"].value = 0.7
    assert e.wait(10)
    assert shown(e) == pytest.approx(1.4)
    assert e.status.value.startswith("gamma=0.7, n=2 · drawn in")


def test_newest_value_wins_and_stale_figures_are_never_shown():
    release, started = threading.Event(), threading.Event()
    calls = []

    def draw(gamma):
        calls.append(gamma)
        if len(calls) == 2:  # the first background draw blocks until released
            started.set()
            assert release.wait(10)
        return fig(gamma)

    e = explorer(draw, gamma=slider())
    s = e.controls["gamma"]
    s.value = 0.6
    assert started.wait(10)
    s.value = 0.7  # arrive while 0.6 is being drawn
    s.value = 0.8
    seen_while_blocked = shown(e)
    release.set()
    assert e.wait(10)
    assert seen_while_blocked == 0.5  # nothing stale was shown meanwhile
    assert calls == [0.5, 0.6, 0.8]  # 0.7 was coalesced away, never computed
    assert shown(e) == 0.8
    assert [h["outcome"] for h in e.history] == ["drawn", "dropped", "drawn"]


def test_progress_fills_the_bar_and_stops_a_superseded_run():
    release, started = threading.Event(), threading.Event()
    fractions = []

    def draw(gamma, progress):
        for k in range(1, 5):
            progress(k / 4)
            fractions.append((gamma, k / 4))
            if gamma == 0.6 and k == 2:
                started.set()
                assert release.wait(10)
        return fig(gamma)

    e = explorer(draw, gamma=slider())
    assert e.takes_progress and e.bar.value == 1.0
    e.controls["gamma"].value = 0.6
    assert started.wait(10)
    e.controls["gamma"].value = 0.9
    release.set()
    assert e.wait(10)
    assert shown(e) == 0.9
    # the 0.6 run stopped at its next progress call, after 2 of 4 updates
    assert [f for g, f in fractions if g == 0.6] == [0.25, 0.5]
    assert [h["outcome"] for h in e.history] == ["drawn", "superseded", "drawn"]
    assert e.bar.layout.visibility == "hidden"


def test_an_error_is_shown_not_swallowed_and_the_next_value_recovers():
    def draw(gamma):
        if gamma > 0.75:
            raise ValueError(f"gamma too large: {gamma}")
        return fig(gamma)

    e = explorer(draw, gamma=slider())
    e.controls["gamma"].value = 0.8
    assert e.wait(10)
    (out,) = e.out.outputs
    assert out["output_type"] == "error" and out["ename"] == "ValueError"
    assert "gamma too large" in e.status.value and "error" in e.status.value
    e.controls["gamma"].value = 0.3
    assert e.wait(10)
    assert shown(e) == 0.3 and "drawn in" in e.status.value


def test_superseded_is_only_raised_for_stale_runs():
    e = explorer(lambda gamma: fig(gamma), gamma=slider())
    e._progress(e._latest, 0.5)  # current: no exception
    with pytest.raises(Superseded):
        e._progress(e._latest - 1, 0.5)


def test_slow_first_draw_makes_sliders_update_on_release(monkeypatch):
    monkeypatch.setattr(widgets, "SLOW_SECONDS", -1.0)
    e = explorer(lambda gamma: fig(gamma), gamma=slider())
    assert e.controls["gamma"].continuous_update is False


def test_fast_first_draw_keeps_continuous_update():
    e = explorer(lambda gamma: fig(gamma), gamma=slider())
    assert e.controls["gamma"].continuous_update is True


def test_readout_shows_every_digit_of_the_step():
    fine = w.FloatSlider(value=0.98, min=0.8, max=0.999, step=0.001)
    coarse = w.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.1)
    explorer(lambda a, b: fig(a + b), a=fine, b=coarse)
    assert fine.readout_format == ".3f" and coarse.readout_format == ".2f"


@pytest.mark.parametrize(
    "draw, controls, message",
    [
        ("not callable", {"gamma": slider()}, "draw must be callable"),
        (lambda gamma: fig(gamma), {}, "at least one control"),
        (lambda gamma: fig(gamma), {"gamma": 0.5}, "must be an ipywidgets value widget"),
        (lambda gamma: fig(gamma), {"lam": slider()}, "no parameter named ['lam']"),
    ],
)
def test_bad_explorer_arguments_say_what_is_wrong(draw, controls, message):
    with pytest.raises(ValueError) as err:
        explorer(draw, **controls)
    assert message in str(err.value)


def test_a_draw_that_does_not_return_a_figure_is_an_error_on_screen():
    e = explorer(lambda gamma: "not a figure", gamma=slider())
    assert e.out.outputs[0]["output_type"] == "error"
    assert "error" in e.status.value


# ---------------------------------------------------------------- saved chapters
def _chapter():
    nb = nbformat.v4.new_notebook()
    keep = nbformat.v4.new_code_cell(
        "print(1)", execution_count=1, outputs=[nbformat.v4.new_output("stream", text="1\n")]
    )
    keep.metadata["execution"] = {"iopub.execute_input": "2026-11-25T00:00:00"}
    drop = nbformat.v4.new_code_cell(
        "show(f)",
        execution_count=2,
        outputs=[nbformat.v4.new_output("display_data", data={"text/plain": "f"})],
    )
    drop.metadata["tags"] = ["nbval-ignore-output"]
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), keep, drop]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    return nb


def test_clean_notebook_keeps_compared_outputs_and_strips_the_rest():
    nb = clean_notebook(_chapter())
    md, keep, drop = nb.cells
    assert keep.outputs[0]["text"] == "1\n" and keep.execution_count == 1
    assert "execution" not in keep.metadata
    assert drop.outputs == [] and drop.execution_count is None
    assert "widgets" not in nb.metadata
    nbformat.validate(nb)


def test_pre_save_hook_cleans_notebooks_only():
    model = {"type": "notebook", "content": _chapter()}
    pre_save_hook(model=model, path="x.ipynb", contents_manager=None)
    assert model["content"].cells[2].outputs == [] and "widgets" not in model["content"].metadata
    text = {"type": "file", "content": "NBVAL_IGNORE_OUTPUT"}
    pre_save_hook(model=text, path="x.txt", contents_manager=None)
    assert text == {"type": "file", "content": "NBVAL_IGNORE_OUTPUT"}


def test_the_source_comment_marker_is_refused_with_the_fix():
    nb = _chapter()
    nb.cells[2].source = "# NBVAL_IGNORE_OUTPUT\nshow(f)"
    with pytest.raises(ValueError, match="tag the cell 'nbval-ignore-output'"):
        clean_notebook(nb)


def test_an_untagged_cell_keeps_its_outputs():
    nb = _chapter()
    nb.cells[2].metadata["tags"] = ["hide-input"]
    assert clean_notebook(nb).cells[2].outputs != []


def test_clean_notebook_rejects_what_is_not_a_notebook():
    with pytest.raises(ValueError, match="notebook dict with a 'cells' list"):
        clean_notebook({"metadata": {}})


def test_consecutive_prints_are_merged_per_stream():
    def out(name, text):
        return {"output_type": "stream", "name": name, "text": text}

    shown_fig = {"output_type": "display_data", "data": {"text/plain": "f"}, "metadata": {}}
    merged = coalesce_streams(
        [
            out("stdout", "a\n"),
            out("stdout", ["b\n", "c\n"]),
            out("stderr", "w\n"),
            out("stdout", "d\n"),
            shown_fig,
            out("stdout", "e\n"),
        ]
    )
    assert [(o.get("name"), o.get("text")) for o in merged] == [
        ("stdout", "a\nb\nc\n"),
        ("stderr", "w\n"),
        ("stdout", "d\n"),
        (None, None),
        ("stdout", "e\n"),
    ]


def test_status_text_is_escaped_html():
    def draw(choice):
        if choice == "<b>":
            raise ValueError("expected <plotly figure>")
        return fig(1.0)

    e = explorer(draw, choice=w.Dropdown(options=["a", "<b>"], value="a"))
    e.controls["choice"].value = "<b>"
    assert e.wait(10)
    assert "&lt;plotly figure&gt;" in e.status.value and "<plotly" not in e.status.value
    assert "choice=&lt;b&gt;" in e.status.value
