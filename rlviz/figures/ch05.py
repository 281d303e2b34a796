"""Figures of chapter 5: the variance of the gradient estimate under each baseline."""

from __future__ import annotations

import plotly.graph_objects as go

from rlviz.experiments.ch05 import BASELINES, baseline_estimates, variance_table
from rlviz.figures.common import slider_steps
from rlviz.figures.gradient_estimates import estimates_figure

GAMMAS = (0.5, 0.8, 0.9, 0.95, 1.0)


def variance_figure(gammas=GAMMAS) -> go.Figure:
    """Exact tr Cov of the reward-to-go estimator under each baseline, one slider step per gamma."""
    fig = go.Figure()
    for i, g in enumerate(gammas):
        tab = variance_table(g)
        none = tab["none"]
        fig.add_trace(
            go.Bar(
                x=list(tab),
                y=[round(v, 6) for v in tab.values()],
                text=[f"{v / none:.2f} x" for v in tab.values()],
                textposition="outside",
                name=f"gamma = {g}",
                visible=i == 0,
            )
        )
    fig.update_layout(
        title="Total variance of one gradient estimate by baseline (label: ratio to no baseline)",
        xaxis_title="baseline",
        yaxis_title="tr Cov (exact, by enumeration)",
        sliders=[slider_steps([str(g) for g in gammas], 1, prefix="gamma = ")],
        height=430,
    )
    return fig


def baseline_estimates_figure(
    gamma: float = 0.9, n: int = 1000, baseline: str = "V_t(s)", seed: int = 0
) -> go.Figure:
    """Monte-Carlo estimates with one baseline next to no baseline (for the live widget)."""
    names = ["none"] + ([baseline] if baseline != "none" else [])
    fns = {
        name: (
            lambda tr, mdp, theta, pi, H, name=name: baseline_estimates(tr, mdp, theta, pi, H, name)
        )
        for name in names
    }
    return estimates_figure(gamma, ns=[n], estimators=fns, seed=seed)


__all__ = ["variance_figure", "baseline_estimates_figure", "BASELINES"]
