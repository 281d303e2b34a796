"""Figures of chapter 9: the bias of targets that treat a time limit as termination, and its effect."""

from __future__ import annotations

import plotly.graph_objects as go

from rlviz.figures.common import rounded, slider_steps
from rlviz.tabular.mdp import state_values
from rlviz.tabular.truncation import fitted_values, target_bias

LAMBDAS = (0.0, 0.5, 0.9, 0.95, 1.0)


def target_bias_figure(mdp, pi, horizon: int = 20, lambdas=LAMBDAS) -> go.Figure:
    """Exact bias of the wrong lambda-return targets against t, one line per state; slider over lambda."""
    fig = go.Figure()
    S = mdp.n_states
    for i, lam in enumerate(lambdas):
        b = target_bias(mdp, pi, lam, horizon)
        for s in range(S):
            fig.add_trace(
                go.Scatter(
                    x=list(range(horizon)),
                    y=rounded(b[:, s], 5),
                    mode="lines+markers",
                    name=f"s_t = {mdp.state_names[s]}",
                    visible=i == 0,
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[0, horizon - 1],
                y=[0, 0],
                mode="lines",
                visible=i == 0,
                line={"dash": "dash", "color": "gray"},
                name="bootstrapped targets (bias 0)",
            )
        )
    per = S + 1
    fig.update_layout(
        title=f"Time limit {horizon} treated as termination<br><sup>targets near the cut are biased down</sup>",
        xaxis_title="step t in the episode",
        yaxis_title="E[G^lambda_t - V(s_t) | s_t]",
        sliders=[slider_steps([str(l) for l in lambdas], per, prefix="lambda = ")],
        height=430,
    )
    return fig


def fitted_values_figure(
    mdp, pi, lam: float = 0.95, horizons=(5, 10, 20, 50), iterations: int = 60
) -> go.Figure:
    """V fitted by iterating on expected targets, right vs wrong, against iterations; slider over H."""
    v = state_values(mdp, pi)
    fig = go.Figure()
    S = mdp.n_states
    colors = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
    for i, H in enumerate(horizons):
        for wrong, dash in ((False, "solid"), (True, "dot")):
            it = fitted_values(mdp, pi, lam, H, iterations, truncation_as_termination=wrong)
            for s in range(S):
                fig.add_trace(
                    go.Scatter(
                        x=list(range(iterations + 1)),
                        y=rounded(it[:, s], 4),
                        mode="lines",
                        line={"dash": dash, "color": colors[s % 4]},
                        visible=i == 0,
                        name=f"V({mdp.state_names[s]}), {'as termination' if wrong else 'bootstrapped'}",
                    )
                )
        for s in range(S):
            fig.add_trace(
                go.Scatter(
                    x=[0, iterations],
                    y=[v[s]] * 2,
                    mode="lines",
                    visible=i == 0,
                    line={"color": "gray", "width": 1},
                    name=f"true V({mdp.state_names[s]})",
                    showlegend=s == 0,
                )
            )
    per = 3 * S
    fig.update_layout(
        title=f"Fitting V on lambda-return targets (lambda={lam})<br><sup>bootstrapped targets "
        f"converge to V; 'as termination' targets do not</sup>",
        xaxis_title="fitting iteration",
        yaxis_title="fitted value",
        sliders=[slider_steps([str(h) for h in horizons], per, prefix="time limit H = ")],
        height=450,
    )
    return fig
