"""Figures of chapter 13: learning curves of groups of seeds (median and range) from
:func:`rlviz.experiments.ch13.study` (the sensitivity to gamma, lambda and epsilon, with a
slider, and the ablations), and a single run (the live widget)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz.experiments.ch13 import SEEDS, SENSITIVITY
from rlviz.figures.common import rounded, slider_steps

NAMES = {"gamma": "gamma", "lam": "lambda", "clip_eps": "epsilon"}


def _curve(result, k):
    steps = [int(s) for s in result.log("steps")]
    return steps, rounded(np.nan_to_num(result.log("return")[:, k]), 1)


COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def band_figure(result, study, names, *, seeds=SEEDS, title: str) -> go.Figure:
    """One median learning curve per group of ``names`` with the range of its seeds shaded.

    ``result`` is :func:`rlviz.agents.ppo.train` on ``study.configs``
    (:func:`rlviz.experiments.ch13.study`); each group uses its runs of ``seeds``.
    """
    steps = [int(s) for s in result.log("steps")]
    R = np.nan_to_num(result.log("return"))
    fig = go.Figure()
    for i, name in enumerate(names):
        rows = study.rows(name, seeds)
        color = COLORS[i % len(COLORS)]
        lo, hi = R[:, rows].min(1), R[:, rows].max(1)
        fig.add_trace(
            go.Scatter(
                x=steps + steps[::-1],
                y=rounded(np.concatenate([hi, lo[::-1]]), 1),
                fill="toself",
                fillcolor=_rgba(color, 0.15),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=name,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=rounded(np.median(R[:, rows], 1), 1),
                mode="lines",
                name=name,
                legendgroup=name,
                line={"color": color, "width": 2.5},
            )
        )
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
                tr.name = f"{NAMES[coef]} = {_book(coef)} (book setting)"
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


def _book(name):
    from rlviz.agents.ppo import PPOConfig

    return getattr(PPOConfig(), name)


def run_figure(result, k: int = 0) -> go.Figure:
    """One setting's learning curve with its post-update KL (the live widget's figure)."""
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
    """Retrain PPO on CartPole with these settings and plot the run (the live widget).

    ``progress(fraction)``, if given, is called after each update (the widget's progress bar).
    """
    from rlviz.agents.ppo import PPOConfig, train

    cfg = PPOConfig(gamma=gamma, lam=lam, clip_eps=epsilon, seed=seed, total_steps=total_steps)
    callback = (
        None if progress is None else (lambda update, steps, agent: progress(update / cfg.updates))
    )
    return run_figure(train(cfg, callback=callback))
