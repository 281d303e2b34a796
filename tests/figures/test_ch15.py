"""rlviz.figures.ch15: every slider step shows one whole block of traces; the data are exact."""

import numpy as np
import plotly.graph_objects as go
import pytest

from rlviz.figures import ch15

FIGURES = {
    "length bias": lambda: ch15.length_bias_figure(logits=(2.0, 0.0, -2.0)),
    "zero variance": lambda: ch15.zero_variance_figure(),
}


@pytest.mark.parametrize("name", FIGURES)
def test_each_slider_step_shows_one_whole_block_of_traces(name):
    fig = FIGURES[name]()
    assert isinstance(fig, go.Figure)
    (slider,) = fig.layout.sliders
    shown = [step.args[0]["visible"] for step in slider.steps]
    assert all(len(v) == len(fig.data) for v in shown)
    assert [sum(col) for col in zip(*shown)] == [1] * len(fig.data)
    assert [t.visible is not False for t in fig.data] == list(shown[slider.active or 0])


def test_length_bias_token_sum_modes_have_no_tilt():
    fig = ch15.length_bias_live(0.0, 2)
    angles = dict(zip(fig.data[0].x, fig.data[0].y))
    assert angles["seq-mean-token-sum"] == pytest.approx(0.0, abs=1e-3)
    assert angles["seq-mean-token-mean (GRPO paper)"] > 3


def test_zero_variance_endpoints():
    fig = ch15.zero_variance_figure(group_sizes=(2,), ps=(0.0, 0.5, 1.0))
    np.testing.assert_allclose(fig.data[0].y, [1.0, 0.5, 1.0])
    np.testing.assert_allclose(fig.data[1].y, [2.0])
