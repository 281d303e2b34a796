"""Gradient estimates on the corridor, component by component (chapters 3-5).

:func:`live_parameters` picks and labels the logits of the corridor's live states (the only
ones with a gradient); :func:`estimates_figure` draws Monte-Carlo means of named estimators
(default :func:`return_estimators`, chapter 3; chapter 5 passes its baselines) against the exact
gradient on :func:`rlviz.experiments.corridor_settings.book_setting`.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz.experiments.corridor_settings import book_setting
from rlviz.figures.common import rounded, slider_steps
from rlviz.fn.stats import sample_mean_se
from rlviz.tabular.pg_estimators import reward_to_go_estimates, total_return_estimates
from rlviz.tabular.policy_gradient import exact_gradient
from rlviz.tabular.trajectories import sample_trajectories

__all__ = ["NS", "live_parameters", "return_estimators", "estimates_figure"]

NS = (10, 100, 1000, 10000)


def live_parameters(mdp) -> tuple[np.ndarray, list[str]]:
    """Indices (into the flat logits) of the non-terminal states' parameters, and their labels."""
    idx, labels = [], []
    for s in np.flatnonzero(~mdp.terminal):
        for a in range(mdp.n_actions):
            idx.append(s * mdp.n_actions + a)
            labels.append(f"{mdp.state_names[s]}, {mdp.action_names[a]}")
    return np.array(idx), labels


def return_estimators() -> dict:
    """The two estimators of chapter 3 as ``fn(tr, mdp, theta, pi, H) -> (M, SA)``: the total
    return and the reward-to-go (the default of the figures that take ``estimators``)."""
    return {
        "total return": lambda tr, mdp, theta, pi, H: total_return_estimates(tr, pi, mdp.gamma),
        "reward-to-go": lambda tr, mdp, theta, pi, H: reward_to_go_estimates(tr, pi, mdp.gamma),
    }


def estimates_figure(gamma: float = 0.9, ns=NS, estimators=None, seed: int = 0) -> go.Figure:
    """Monte-Carlo means +/- 2 s.e. of each estimator and the exact grad J_H, one slider step per N.

    ``estimators`` maps a name to ``fn(tr, mdp, theta, pi, H) -> (M, SA)`` (default
    :func:`return_estimators`). All steps are computed at build time.
    """
    estimators = estimators or return_estimators()
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
