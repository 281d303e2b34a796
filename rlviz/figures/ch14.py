"""Figures of chapter 14: group baselines, KL estimators, normalisations and trained GRPO.

Each function takes data (or computes it with :mod:`rlviz.experiments.ch14`) and returns a
plotly figure. G is the group size; the labels write it K, as the chapter does.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz._progress import progress_callback
from rlviz.experiments.ch14 import (
    BETAS,
    EPSILONS,
    GROUP_SIZES,
    live_run,
    prompt_gain,
    variance_along,
)
from rlviz.figures.common import rounded, slider_steps
from rlviz.figures.training_curves import curves_figure

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
    log = live_run(epsilon, beta, group_size, steps, seed, callback=progress_callback(progress))
    # slider arithmetic gives 0.39999999999999997: label with the value the slider shows
    label = f"epsilon={round(epsilon, 6):g}, beta={round(beta, 6):g}, K={group_size}"
    return curves_figure(
        {label: log}, f"GRPO run: held-out success {log.held_out[-1]:.3f} after {steps} updates"
    )


__all__ = [
    "prompt_gain_figure",
    "kl_variance_figure",
    "normalisation_figure",
    "grid_figure",
    "group_size_figure",
    "live_run_figure",
]
