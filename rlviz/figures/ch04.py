"""Figures of chapter 4: d_gamma against the undiscounted visitation; grad J against the notes' direction."""

from __future__ import annotations

import plotly.graph_objects as go

from rlviz.experiments.corridor_settings import THETA
from rlviz.figures.common import rounded, slider_steps
from rlviz.figures.gradient_estimates import live_parameters
from rlviz.tabular.episodic import corridor
from rlviz.tabular.mdp import discounted_state_distribution, state_visitation
from rlviz.tabular.policy_gradient import softmax_policy

GAMMAS = (0.5, 0.8, 0.9, 0.95, 0.99)


def distribution_figure(gammas=GAMMAS) -> go.Figure:
    """d_gamma(s) next to the normalised undiscounted visitation eta_1(s) / sum eta_1, per gamma."""
    fig = go.Figure()
    pi = softmax_policy(THETA)
    for i, g in enumerate(gammas):
        m = corridor(g)
        d = discounted_state_distribution(m, pi)
        eta1 = state_visitation(m.with_gamma(1.0), pi)
        fig.add_trace(
            go.Bar(
                x=list(m.state_names),
                y=rounded(d),
                visible=i == 0,
                name="d_gamma(s) (sums to 1; 'end' = after termination)",
            )
        )
        fig.add_trace(
            go.Bar(
                x=list(m.state_names),
                y=rounded(eta1 / eta1.sum()),
                visible=i == 0,
                name="eta_1(s) / sum eta_1 (what dropping gamma^t weighs by)",
            )
        )
    fig.update_layout(
        title="The discounted state distribution puts more weight on early states than visits do",
        xaxis_title="state of the corridor",
        yaxis_title="probability",
        barmode="group",
        sliders=[slider_steps([str(g) for g in gammas], 2, prefix="gamma = ")],
        height=420,
    )
    return fig


def notes_figure(rows) -> go.Figure:
    """grad J and the notes' direction (gamma^t dropped), component by component, per gamma.

    ``rows`` is :func:`rlviz.experiments.ch04.notes_comparison`'s output.
    """
    m = corridor(rows[0]["gamma"])
    idx, labels = live_parameters(m)
    fig = go.Figure()
    for i, r in enumerate(rows):
        fig.add_trace(
            go.Bar(x=labels, y=rounded(r["grad"][idx]), visible=i == 0, name="grad J (autograd)")
        )
        fig.add_trace(
            go.Bar(
                x=labels,
                y=rounded(r["notes"][idx]),
                visible=i == 0,
                name=(
                    f"E[sum_t G_t grad log pi] (no gamma^t): angle "
                    f"{r['angle']:.1f} deg, norm ratio {r['norm_ratio']:.2f}, "
                    f"asymmetry {r['asymmetry']:.3f}"
                ),
            )
        )
    fig.update_layout(
        title="Dropping gamma^t changes the direction, not just the length, of the 'gradient'",
        xaxis_title="parameter theta[state, action]",
        yaxis_title="component",
        barmode="group",
        legend={"orientation": "h", "y": -0.35},
        sliders=[slider_steps([str(r["gamma"]) for r in rows], 2, prefix="gamma = ")],
        height=480,
        margin={"t": 120, "b": 160},
    )
    return fig


def angle_figure(rows) -> go.Figure:
    """Angle to grad J and Jacobian asymmetry of the notes' direction against gamma."""
    g = [r["gamma"] for r in rows]
    fig = go.Figure(
        [
            go.Scatter(
                x=g,
                y=[round(r["angle"], 3) for r in rows],
                mode="lines+markers",
                name="angle to grad J (degrees, left axis)",
            ),
            go.Scatter(
                x=g,
                y=[round(r["asymmetry"], 4) for r in rows],
                mode="lines+markers",
                yaxis="y2",
                name="||Jac - Jac^T|| / ||Jac|| (right axis)",
            ),
        ]
    )
    fig.update_layout(
        title="The gamma^t-dropped direction is furthest from a gradient when gamma is small",
        xaxis_title="discount gamma",
        yaxis_title="angle (degrees)",
        yaxis2={"title": "Jacobian asymmetry", "overlaying": "y", "side": "right"},
        height=420,
    )
    return fig
