"""Figures of chapter 6: the distribution of G_t - V_t(s_t) around the advantage."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz.experiments.ch06 import advantage_setting
from rlviz.figures.common import rounded, slider_steps
from rlviz.tabular.trajectories import rewards_to_go

GAMMAS = (0.5, 0.8, 0.9, 0.95, 1.0)


def advantage_distribution(gamma: float) -> list[dict]:
    """Exact distribution of G_0 - V_0(s_0) given a_0, per first action (corridor, start cell)."""
    s = advantage_setting(gamma)
    tr, mdp = s["tr"], s["mdp"]
    est = rewards_to_go(tr.rewards, mdp.gamma)[:, 0] - s["V"][0, tr.states[:, 0]]
    s0 = int(np.flatnonzero(mdp.rho0)[0])
    out = []
    for a in range(mdp.n_actions):
        mask = tr.actions[:, 0] == a
        vals, inv = np.unique(np.round(est[mask], 10), return_inverse=True)
        probs = np.bincount(inv, tr.prob[mask]) / tr.prob[mask].sum()
        out.append(
            {
                "action": mdp.action_names[a],
                "values": vals,
                "probs": probs,
                "A": s["A"][0, s0, a],
                "var": s["var"][0, s0, a],
            }
        )
    return out


def advantage_distribution_figure(gammas=GAMMAS) -> go.Figure:
    """Bars: the exact distribution of G_0 - V(s_0) given a_0; dashed lines: A(s_0, a_0)."""
    fig = go.Figure()
    colors = ("#1f77b4", "#d62728")
    per = 4
    for i, g in enumerate(gammas):
        for c, d in zip(colors, advantage_distribution(g)):
            fig.add_trace(
                go.Bar(
                    x=rounded(d["values"]),
                    y=rounded(d["probs"]),
                    width=0.02,
                    marker_color=c,
                    opacity=0.7,
                    visible=i == 0,
                    name=f"G_0 - V(s_0) given a_0 = {d['action']} (std {np.sqrt(d['var']):.3f})",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=[round(d["A"], 5)] * 2,
                    y=[0, 1],
                    mode="lines",
                    line={"dash": "dash", "color": c, "width": 3},
                    visible=i == 0,
                    name=f"A(s_0, {d['action']}) = {d['A']:+.4f}",
                )
            )
    fig.update_layout(
        title="G_0 - V(s_0) scatters widely; only its mean is the advantage A(s_0, a_0) (corridor, H=6)",
        xaxis_title="value of G_0 - V(s_0)",
        yaxis_title="probability given a_0",
        yaxis_range=[0, 1],
        barmode="overlay",
        sliders=[slider_steps([str(g) for g in gammas], per, prefix="gamma = ")],
        height=450,
    )
    return fig
