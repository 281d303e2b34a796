"""Figures of chapter 16: each slider step shows one block of traces, the data are finite."""

from __future__ import annotations

import numpy as np
import pytest

from rlviz.figures import ch16


@pytest.mark.parametrize(
    "make",
    [
        ch16.clip_entropy_figure,
        ch16.clip_cov_figure,
        ch16.entropy_error_figure,
        ch16.ratio_bias_figure,
        ch16.ratio_variance_figure,
    ],
)
def test_slider_blocks_cover_the_traces(make):
    fig = make()
    steps = fig.layout.sliders[0].steps
    n = len(fig.data)
    assert n % len(steps) == 0
    per = n // len(steps)
    for k, st in enumerate(steps):
        assert list(st.args[0]["visible"]) == [j // per == k for j in range(n)]
    assert [bool(t.visible) for t in fig.data] == [j < per for j in range(n)]
    for t in fig.data:
        assert np.all(np.isfinite(np.asarray(t.y, dtype=float)))


def test_slider_steps_change_the_data():
    fig = ch16.ratio_variance_figure()
    per = len(fig.data) // len(fig.layout.sliders[0].steps)
    assert fig.data[0].y != fig.data[per].y


def test_live_clip_figure_follows_its_arguments():
    a, b = ch16.live_clip_figure(1, 0.2), ch16.live_clip_figure(3, 0.2)
    assert len(a.data) == 4 and a.data[0].y != b.data[0].y
    assert "eps_low = 0.1" in ch16.live_clip_figure(1, 0.1).layout.title.text
