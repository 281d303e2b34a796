"""Figures of chapter 3: the spread of the gradient estimators and their Monte-Carlo error (the
estimates against the exact gradient are :mod:`rlviz.figures.gradient_estimates`)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz.experiments.corridor_settings import book_setting
from rlviz.figures.common import rounded, slider_steps
from rlviz.figures.gradient_estimates import live_parameters, return_estimators
from rlviz.tabular.pg_estimators import covariance
from rlviz.tabular.trajectories import enumerate_trajectories

GAMMAS = (0.5, 0.8, 0.9, 0.95, 1.0)


def spread_figure(gammas=GAMMAS, estimators=None) -> go.Figure:
    """Exact standard deviation of each gradient component per estimator, one slider step per gamma."""
    estimators = estimators or return_estimators()
    fig = go.Figure()
    per = len(estimators)
    for i, gamma in enumerate(gammas):
        mdp, theta, pi, H = book_setting(gamma)
        idx, labels = live_parameters(mdp)
        tr = enumerate_trajectories(mdp, pi, H)
        for name, fn in estimators.items():
            cov = covariance(tr, fn(tr, mdp, theta, pi, H))
            fig.add_trace(
                go.Bar(
                    x=labels,
                    y=rounded(np.sqrt(np.diag(cov))[idx]),
                    name=f"{name}: tr Cov = {np.trace(cov):.4f}",
                    visible=i == 0,
                )
            )
    fig.update_layout(
        title="Per-episode spread (exact standard deviation) of each gradient component",
        xaxis_title="parameter theta[state, action]",
        yaxis_title="standard deviation of one estimate",
        barmode="group",
        sliders=[slider_steps([str(g) for g in gammas], per, prefix="gamma = ")],
        height=440,
    )
    return fig


def convergence_figure(curve: dict, slopes: dict) -> go.Figure:
    """RMS error of the gradient estimate against N (log-log), per estimator, with a slope -1/2 guide."""
    ns = np.asarray(curve["ns"], dtype=float)
    fig = go.Figure()
    for name, err in curve.items():
        if name == "ns":
            continue
        fig.add_trace(
            go.Scatter(
                x=ns.tolist(),
                y=rounded(err, 6),
                mode="lines+markers",
                name=f"{name} (fitted slope {slopes[name]:.2f})",
            )
        )
    first = curve["total return"][0]
    fig.add_trace(
        go.Scatter(
            x=ns.tolist(),
            y=rounded(first * (ns / ns[0]) ** -0.5, 6),
            mode="lines",
            line={"dash": "dash", "color": "gray"},
            name="slope -1/2 guide",
        )
    )
    fig.update_layout(
        title="Error of the Monte-Carlo gradient shrinks like N^-1/2; reward-to-go sits lower",
        xaxis_type="log",
        yaxis_type="log",
        xaxis_title="episodes N",
        yaxis_title="RMS of ||estimate - grad J_H|| (log scale)",
        height=420,
    )
    return fig
