"""Figures of chapter 7: exact bias and variance of k-step and GAE advantages against k and lambda."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlviz.figures.common import rounded, slider_steps
from rlviz.tabular.advantage_moments import (
    gae_moments,
    kstep_moments,
    pair_weights,
    summarise,
    value_error,
)
from rlviz.tabular.examples import book_grid_policy
from rlviz.tabular.mdp import state_values

GAMMAS = (0.9, 0.95, 0.99)
ERRORS = (0.0, 0.05, 0.1, 0.2, 0.4)
KS = np.arange(1, 31)
LAMBDAS = np.round(np.linspace(0, 1, 21), 2)


def error_curves(gamma: float, error: float, ks=KS, lambdas=LAMBDAS) -> dict:
    """Weighted bias^2, variance and MSE of A^(k) for each k and of GAE for each lambda (gridworld)."""
    grid, pi = book_grid_policy(gamma)
    v_hat = state_values(grid, pi) + value_error(grid, error)
    w = pair_weights(grid, pi)
    rows_k = [summarise(kstep_moments(grid, pi, v_hat, int(k)), w) for k in ks]
    rows_l = [summarise(gae_moments(grid, pi, v_hat, float(l)), w) for l in lambdas]

    def pick(rows, key):
        return np.array([r[key] for r in rows])

    return {
        "k": {key: pick(rows_k, key) for key in ("bias2", "var", "mse")},
        "lam": {key: pick(rows_l, key) for key in ("bias2", "var", "mse")},
    }


def best_lambda(gamma: float, error: float, lambdas=LAMBDAS) -> float:
    """The lambda on the grid with the smallest weighted MSE of GAE."""
    mse = error_curves(gamma, error, ks=[1], lambdas=lambdas)["lam"]["mse"]
    return float(np.asarray(lambdas)[int(np.argmin(mse))])


STYLE = {
    "bias2": ("squared bias", "#d62728"),
    "var": ("variance", "#1f77b4"),
    "mse": ("MSE = bias^2 + variance", "black"),
}


def bias_variance_figure(
    gammas=GAMMAS, errors=ERRORS, mark_lambda: float | None = None
) -> go.Figure:
    """Bias^2, variance and MSE against k (left) and lambda (right); one slider step per (gamma, error).

    ``mark_lambda`` draws a vertical line at that lambda on the right panel (the live explorer).
    """
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("k-step advantage A^(k)", "GAE(gamma, lambda)")
    )
    labels, per = [], 6
    combos = [(g, e) for g in gammas for e in errors]
    for i, (g, e) in enumerate(combos):
        d = error_curves(g, e)
        for key, (name, color) in STYLE.items():
            for col, x, src in ((1, KS, d["k"]), (2, LAMBDAS, d["lam"])):
                fig.add_trace(
                    go.Scatter(
                        x=np.asarray(x).tolist(),
                        y=rounded(src[key], 6),
                        name=name,
                        line={"color": color},
                        showlegend=col == 1,
                        visible=i == 0,
                    ),
                    row=1,
                    col=col,
                )
        labels.append(f"gamma={g}, error={e}")
    fig.update_xaxes(title_text="k (steps before bootstrapping)", row=1, col=1)
    fig.update_xaxes(title_text="lambda", row=1, col=2)
    fig.update_yaxes(title_text="averaged over (s, a) ~ visits x pi", row=1, col=1)
    fig.update_layout(
        title=(
            "Exact error of advantage estimates on the gridworld"
            "<br><sup>bias falls and variance grows with k and lambda</sup>"
        ),
        sliders=[slider_steps(labels, per, prefix="")],
        height=500,
    )
    if mark_lambda is not None:
        fig.add_vline(x=float(mark_lambda), line_dash="dash", line_color="gray", row=1, col=2)
    return fig


VALUE_ERRORS = tuple(np.round(np.linspace(0, 0.4, 9), 2))


def best_lambda_figure(gammas=GAMMAS, errors=VALUE_ERRORS) -> go.Figure:
    """The MSE-optimal lambda against the V-hat error, one line per gamma."""
    fig = go.Figure()
    for g in gammas:
        fig.add_trace(
            go.Scatter(
                x=list(map(float, errors)),
                y=[best_lambda(g, e) for e in errors],
                mode="lines+markers",
                name=f"gamma={g}",
            )
        )
    fig.update_layout(
        title="The best lambda rises as V-hat gets worse<br><sup>with the true V, lambda = 0 wins</sup>",
        xaxis_title="V-hat error scale (std of e)",
        yaxis_title="lambda minimising the MSE",
        yaxis_range=[-0.05, 1.05],
        height=400,
    )
    return fig
