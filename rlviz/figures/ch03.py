"""Figures of chapter 3 (reused by chapter 5): gradient estimates against the exact gradient."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz.experiments.ch03 import book_setting
from rlviz.figures.common import rounded, slider_steps
from rlviz.fn.stats import sample_mean_se
from rlviz.tabular.pg_estimators import covariance
from rlviz.tabular.policy_gradient import exact_gradient
from rlviz.tabular.trajectories import enumerate_trajectories, sample_trajectories

NS = (10, 100, 1000, 10000)
GAMMAS = (0.5, 0.8, 0.9, 0.95, 1.0)


def live_parameters(mdp) -> tuple[np.ndarray, list[str]]:
    """Indices (into the flat logits) of the non-terminal states' parameters, and their labels."""
    idx, labels = [], []
    for s in np.flatnonzero(~mdp.terminal):
        for a in range(mdp.n_actions):
            idx.append(s * mdp.n_actions + a)
            labels.append(f"{mdp.state_names[s]}, {mdp.action_names[a]}")
    return np.array(idx), labels


def _estimator_fns():
    from rlviz.tabular.pg_estimators import reward_to_go_estimates, total_return_estimates

    return {
        "total return": lambda tr, mdp, theta, pi, H: total_return_estimates(tr, pi, mdp.gamma),
        "reward-to-go": lambda tr, mdp, theta, pi, H: reward_to_go_estimates(tr, pi, mdp.gamma),
    }


def estimates_figure(gamma: float = 0.9, ns=NS, estimators=None, seed: int = 0) -> go.Figure:
    """Monte-Carlo means +/- 2 s.e. of each estimator and the exact grad J_H, one slider step per N.

    ``estimators`` maps a name to ``fn(tr, mdp, theta, pi, H) -> (M, SA)`` (default: total
    return and reward-to-go). All steps are computed at build time.
    """
    estimators = estimators or _estimator_fns()
    mdp, theta, pi, H = book_setting(gamma)
    g = exact_gradient(mdp, theta, H)
    idx, labels = live_parameters(mdp)
    tr_all = sample_trajectories(mdp, pi, int(max(ns)), H, seed=seed)
    ests = {name: fn(tr_all, mdp, theta, pi, H) for name, fn in estimators.items()}
    fig = go.Figure()
    per = 1 + len(estimators)
    offsets = np.linspace(-0.2, 0.2, len(estimators))
    x = np.arange(len(idx))
    for i, n in enumerate(ns):
        fig.add_trace(
            go.Scatter(
                x=x.tolist(),
                y=rounded(g[idx]),
                mode="markers",
                marker={"symbol": "x", "size": 12, "color": "black"},
                name="exact grad J_H (autograd)",
                visible=i == 0,
            )
        )
        for off, (name, est) in zip(offsets, ests.items()):
            mean, se = sample_mean_se(est[:n])
            fig.add_trace(
                go.Scatter(
                    x=(x + off).tolist(),
                    y=rounded(mean[idx]),
                    mode="markers",
                    error_y={"type": "data", "array": rounded(2 * se[idx])},
                    name=f"{name}: mean of N={n} +/- 2 s.e.",
                    visible=i == 0,
                )
            )
    fig.update_layout(
        title=f"Monte-Carlo gradient estimates close in on the exact gradient as N grows (gamma={gamma}, H={H})",
        xaxis={
            "tickvals": x.tolist(),
            "ticktext": labels,
            "title": "parameter theta[state, action]",
        },
        yaxis_title="d J_H / d theta",
        sliders=[slider_steps([str(n) for n in ns], per, prefix="episodes N = ")],
        height=460,
    )
    return fig


def spread_figure(gammas=GAMMAS, estimators=None) -> go.Figure:
    """Exact standard deviation of each gradient component per estimator, one slider step per gamma."""
    estimators = estimators or _estimator_fns()
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
