"""Figures of chapter 13: learning curves of groups of seeds (median and range: the
sensitivity to gamma, lambda, epsilon and the ablations of :func:`rlviz.experiments.ch13.study`),
curves over the gamma x lambda x epsilon grid (sliders), and a single run (the live widget)."""

from __future__ import annotations

import itertools

import numpy as np
import plotly.graph_objects as go

from rlviz.experiments.ch13 import EPSILONS, GAMMAS, LAMBDAS, SEEDS, SENSITIVITY
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


def sensitivity_figure(result, study, coef: str, *, seeds=SEEDS) -> go.Figure:
    """:func:`band_figure` of the values of one coefficient (``gamma``, ``lam``, ``clip_eps``),
    the book's own value being the book setting."""
    if coef not in SENSITIVITY:
        raise ValueError(f"coef must be one of {sorted(SENSITIVITY)}, got {coef!r}")
    names = [n if n in study.groups else "book setting" for n in SENSITIVITY[coef]]
    fig = band_figure(
        result, study, names, seeds=seeds, title=f"PPO on CartPole: {NAMES[coef]} changed alone"
    )
    book = f"{NAMES[coef]} = {_book(coef)} (book setting)"
    for tr in fig.data:
        if tr.name == "book setting":
            tr.name = book
    return fig


def grid_figure(result, vary: str = "gamma", values=None) -> go.Figure:
    """Learning curves of the grid: one line per value of ``vary``; slider over the other two.

    ``result`` is :func:`rlviz.agents.ppo.train` on :func:`rlviz.experiments.ch13.grid_configs`.
    """
    axes = {"gamma": GAMMAS, "lam": LAMBDAS, "clip_eps": EPSILONS}
    if vary not in axes:
        raise ValueError(f"vary must be one of {sorted(axes)}, got {vary!r}")
    others = [a for a in axes if a != vary]
    index = {(c.gamma, c.lam, c.clip_eps): k for k, c in enumerate(result.configs)}
    combos = list(itertools.product(axes[others[0]], axes[others[1]]))
    fig = go.Figure()
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c")
    for i, (o1, o2) in enumerate(combos):
        for j, v in enumerate(axes[vary]):
            key = {vary: v, others[0]: o1, others[1]: o2}
            k = index[(key["gamma"], key["lam"], key["clip_eps"])]
            x, y = _curve(result, k)
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=y,
                    mode="lines",
                    visible=i == 0,
                    line={"color": colors[j % 3]},
                    name=f"{NAMES[vary]} = {v}",
                )
            )
    per = len(axes[vary])
    labels = [f"{o1}, {o2}" for o1, o2 in combos]  # short: nine labels share one slider
    default = labels.index(f"{_book(others[0])}, {_book(others[1])}")
    slider = slider_steps(labels, per, prefix=f"{NAMES[others[0]]}, {NAMES[others[1]]} = ")
    slider["active"] = default
    for t, tr in enumerate(fig.data):
        tr.visible = t // per == default
    fig.update_layout(
        title=f"PPO on CartPole: learning curves by {NAMES[vary]}<br><sup>one batched run of "
        f"{len(result.configs)} settings; move the slider for the other two</sup>",
        xaxis_title="environment steps",
        yaxis_title="episode return (last finished episode, mean over envs)",
        yaxis_range=[0, 520],
        sliders=[slider],
        height=500,
        margin={"b": 90},
    )
    return fig


def _book(name):
    from rlviz.agents.ppo import PPOConfig

    return getattr(PPOConfig(), name)


def ablation_figure(result, names, seeds: int) -> go.Figure:
    """Mean (over seeds) learning curve per ablation; slider to show one seed's curves instead."""
    steps = [int(s) for s in result.log("steps")]
    R = np.nan_to_num(result.log("return"))
    fig = go.Figure()
    n = len(names)
    for view in range(seeds + 1):
        for a, name in enumerate(names):
            cols = R[:, a * seeds : (a + 1) * seeds]
            y = cols.mean(1) if view == 0 else cols[:, view - 1]
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=rounded(y, 1),
                    mode="lines",
                    name=name,
                    visible=view == 0,
                    line={"width": 3 if a == 0 else 1.5},
                )
            )
    labels = ["mean of seeds"] + [f"seed {s}" for s in range(seeds)]
    fig.update_layout(
        title="Ablations: one implementation detail changed at a time",
        xaxis_title="environment steps",
        yaxis_title="episode return (mean over envs)",
        yaxis_range=[0, 520],
        sliders=[slider_steps(labels, n)],
        height=480,
    )
    return fig


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
