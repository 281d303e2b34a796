"""Figures of chapter 15: the length bias of the aggregation modes and the zero-variance groups.

Each function computes its data with :mod:`rlviz.experiments.ch15` (exact, float64) and returns
a plotly figure whose sliders hold every step's data (they work on the static site).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlviz.experiments.ch15 import (
    WRONG_STOP_LOGITS,
    aggregation_table,
    wrong_answer_length,
)
from rlviz.figures.common import rounded, slider_steps
from rlviz.fn.grpo_aggregation import AGG_MODES, AGGREGATIONS, zero_variance_probability

__all__ = ["length_bias_figure", "length_bias_live", "zero_variance_figure"]


def _bars(fig, table, visible):
    names = [AGGREGATIONS.label(m) for m in AGG_MODES]
    fig.add_trace(
        go.Bar(
            x=names,
            y=rounded([table[m][0] for m in AGG_MODES], 4),
            visible=visible,
            name="angle to grad J",
            marker_color="#1f77b4",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=names,
            y=rounded([table[m][2] for m in AGG_MODES], 6),
            visible=visible,
            name="wrong-answer length drift",
            marker_color="#d62728",
        ),
        row=1,
        col=2,
    )


def _layout(fig, title):
    fig.update_layout(title=title, height=470, showlegend=False, margin={"t": 90, "b": 120})
    fig.update_yaxes(title_text="angle(E[g_hat], grad J) (degrees)", row=1, col=1)
    fig.update_yaxes(title_text="d E[|y| | wrong] per unit step", row=1, col=2)
    fig.update_xaxes(tickangle=30)


def length_bias_figure(logits=WRONG_STOP_LOGITS, group_size: int = 2) -> go.Figure:
    """Per aggregation mode: the angle of the exact expected gradient to grad J and the drift of
    the wrong answers' mean length, one slider step per wrong-answer length."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("direction", "length drift"))
    labels = []
    for i, c in enumerate(logits):
        _bars(fig, aggregation_table(c, group_size), i == 0)
        labels.append(f"{wrong_answer_length(c):.2f}")
    _layout(
        fig,
        f"Normalising by length tilts the update and lengthens wrong answers (K = {group_size})",
    )
    slider = slider_steps(labels, 2, prefix="mean length of wrong answers = ")
    slider["pad"] = {"t": 150}  # below the slanted mode names on the x axes
    fig.update_layout(sliders=[slider], height=590, margin={"b": 230})
    return fig


def length_bias_live(wrong_stop_logit: float = 0.0, group_size: int = 2) -> go.Figure:
    """:func:`length_bias_figure` for one end-token logit and group size (the live cell)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("direction", "length drift"))
    _bars(fig, aggregation_table(wrong_stop_logit, group_size), True)
    _layout(
        fig,
        f"Mean length of wrong answers {wrong_answer_length(wrong_stop_logit):.2f}, K = {group_size}",
    )
    return fig


GROUP_SIZES = (2, 4, 8, 16)
P_GRID = tuple(np.round(np.linspace(0.0, 1.0, 41), 4))


def zero_variance_figure(group_sizes=GROUP_SIZES, ps=P_GRID) -> go.Figure:
    """The probability p^K + (1-p)^K that a group carries no gradient, and the factor
    1 / (1 - p^K - (1-p)^K) by which dynamic sampling scales a prompt's expected update; one
    slider step per group size."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("zero-variance groups", "dynamic sampling"))
    ps = np.asarray(ps)
    inner = ps[(ps > 0) & (ps < 1)]
    for i, G in enumerate(group_sizes):
        fig.add_trace(
            go.Scatter(
                x=list(ps),
                y=rounded(zero_variance_probability(ps, G), 6),
                mode="lines",
                name="P(all right or all wrong)",
                visible=i == 0,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=list(inner),
                y=rounded(1 / (1 - zero_variance_probability(inner, G)), 6),
                mode="lines",
                name="scale of the expected update",
                visible=i == 0,
            ),
            row=1,
            col=2,
        )
    fig.update_layout(
        title="Groups with one reward carry no gradient; dropping them rescales the rest",
        height=430,
        showlegend=False,
        sliders=[slider_steps([str(G) for G in group_sizes], 2, prefix="K = ")],
    )
    fig.update_xaxes(title_text="pass rate p of the prompt")
    fig.update_yaxes(title_text="p^K + (1-p)^K", row=1, col=1)
    fig.update_yaxes(title_text="1 / (1 - p^K - (1-p)^K)", type="log", row=1, col=2)
    return fig
