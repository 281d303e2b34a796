"""Figures of chapter 2: value and advantage heatmaps on the gridworld, Monte-Carlo convergence."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlviz.figures.common import rounded, slider_steps
from rlviz.fn.stats import loglog_slope
from rlviz.tabular.mdp import advantages, state_values

GAMMAS = (0.5, 0.8, 0.9, 0.95, 0.99, 1.0)


def to_grid(mdp, values) -> np.ndarray:
    """Per-state values laid out on the gridworld (NaN on walls); the terminal state is dropped."""
    lay = mdp.layout
    if lay is None:
        raise ValueError(f"{mdp.name} has no grid layout; use rlviz.tabular.examples.gridworld")
    z = np.full((lay["rows"], lay["cols"]), np.nan)
    for k, (i, j) in enumerate(lay["cells"]):
        z[i, j] = values[k]
    return z


def value_heatmaps(mdp, pi, gammas=GAMMAS) -> go.Figure:
    """V^pi on the grid for each gamma (slider); text shows the values."""
    fig = go.Figure()
    for i, g in enumerate(gammas):
        z = to_grid(mdp, state_values(mdp.with_gamma(g), pi))
        text = np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.2f}")(z)
        text[mdp.layout["goal"]], text[mdp.layout["pit"]] = "goal (exit)", "pit (exit)"
        fig.add_trace(
            go.Heatmap(
                z=rounded(z, 3),
                text=text.tolist(),
                texttemplate="%{text}",
                colorscale="RdBu",
                zmid=0,
                zmin=-1,
                zmax=1,
                visible=i == 0,
                colorbar={"title": "V(s)"},
                name=f"gamma={g}",
            )
        )
    lay = mdp.layout
    fig.update_layout(
        title=(
            f"V(s) of the epsilon-greedy policy: larger gamma, more weight on the goal"
            f"<br><sup>entering the goal pays +1, the pit -1; start {lay['start']}; "
            f"blank cells are walls</sup>"
        ),
        xaxis_title="column",
        yaxis_title="row",
        yaxis_autorange="reversed",
        sliders=[slider_steps([f"{g}" for g in gammas], 1, prefix="gamma = ")],
        height=430,
    )
    return fig


def advantage_heatmaps(mdp, pi, gammas=GAMMAS) -> go.Figure:
    """A^pi(s, a) on the grid, one panel per action, for each gamma (slider)."""
    names = mdp.action_names
    fig = make_subplots(
        rows=1,
        cols=len(names),
        subplot_titles=[f"A(s, {a})" for a in names],
        horizontal_spacing=0.04,
    )
    for i, g in enumerate(gammas):
        adv = advantages(mdp.with_gamma(g), pi)
        for a in range(len(names)):
            z = to_grid(mdp, adv[:, a])
            fig.add_trace(
                go.Heatmap(
                    z=rounded(z, 3),
                    colorscale="RdBu",
                    zmid=0,
                    zmin=-0.5,
                    zmax=0.5,
                    showscale=a == 0,
                    visible=i == 0,
                    colorbar={"title": "A(s,a)"},
                    name=f"{names[a]}, gamma={g}",
                ),
                row=1,
                col=a + 1,
            )
    per = len(names)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(
        title="A(s, a) per action: blue = better than the policy's average, red = worse",
        sliders=[slider_steps([f"{g}" for g in gammas], per, prefix="gamma = ")],
        height=380,
    )
    return fig


def convergence_figure(ns, errors, label: str, slope: float | None = None) -> go.Figure:
    """Monte-Carlo error against the number of episodes on log-log axes, with an N^-1/2 guide."""
    ns = np.asarray(ns, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if slope is None:
        slope, _ = loglog_slope(ns, errors)
    guide = errors[0] * (ns / ns[0]) ** -0.5
    fig = go.Figure(
        [
            go.Scatter(x=ns.tolist(), y=rounded(errors, 6), mode="lines+markers", name=label),
            go.Scatter(
                x=ns.tolist(),
                y=rounded(guide, 6),
                mode="lines",
                line={"dash": "dash"},
                name="slope -1/2 guide",
            ),
        ]
    )
    fig.update_layout(
        title=f"{label} shrinks like N^-1/2 (fitted slope {slope:.2f})",
        xaxis_type="log",
        yaxis_type="log",
        xaxis_title="episodes per state N",
        yaxis_title="error (log scale)",
        height=420,
    )
    return fig
