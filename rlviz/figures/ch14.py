"""Figures of chapter 14: group baselines, KL estimators, normalisations and trained GRPO.

Each function takes data (or computes it with :mod:`rlviz.experiments.ch14`) and returns a
plotly figure. G is the group size; the labels write it K, as the chapter does.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlviz.agents.grpo import GRPOConfig
from rlviz.experiments.ch14 import (
    BETAS,
    EPSILONS,
    GROUP_SIZES,
    live_run,
    live_variant_run,
    prompt_gain,
    variance_along,
)
from rlviz.figures.common import legend_below, rounded, slider_steps

GAIN_GROUP_SIZES = (2, 4, 8, 12)
P_GRID = tuple(np.round(np.linspace(0.05, 0.95, 13), 3))


def prompt_gain_figure(group_sizes=GAIN_GROUP_SIZES, ps=P_GRID) -> go.Figure:
    """c_K(p): how much each advantage scales a prompt's gradient, one slider step per group size."""
    fig = go.Figure()
    kinds = (
        ("mean", "mean baseline (notes)"),
        ("loo", "leave-one-out"),
        ("std", "std-normalised (DeepSeekMath)"),
    )
    for i, G in enumerate(group_sizes):
        for kind, label in kinds:
            fig.add_trace(
                go.Scatter(
                    x=list(ps),
                    y=rounded([prompt_gain(p, G, kind) for p in ps], 4),
                    mode="lines+markers",
                    name=label,
                    visible=i == 0,
                )
            )
    n = len(kinds)
    fig.update_layout(
        title="Scale of a prompt's expected gradient vs its success rate: flat except with std",
        xaxis_title="success probability p of the prompt",
        yaxis_title="c_K(p) = E[g_hat] / grad J_x",
        sliders=[slider_steps([str(G) for G in group_sizes], n, prefix="K = ")],
        height=430,
    )
    return fig


KL_DISTANCES = tuple(np.round(np.geomspace(0.02, 3.0, 25), 4))


def kl_variance_figure(ts=KL_DISTANCES) -> go.Figure:
    """Exact KL and variances of k1 and k3 as pi moves away from pi_ref."""
    rows = variance_along(ts)
    fig = go.Figure()
    for key, label in (
        ("kl", "KL(pi || pi_ref) (= E[k1] = E[k3])"),
        ("var_k1", "Var(k1)"),
        ("var_k3", "Var(k3)"),
    ):
        fig.add_trace(
            go.Scatter(
                x=list(ts), y=rounded([r[key] for r in rows], 8), name=label, mode="lines+markers"
            )
        )
    fig.update_layout(
        title="k3 has far lower variance than k1 near pi_ref (exact, 6 outcomes)",
        xaxis_title="distance t (logits z_ref + t d)",
        yaxis_title="value",
        xaxis_type="log",
        yaxis_type="log",
        height=430,
    )
    return fig


def normalisation_figure(table: dict) -> go.Figure:
    """Angle between each variant's expected gradient and grad J, one slider step per group
    size; ``table`` from :func:`rlviz.experiments.ch14.normalisation_table`."""
    fig = go.Figure()
    group_sizes = list(table)
    for i, G in enumerate(group_sizes):
        names = list(table[G])
        fig.add_trace(
            go.Bar(
                x=names,
                y=[round(table[G][n][0], 3) for n in names],
                text=[f"{table[G][n][1]:.3f} x" for n in names],
                textposition="outside",
                name=f"K = {G}",
                visible=i == 0,
            )
        )
    fig.update_layout(
        title="Angle between E[g_hat] and grad J (label: |E g_hat| / |grad J|); 0 = unbiased direction",
        xaxis_title="estimator",
        yaxis_title="angle (degrees, exact)",
        sliders=[slider_steps([str(G) for G in group_sizes], 1, prefix="K = ")],
        height=470,
    )
    return fig


def curves_figure(logs: dict, title: str, target: float = 0.95) -> go.Figure:
    """Held-out success vs training seconds and vs answers sampled, one line per run."""
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, subplot_titles=("vs training time", "vs answers sampled")
    )
    colors = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
    ]
    for i, (name, log) in enumerate(logs.items()):
        c = colors[i % len(colors)]
        for col, x in ((1, log.seconds), (2, log.samples)):
            fig.add_trace(
                go.Scatter(
                    x=rounded(x, 3),
                    y=rounded(log.held_out, 4),
                    name=str(name),
                    legendgroup=str(name),
                    showlegend=col == 1,
                    line={"color": c},
                ),
                row=1,
                col=col,
            )
    for col in (1, 2):
        fig.add_hline(y=target, line_dash="dot", line_color="gray", row=1, col=col)
    fig.update_xaxes(title_text="training seconds (CPU, 1 thread)", row=1, col=1)
    fig.update_xaxes(title_text="answers sampled", row=1, col=2)
    fig.update_yaxes(title_text="held-out success (exact P[sampled answer right])", row=1, col=1)
    fig.update_layout(title=title, height=480)
    return fig


COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


X_AXES = {
    "samples": "answers sampled",
    "seconds": "training seconds (median over the runs)",
}


def band_figure(
    bands,
    title: str,
    target: float | None = 0.95,
    yaxis_title: str | None = None,
    x: str = "samples",
) -> go.Figure:
    """Median (line) and range (shaded) over runs, against answers sampled (``x="samples"``)
    or wall time (``x="seconds"``: at each evaluation the median over the runs of the training
    seconds spent so far, evaluations excluded).

    ``bands``: a list of ``(name, logs, key)``: ``logs`` a dict or list of
    :class:`rlviz.agents.addition_task.TrainLog` evaluated at the same updates, ``key``
    ``"held_out"`` or ``"train"`` (success on the held-out or the training prompts) or
    ``"entropy"`` (:func:`rlviz.agents.addition_task.held_out_entropy`); ``target`` draws a
    dotted line (None: none)."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {tuple(X_AXES)}, got {x!r}")
    fig = go.Figure()
    for i, (name, logs, key) in enumerate(bands):
        logs = list(logs.values()) if isinstance(logs, dict) else list(logs)
        if key not in ("held_out", "train", "entropy"):
            raise ValueError(f"key must be 'held_out', 'train' or 'entropy', got {key!r}")
        if len({tuple(log.step) for log in logs}) != 1:
            raise ValueError(f"the runs of {name!r} must be evaluated at the same updates")
        xs = (
            [int(v) for v in logs[0].samples]
            if x == "samples"
            else rounded(np.median([log.seconds for log in logs], 0), 3)
        )
        y = np.array([getattr(log, key) for log in logs])
        color = COLORS[i % len(COLORS)]
        fig.add_trace(
            go.Scatter(
                x=list(xs) + list(xs)[::-1],
                y=rounded(np.concatenate([y.max(0), y.min(0)[::-1]]), 4),
                fill="toself",
                fillcolor=_rgba(color, 0.15),
                mode="lines",
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=name,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=list(xs),
                y=rounded(np.median(y, 0), 4),
                mode="lines+markers",
                name=f"{name} ({len(logs)} runs)",
                legendgroup=name,
                line={"color": color, "width": 2.5},
            )
        )
    if target is not None:
        fig.add_hline(y=target, line_dash="dot", line_color="gray")
    fig.update_layout(
        title=f"{title}<br><sup>median over runs (line) and their range (shaded)</sup>",
        xaxis_title=X_AXES[x],
        yaxis_title=yaxis_title or "success (exact P[sampled answer right])",
        height=500,
    )
    return fig


def grid_figure(grid: dict, epsilons=EPSILONS, betas=BETAS, group_size: int = 8) -> go.Figure:
    """Held-out success vs step for each beta, one slider step per epsilon, at ``group_size``;
    ``grid`` from :func:`rlviz.experiments.ch14.run_grid`."""
    fig = go.Figure()
    for i, e in enumerate(epsilons):
        for b in betas:
            log = grid[(e, b, group_size)]
            fig.add_trace(
                go.Scatter(
                    x=log.step,
                    y=rounded(log.held_out, 4),
                    name=f"beta = {b}",
                    visible=i == 0,
                    mode="lines",
                )
            )
    n = len(betas)
    fig.update_layout(
        title="A KL penalty to a wrong reference holds GRPO back; epsilon matters little here",
        xaxis_title=f"update step (32 prompts x K = {group_size} answers)",
        yaxis_title="held-out success",
        height=430,
        sliders=[slider_steps([str(e) for e in epsilons], n, prefix="epsilon = ")],
    )
    return fig


def group_size_figure(grid: dict, group_sizes=GROUP_SIZES) -> go.Figure:
    """Held-out success vs answers sampled for each group size (epsilon 0.2, beta 0); ``grid``
    from :func:`rlviz.experiments.ch14.run_grid`."""
    logs = {f"K = {G}": grid[(0.2, 0.0, G)] for G in group_sizes}
    return curves_figure(
        logs,
        "Group size K: larger groups find the rare right answer sooner "
        "per update, at a higher cost per update",
    )


def live_run_figure(
    epsilon: float = 0.2,
    beta: float = 0.0,
    group_size: int = 8,
    steps: int = 60,
    seed: int = 0,
    progress=None,
) -> go.Figure:
    """Train GRPO live with these settings (:func:`rlviz.experiments.ch14.live_run`) and plot
    its held-out success (for the widget).

    ``progress(fraction)``, if given, is called after each update (the widget's progress bar).
    """
    callback = None if progress is None else (lambda step, total: progress(step / total))
    log = live_run(epsilon, beta, group_size, steps, seed, callback=callback)
    # slider arithmetic gives 0.39999999999999997: label with the value the slider shows
    label = f"epsilon={round(epsilon, 6):g}, beta={round(beta, 6):g}, K={group_size}"
    return curves_figure(
        {label: log}, f"GRPO run: held-out success {log.held_out[-1]:.3f} after {steps} updates"
    )


def live_variant_figure(
    variants: dict,
    variant: str,
    split: int = 0,
    seed: int = 0,
    inner_steps: int | None = None,
    steps: int = 30,
    progress=None,
) -> go.Figure:
    """Train one variant of ``variants`` (name -> (trainer, GRPOConfig changes), e.g.
    :data:`rlviz.experiments.ch15.TRAINED_VARIANTS`) live on split ``split`` with ``seed``
    (:func:`rlviz.experiments.ch14.live_variant_run`) and plot its held-out success (the live
    widgets of chapters 15-16); ``inner_steps``, if given, replaces the variant's gradient steps
    per batch (``updates_per_batch``); ``progress(fraction)`` after each update."""
    if variant not in variants:
        raise ValueError(f"variant must be one of {list(variants)}, got {variant!r}")
    trainer, change = variants[variant]
    if trainer != "grpo":
        raise ValueError(f"live_variant_figure trains GRPO variants, {variant!r} is {trainer!r}")
    if inner_steps is not None:
        change = {**change, "updates_per_batch": inner_steps}
    callback = None if progress is None else (lambda step, total: progress(step / total))
    log = live_variant_run(change, steps, split, seed, callback=callback)
    inner = change.get("updates_per_batch", GRPOConfig().updates_per_batch)
    return curves_figure(
        {f"{variant}, split {split}, seed {seed}, {inner} inner steps": log},
        f"Held-out success {log.held_out[-1]:.3f} and held-out entropy {log.entropy[-1]:.3f} "
        f"after {steps} updates",
    )


METRICS = {
    "held-out success": ("held_out", "success (exact P[sampled answer right])"),
    "training success": ("train", "success (exact P[sampled answer right])"),
    "held-out entropy": ("entropy", "entropy along the right answers (nats)"),
}


_YTITLES = {
    "held-out success": "held-out success (exact P[right])",
    "training success": "training success (exact P[right])",
    "held-out entropy": "held-out entropy (nats)",
}
_SHORT = {
    "held-out success": "held-out",
    "training success": "training",
    "held-out entropy": "entropy",
    "samples": "answers",
    "seconds": "seconds",
}


def metric_slider_figure(groups: dict, title: str) -> go.Figure:
    """:func:`band_figure` of every group (name -> logs) for each metric of :data:`METRICS`
    against each x axis of :data:`X_AXES`; the slider picks the metric (held-out success,
    training success, held-out entropy) and the axis (answers sampled, training seconds)."""
    fig = go.Figure()
    per = 2 * len(groups)
    labels, xtitles, ytitles = [], [], []
    for metric, (key, ytitle) in METRICS.items():
        for x, xtitle in X_AXES.items():
            bands = [(n, logs, key) for n, logs in groups.items()]
            part = band_figure(bands, title, None, ytitle, x=x)
            for tr in part.data:
                tr.visible = not labels
                fig.add_trace(tr)
            labels.append(f"{_SHORT[metric]} / {_SHORT[x]}")
            xtitles.append(xtitle)
            ytitles.append(_YTITLES[metric])
    slider = slider_steps(labels, per, prefix="showing (metric / x axis): ")
    for step, xtitle, ytitle in zip(slider["steps"], xtitles, ytitles, strict=True):
        step["args"].append({"xaxis.title.text": xtitle, "yaxis.title.text": ytitle})
    slider.update(x=0.05, len=0.9, pad={"t": 55})
    fig.update_layout(
        title=f"{title}<br><sup>median over runs (line) and their range (shaded); the slider "
        f"picks the metric and the x axis</sup>",
        xaxis_title=xtitles[0],
        yaxis_title=ytitles[0],
        sliders=[slider],
        height=440,
        margin={"b": 50},
    )
    # many groups with long names: the legend goes below the slider
    return legend_below(fig, len(groups), above=150)


__all__ = [
    "prompt_gain_figure",
    "kl_variance_figure",
    "normalisation_figure",
    "curves_figure",
    "band_figure",
    "metric_slider_figure",
    "grid_figure",
    "group_size_figure",
    "live_run_figure",
    "live_variant_figure",
    "METRICS",
    "X_AXES",
]
