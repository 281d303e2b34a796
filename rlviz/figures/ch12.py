"""Figures of chapter 12: the clipped objective (PPO paper Figure 1), the surrogates along a real
CartPole update (Figure 2), and how far the ratios of updated policies leave the clip range."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from rlviz.figures.common import rounded, slider_steps
from rlviz.fn.ppo_loss import clipped_surrogate

EPSILONS = (0.1, 0.2, 0.3, 0.4)


RATIOS = np.linspace(0, 2, 201)


def clip_objective_figure(epsilons=EPSILONS, ratios=RATIOS) -> go.Figure:
    """One sample's l_CLIP (:func:`rlviz.fn.ppo_loss.clipped_surrogate`) and r*A against r, for
    A = +1 and A = -1; slider over epsilon."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("A > 0 (A = 1)", "A < 0 (A = -1)"))
    x = rounded(ratios, 3)
    for i, eps in enumerate(epsilons):
        for col, a in ((1, 1.0), (2, -1.0)):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=rounded(ratios * a, 3),
                    mode="lines",
                    visible=i == 0,
                    line={"dash": "dot", "color": "gray"},
                    name="r A (L_PG)",
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
            r = torch.as_tensor(ratios, dtype=torch.float64)
            y = clipped_surrogate(r, torch.full_like(r, a), eps).numpy()
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=rounded(y, 3),
                    mode="lines",
                    visible=i == 0,
                    line={"color": "#d62728", "width": 3},
                    name="l_CLIP",
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
            edge = 1 + eps if a > 0 else 1 - eps
            fig.add_trace(
                go.Scatter(
                    x=[edge],
                    y=[edge * a],
                    mode="markers",
                    visible=i == 0,
                    marker={"size": 9, "color": "#d62728"},
                    name="clip point 1 +/- eps",
                    showlegend=col == 1,
                ),
                row=1,
                col=col,
            )
    per = 6
    fig.update_layout(
        title="The clip is one-sided: flat only where the ratio moved in the improving direction",
        sliders=[slider_steps([str(e) for e in epsilons], per, prefix="epsilon = ")],
        height=430,
    )
    fig.update_xaxes(title_text="probability ratio r")
    fig.update_yaxes(title_text="objective per sample", row=1, col=1)
    return fig


def interpolation_figure(curves: dict) -> go.Figure:
    """L_PG, L_CLIP and the mean KL along theta_old + alpha (theta_new - theta_old)."""
    a = rounded(curves["alpha"], 3)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Scatter(x=a, y=rounded(curves["L_pg"], 5), name="L_PG = E[r A]", line={"dash": "dot"})
    )
    fig.add_trace(go.Scatter(x=a, y=rounded(curves["L_clip"], 5), name="L_CLIP", line={"width": 3}))
    fig.add_trace(
        go.Scatter(
            x=a, y=rounded(curves["kl"], 6), name="mean KL(old || new)", line={"color": "gray"}
        ),
        secondary_y=True,
    )
    fig.add_vline(x=1.0, line_dash="dash", line_color="gray")
    fig.update_layout(
        title="Surrogates along one real CartPole update<br><sup>alpha = 1 is where 10 epochs of PPO "
        "stopped; L_CLIP <= L_PG, and L_CLIP bends down as ratios leave the band</sup>",
        xaxis_title="interpolation factor alpha (0 = theta_old, 1 = after the update)",
        height=430,
    )
    fig.update_yaxes(title_text="surrogate (normalised advantages)", secondary_y=False)
    fig.update_yaxes(title_text="mean KL", secondary_y=True)
    return fig


def ratio_spread_figure(spreads: dict) -> go.Figure:
    """Fraction of samples outside [1-eps, 1+eps] after each update, one line per epoch count;
    slider switching to the largest ratio and to the KL."""
    keys = (
        ("outside", "fraction of samples with |r - 1| > eps"),
        ("max_ratio", "largest ratio r"),
        ("kl", "approx. KL(old || new)"),
    )
    fig = go.Figure()
    for i, (key, _) in enumerate(keys):
        for label, s in spreads.items():
            fig.add_trace(
                go.Scatter(
                    x=[int(v) for v in s["steps"]],
                    y=rounded(s[key], 4),
                    mode="lines",
                    name=label,
                    visible=i == 0,
                )
            )
    per = len(spreads)
    fig.update_layout(
        title="After the update, many ratios sit outside the clip range",
        xaxis_title="environment steps",
        yaxis_title="value after the update (whole batch)",
        sliders=[slider_steps([lab for _, lab in keys], per, prefix="")],
        height=430,
    )
    return fig
