"""Figures of chapter 1: discounting, sampled returns and the finite-horizon objective."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz.figures.common import rounded, slider_steps
from rlviz.tabular.mdp import finite_horizon_objective, objective
from rlviz.tabular.trajectories import sample_trajectories

GAMMAS = (0.5, 0.8, 0.9, 0.95, 0.99)


def discount_weights(gamma: float, n: int = 100) -> dict:
    """The numbers behind :func:`discount_figure` for one gamma: weights and effective horizon."""
    k = np.arange(n)
    w = gamma**k
    return {
        "k": k,
        "weight": w,
        "cumulative": np.cumsum(w) * (1 - gamma),
        "horizon": 1 / (1 - gamma),
    }


def discount_figure(gammas=GAMMAS, n: int = 100) -> go.Figure:
    """gamma^k against k, one trace per gamma, a slider to move between them."""
    fig = go.Figure()
    for i, g in enumerate(gammas):
        d = discount_weights(g, n)
        fig.add_trace(
            go.Scatter(
                x=d["k"].tolist(),
                y=rounded(d["weight"]),
                mode="lines+markers",
                marker={"size": 4},
                name=f"gamma^k, gamma={g}",
                visible=i == 0,
            )
        )
        fig.add_trace(
            go.Scatter(
                x=[d["horizon"]] * 2,
                y=[0, 1],
                mode="lines",
                line={"dash": "dash", "color": "gray"},
                name=f"1/(1-gamma) = {d['horizon']:.0f}",
                visible=i == 0,
            )
        )
    per = 2
    fig.update_layout(
        title="Weight gamma^k of a reward k steps ahead; dashed: horizon 1/(1-gamma)",
        xaxis_title="steps ahead k",
        yaxis_title="weight gamma^k",
        yaxis_range=[0, 1.05],
        sliders=[slider_steps([f"{g}" for g in gammas], per, prefix="gamma = ")],
        height=430,
    )
    return fig


def sampled_returns(mdp, pi, gamma: float, n: int = 12, horizon: int = 60, seed: int = 0) -> dict:
    """Partial discounted returns sum_{k<=t} gamma^k r_k of ``n`` sampled episodes, and exact J."""
    m = mdp.with_gamma(gamma)
    tr = sample_trajectories(m, pi, n, horizon, seed=seed)
    partial = np.cumsum(tr.rewards * gamma ** np.arange(horizon), axis=1)
    return {"t": np.arange(horizon), "partial": partial, "J": objective(m, pi)}


def returns_figure(
    mdp, pi, gammas=GAMMAS, n: int = 12, horizon: int = 60, seed: int = 0
) -> go.Figure:
    """Running discounted returns of sampled episodes against t, with exact J, per gamma."""
    fig = go.Figure()
    per = n + 1
    for i, g in enumerate(gammas):
        d = sampled_returns(mdp, pi, g, n, horizon, seed)
        for m in range(n):
            fig.add_trace(
                go.Scatter(
                    x=d["t"].tolist(),
                    y=rounded(d["partial"][m], 4),
                    mode="lines",
                    line={"width": 1},
                    opacity=0.6,
                    showlegend=m == 0,
                    name="one episode's sum_{k<=t} gamma^k r_k",
                    legendgroup="ep",
                    visible=i == 0,
                )
            )
        fig.add_trace(
            go.Scatter(
                x=[0, horizon - 1],
                y=[d["J"]] * 2,
                mode="lines",
                line={"color": "black", "width": 3},
                name=f"exact J = E[G_0] = {d['J']:.3f}",
                visible=i == 0,
            )
        )
    fig.update_layout(
        title=f"Discounted returns of {n} sampled episodes (seed {seed}) scatter around J",
        xaxis_title="time step t",
        yaxis_title="discounted return so far",
        sliders=[slider_steps([f"{g}" for g in gammas], per, prefix="gamma = ")],
        height=450,
    )
    return fig


def horizon_figure(mdp, pi, max_horizon: int = 60) -> go.Figure:
    """J_H against H with the tail bound |J - J_H| <= gamma^H max|r| / (1 - gamma)."""
    H = np.arange(1, max_horizon + 1)
    J = objective(mdp, pi)
    JH = np.array([finite_horizon_objective(mdp, pi, h) for h in H])
    bound = mdp.gamma**H * np.abs(mdp.r).max() / (1 - mdp.gamma)
    fig = go.Figure(
        [
            go.Scatter(
                x=H.tolist(),
                y=rounded(J + bound),
                mode="lines",
                line={"width": 0},
                showlegend=False,
                hoverinfo="skip",
            ),
            go.Scatter(
                x=H.tolist(),
                y=rounded(J - bound),
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(100,100,200,0.2)",
                name="J +/- gamma^H max|r|/(1-gamma)",
            ),
            go.Scatter(
                x=H.tolist(),
                y=rounded(JH),
                mode="lines+markers",
                marker={"size": 4},
                name="J_H (forward recursion)",
            ),
            go.Scatter(
                x=[1, max_horizon],
                y=[J, J],
                mode="lines",
                line={"dash": "dash"},
                name="J (linear solve)",
            ),
        ]
    )
    fig.update_layout(
        title=f"J_H approaches J inside the tail bound ({mdp.name}, gamma={mdp.gamma})",
        xaxis_title="horizon H (steps)",
        yaxis_title="expected discounted return",
        height=420,
    )
    return fig
