"""Figures of chapter 13: learning curves of groups of seeds (median and range) from
:func:`rlviz.experiments.ch13.study` (the sensitivity to gamma, lambda and epsilon, with a
slider, and the ablations), and a single run (the live widget, trained by
:func:`rlviz.experiments.ch13.live_run`)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz.experiments.ch13 import SEEDS, SENSITIVITY, book_value, live_run
from rlviz.figures.common import rounded, slider_steps
from rlviz.figures.training_curves import COLORS, band_traces

NAMES = {"gamma": "gamma", "lam": "lambda", "clip_eps": "epsilon"}


def _curve(result, k):
    steps = [int(s) for s in result.log("steps")]
    return steps, rounded(np.nan_to_num(result.log("return")[:, k]), 1)


def band_figure(result, study, names, *, seeds=SEEDS, title: str) -> go.Figure:
    """One median learning curve per group of ``names`` with the range of its seeds shaded.

    ``result`` is :func:`rlviz.agents.ppo.train` on ``study.configs``
    (:func:`rlviz.experiments.ch13.study`); each group uses its runs of ``seeds``.
    """
    steps = [int(s) for s in result.log("steps")]
    R = np.nan_to_num(result.log("return"))
    fig = go.Figure()
    for i, name in enumerate(names):
        runs = R[:, study.rows(name, seeds)]
        for tr in band_traces(
            steps,
            runs.min(1),
            np.median(runs, 1),
            runs.max(1),
            name=name,
            color=COLORS[i % len(COLORS)],
            digits=1,
            mode="lines",
        ):
            fig.add_trace(tr)
    fig.update_layout(
        title=f"{title}<br><sup>median of {len(seeds)} seeds (line) and their range "
        f"(shaded); all runs of the chapter are one batched computation</sup>",
        xaxis_title="environment steps",
        yaxis_title="episode return (last finished episode, mean over envs)",
        yaxis_range=[0, 520],
        height=460,
    )
    return fig


def sensitivity_figure(result, study, *, seeds=SEEDS) -> go.Figure:
    """:func:`band_figure` for each coefficient of :data:`rlviz.experiments.ch13.SENSITIVITY`
    (``gamma``, ``lam``, ``clip_eps``), its three values at a time; the slider picks the
    coefficient. The book's own value is the book setting."""
    fig = go.Figure()
    for coef, values in SENSITIVITY.items():
        names = [n if n in study.groups else "book setting" for n in values]
        part = band_figure(result, study, names, seeds=seeds, title="")
        for tr in part.data:
            if tr.name == "book setting":
                tr.name = f"{NAMES[coef]} = {book_value(coef)} (book setting)"
            tr.visible = coef == "gamma"
            fig.add_trace(tr)
    per = len(fig.data) // len(SENSITIVITY)
    labels = [NAMES[c] for c in SENSITIVITY]
    fig.update_layout(
        title=f"PPO on CartPole: one coefficient changed at a time<br><sup>median of "
        f"{len(seeds)} seeds (line) and their range (shaded); the slider picks the "
        f"coefficient</sup>",
        xaxis_title="environment steps",
        yaxis_title="episode return (last finished episode, mean over envs)",
        yaxis_range=[0, 520],
        sliders=[slider_steps(labels, per, prefix="changed: ")],
        height=500,
        margin={"b": 90},
    )
    return fig


def run_figure(result, k: int = 0) -> go.Figure:
    """One setting's learning curve: the episode return against the steps (the live widget's
    figure)."""
    x, y = _curve(result, k)
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines", name="episode return"))
    fig.update_layout(
        title=f"PPO on CartPole ({result.train_seconds:.1f} s of training)",
        xaxis_title="environment steps",
        yaxis_title="episode return",
        yaxis_range=[0, 520],
        height=380,
    )
    return fig


def live_run_figure(
    gamma: float = 0.98,
    lam: float = 0.8,
    epsilon: float = 0.2,
    seed: int = 0,
    total_steps: int = 12_000,
    progress=None,
) -> go.Figure:
    """Retrain PPO on CartPole with these settings (:func:`rlviz.experiments.ch13.live_run`)
    and plot the run (the live widget).

    ``progress(fraction)``, if given, is called after each update (the widget's progress bar).
    """
    return run_figure(live_run(gamma, lam, epsilon, seed, total_steps, progress))
