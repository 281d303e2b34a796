"""Figures of chapter 11: the Fisher matrix and the KL Hessian, CG residuals, the lower bound of
Schulman et al. (2015) along directions, and tabular TRPO for several KL limits delta."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlviz.experiments.ch11 import DELTAS, bound_profiles, cg_report, trpo_runs
from rlviz.experiments.old_policies import book_old, random_olds
from rlviz.figures.common import rounded, slider_steps
from rlviz.tabular.mdp import value_iteration
from rlviz.tabular.surrogate import fisher_matrix, kl_hessian, schulman_constant


def _labels(old) -> list[str]:
    m = old.mdp
    states = m.state_names or [f"s{s}" for s in range(m.n_states)]
    actions = m.action_names or [f"a{a}" for a in range(m.n_actions)]
    return [f"{s}, {a}" for s in states for a in actions]


def fisher_figure(old=None) -> go.Figure:
    """Heatmaps of F from the score and of the KL Hessian by autograd (the same matrix)."""
    old = book_old() if old is None else old
    F, H = fisher_matrix(old), kl_hessian(old)
    lab = _labels(old)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "E[grad log pi grad log pi^T] (closed-form score)",
            "Hessian of the mean KL (autograd)",
        ),
    )
    zmax = float(np.abs(F).max())
    for col, M in ((1, F), (2, H)):
        fig.add_trace(
            go.Heatmap(
                z=rounded(M, 6),
                x=lab,
                y=lab,
                zmin=-zmax,
                zmax=zmax,
                colorscale="RdBu",
                reversescale=True,
                showscale=col == 2,
            ),
            row=1,
            col=col,
        )
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title="The Fisher matrix is the Hessian of the mean KL: block diagonal, one block per state",
        height=460,
    )
    return fig


def cg_figure(olds=None, dampings=(0.0, 0.1)) -> go.Figure:
    """||g - (F + lambda I) x_k|| against the CG iteration k, per MDP and damping lambda."""
    olds = (
        {"corridor": book_old(), **{f"random MDP {i + 1}": o for i, o in enumerate(random_olds(3))}}
        if olds is None
        else olds
    )
    fig = go.Figure()
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
    for (name, o), c in zip(olds.items(), colors):
        for lam in dampings:
            res = cg_report(o, damping=lam)["residuals"]
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(res) + 1)),
                    y=rounded(np.maximum(res, 1e-18), 20),
                    mode="lines+markers",
                    name=f"{name}, damping {lam:g}",
                    line={"color": c, "dash": "solid" if lam == 0 else "dot"},
                )
            )
    fig.update_layout(
        title="CG reaches machine precision in a few Fisher-vector products (at most the rank of F)",
        xaxis_title="CG iteration k",
        yaxis={"title": "residual ||g - F x_k||", "type": "log"},
        height=460,
    )
    return fig


def bound_figure(profiles: dict | None = None, old=None) -> go.Figure:
    """J, L and the lower bound L - C KL_max along theta_old + t u, one slider step per direction."""
    old = book_old() if old is None else old
    profiles = bound_profiles(old) if profiles is None else profiles
    C, eps = schulman_constant(old)
    fig = go.Figure()
    per = 3
    lo, hi = np.inf, -np.inf
    for i, p in enumerate(profiles.values()):
        t = rounded(p["t"], 4)
        fig.add_trace(
            go.Scatter(
                x=t,
                y=rounded(p["J"]),
                name="J (exact)",
                visible=i == 0,
                line={"color": "#1f77b4", "width": 3},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=rounded(p["L"]),
                name="surrogate L",
                visible=i == 0,
                line={"color": "#d62728", "dash": "dash"},
            )
        )
        fig.add_trace(
            go.Scatter(
                x=t,
                y=rounded(p["bound"]),
                name=f"L - C KL_max (C = {C:.1f})",
                visible=i == 0,
                line={"color": "black", "dash": "dot"},
            )
        )
        lo, hi = min(lo, p["J"].min(), p["L"].min()), max(hi, p["J"].max(), p["L"].max())
    pad = 0.5 * (hi - lo)
    fig.update_layout(
        title="J stays above the lower bound L - C KL_max, which is tight only very near theta_old",
        xaxis_title="step t along the unit direction u",
        yaxis_title="expected discounted return",
        yaxis_range=[round(lo - pad, 4), round(hi + 0.2 * pad, 4)],
        height=460,
        sliders=[slider_steps(list(profiles), per, prefix="direction u = ")],
    )
    return fig


def trpo_figure(runs: dict | None = None, deltas=DELTAS) -> go.Figure:
    """J per TRPO iteration (left) and the exact KL of each step against delta (right), slider over delta."""
    runs = trpo_runs(deltas) if runs is None else runs
    old = book_old()
    j_star = float(old.mdp.rho0 @ value_iteration(old.mdp)[0])
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("J after each TRPO step", "mean KL(pi_old || pi_new) of each step"),
    )
    per = 4
    for i, (delta, h) in enumerate(runs.items()):
        it = list(range(len(h["J"])))
        fig.add_trace(
            go.Scatter(
                x=it,
                y=rounded(h["J"]),
                mode="lines+markers",
                name="J(theta_k)",
                visible=i == 0,
                line={"color": "#1f77b4"},
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=[0, it[-1]],
                y=[round(j_star, 5)] * 2,
                name="optimal J*",
                visible=i == 0,
                line={"color": "gray", "dash": "dash"},
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                x=it[1:],
                y=rounded(h["kl"], 7),
                name="exact KL of step k",
                visible=i == 0,
                marker={"color": "#ff7f0e"},
            ),
            row=1,
            col=2,
        )
        fig.add_trace(
            go.Scatter(
                x=[0.5, it[-1] + 0.5],
                y=[delta, delta],
                name="delta",
                visible=i == 0,
                line={"color": "black", "dash": "dot"},
            ),
            row=1,
            col=2,
        )
    fig.update_xaxes(title_text="TRPO iteration k", row=1, col=1)
    fig.update_xaxes(title_text="TRPO iteration k", row=1, col=2)
    fig.update_yaxes(title_text="expected discounted return", row=1, col=1)
    fig.update_yaxes(title_text="KL", row=1, col=2)
    fig.update_layout(
        title="TRPO on the corridor: J rises at every step, and no step's KL exceeds delta",
        height=460,
        sliders=[slider_steps([f"{d:g}" for d in runs], per, prefix="KL limit delta = ")],
    )
    return fig


def cartpole_figure(result, delta: float) -> go.Figure:
    """TRPO on CartPole: mean return of the last finished episodes (left) and the KL of each update (right).

    ``result`` is what :func:`rlviz.agents.trpo.train` returns (logs ``steps``, ``return``, ``kl``).
    """
    steps = np.asarray(result.log("steps"), dtype=float).ravel()
    ret = np.asarray(result.log("return"), dtype=float)[:, 0]
    kl = np.asarray(result.log("kl"), dtype=float)[:, 0]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "mean return of the latest episodes",
            "exact mean KL of each accepted update",
        ),
    )
    fig.add_trace(
        go.Scatter(
            x=rounded(steps, 0),
            y=rounded(ret, 2),
            mode="lines",
            name="return (CartPole-v1, max 500)",
            line={"color": "#1f77b4"},
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Bar(
            x=rounded(steps, 0),
            y=rounded(kl, 6),
            name="KL of the update",
            marker={"color": "#ff7f0e"},
        ),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(
            x=[0.0, float(steps[-1])],
            y=[delta, delta],
            name="delta",
            line={"color": "black", "dash": "dot"},
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(title_text="environment steps", row=1, col=1)
    fig.update_xaxes(title_text="environment steps", row=1, col=2)
    fig.update_yaxes(title_text="return", row=1, col=1)
    fig.update_yaxes(title_text="KL", row=1, col=2)
    fig.update_layout(
        title="TRPO on CartPole: the return climbs while every update stays within delta",
        height=440,
    )
    return fig
