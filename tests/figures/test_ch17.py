"""rlviz.figures.ch17: the cap figure has one slider step per delta and shows one block of
traces per step; the live figure draws every correction."""

import pytest

from rlviz.figures.ch17 import cap_figure, live_cap_figure


def test_cap_figure_slider_blocks():
    fig = cap_figure(deltas=(0.25, 1.0), caps=(0.5, 2.0, 8.0))
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 2
    per = len(fig.data) // 2
    assert per == 14  # 2 panels x (4 capped + 3 references)
    assert [tr.visible for tr in fig.data] == [True] * per + [False] * per
    assert steps[1].args[0]["visible"] == [False] * per + [True] * per
    assert fig.layout.xaxis.type == "log"


def test_cap_figure_checks_sweeps():
    with pytest.raises(ValueError, match="one sweep per delta"):
        cap_figure(deltas=(0.25, 1.0), sweeps=[])


def test_live_figure_traces():
    fig = live_cap_figure(0.5, batch=4)
    assert len(fig.data) == 7
    assert all(min(tr.y) >= 0 for tr in fig.data)
