"""Figures of chapter 10: J and the surrogate L along lines through theta_old; their gap; the
variance of ratio-weighted estimates against the KL."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz.experiments.ch10 import gradient_gaps, variance_study
from rlviz.experiments.old_policies import book_old
from rlviz.figures.common import legend_below, rounded, slider_steps
from rlviz.tabular.policy_gradient import exact_gradient
from rlviz.tabular.surrogate import line_profile, policy_directions

STEPS = np.round(np.linspace(-6, 6, 61), 4)
GAP_STEPS = tuple(np.round(np.geomspace(1e-3, 4.0, 13), 6))


def _line_traces(old, u, steps, visible: bool) -> list[go.Scatter]:
    prof = line_profile(old, u, steps)
    slope = float(exact_gradient(old.mdp, old.theta.reshape(old.mdp.n_states, -1)) @ u)
    kl = prof["kl_mean"]
    hover = [f"mean KL {k:.4f}" for k in kl]
    return [
        go.Scatter(
            x=rounded(steps, 4),
            y=rounded(prof["J"]),
            name="J(theta_old + t u) (exact)",
            line={"color": "#1f77b4", "width": 3},
            text=hover,
            visible=visible,
        ),
        go.Scatter(
            x=rounded(steps, 4),
            y=rounded(prof["L"]),
            name="surrogate L(theta_old + t u)",
            line={"color": "#d62728", "dash": "dash", "width": 3},
            text=hover,
            visible=visible,
        ),
        go.Scatter(
            x=rounded(steps, 4),
            y=rounded(old.J + slope * np.asarray(steps)),
            name="tangent J(theta_old) + t grad J . u",
            line={"color": "gray", "dash": "dot"},
            visible=visible,
        ),
        go.Scatter(
            x=[0.0],
            y=[round(old.J, 5)],
            mode="markers",
            name="theta_old",
            marker={"color": "black", "size": 10},
            visible=visible,
        ),
    ]


def line_figure(old=None, directions: dict | None = None, steps=STEPS) -> go.Figure:
    """J and L along theta_old + t u, one slider step per unit direction u (gradient, random)."""
    old = book_old() if old is None else old
    directions = policy_directions(old, 3) if directions is None else directions
    fig = go.Figure()
    per = 4
    for i, u in enumerate(directions.values()):
        fig.add_traces(_line_traces(old, u, steps, i == 0))
    fig.update_layout(
        title="J and the surrogate L touch at t = 0 with the same slope, and part away from it",
        xaxis_title="step t along the unit direction u (logit units)",
        yaxis_title="expected discounted return",
        height=460,
        sliders=[slider_steps(list(directions), per, prefix="direction u = ")],
    )
    return fig


def live_line_figure(seed: int, scale: float) -> go.Figure:
    """The line figure for one random direction (``seed``) over steps in [-scale, scale] (live explorer)."""
    old = book_old()
    u = policy_directions(old, 1, seed=seed)["random 1"]
    return line_figure(old, {f"random (seed {seed})": u}, np.linspace(-scale, scale, 61))


def gap_figure(gaps: dict | None = None) -> go.Figure:
    """|J - L| and ||grad J - grad L|| against the step on log-log axes, per direction."""
    gaps = gradient_gaps(steps=GAP_STEPS) if gaps is None else gaps
    fig = go.Figure()
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
    for (name, g), c in zip(gaps.items(), colors):
        fig.add_trace(
            go.Scatter(
                x=rounded(g["t"], 6),
                y=rounded(np.maximum(g["value_gap"], 1e-16), 14),
                name=f"|J - L|, {name}",
                line={"color": c},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=rounded(g["t"], 6),
                y=rounded(np.maximum(g["grad_gap"], 1e-16), 14),
                name=f"||grad J - grad L||, {name}",
                line={"color": c, "dash": "dot"},
            )
        )
    t = np.asarray(GAP_STEPS)
    fig.add_trace(
        go.Scatter(
            x=rounded(t, 6),
            y=rounded(1e-2 * t**2, 14),
            name="slope 2 (reference)",
            line={"color": "gray", "dash": "dash", "width": 1},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=rounded(t, 6),
            y=rounded(1e-2 * t, 14),
            name="slope 1 (reference)",
            line={"color": "gray", "dash": "dashdot", "width": 1},
        )
    )
    fig.update_layout(
        title="The values agree to second order, the gradients to first order",
        xaxis={"title": "step t from theta_old", "type": "log"},
        yaxis={"title": "gap", "type": "log"},
        height=520,
    )
    return legend_below(fig, len(fig.data))


def variance_figure(study: dict | None = None) -> go.Figure:
    """Var of the ratio and of the ratio-weighted advantage against the mean KL: exact and measured."""
    v = variance_study() if study is None else study
    kl = rounded(v["kl"], 6)
    fig = go.Figure(
        [
            go.Scatter(
                x=kl,
                y=rounded(v["var_x"]),
                name="Var[rho A_old / (1 - gamma)] (exact)",
                line={"color": "#d62728"},
            ),
            go.Scatter(
                x=kl,
                y=rounded(v["mc_var_x"]),
                mode="markers",
                name="measured (20,000 samples, +/- 2 s.e.)",
                marker={"color": "#d62728"},
                error_y={"type": "data", "array": rounded(2 * v["se_var_x"])},
            ),
            go.Scatter(
                x=kl,
                y=rounded(v["var_rho"]),
                name="Var[rho] = E_d[chi^2(pi || pi_old)] (exact)",
                line={"color": "#1f77b4"},
            ),
            go.Scatter(
                x=kl,
                y=rounded(v["mc_var_rho"]),
                mode="markers",
                name="measured (+/- 2 s.e.)",
                marker={"color": "#1f77b4"},
                error_y={"type": "data", "array": rounded(2 * v["se_var_rho"])},
            ),
            go.Scatter(
                x=kl,
                y=rounded(2 * v["kl"]),
                name="2 x mean KL (small-step approximation of Var[rho])",
                line={"color": "gray", "dash": "dot"},
            ),
        ]
    )
    fig.update_layout(
        title="The further the new policy from the old one, the noisier the ratio-weighted estimate",
        xaxis_title="mean KL(pi_old || pi) under d_old",
        yaxis_title="variance of one sample",
        height=480,
    )
    return legend_below(fig, len(fig.data))
