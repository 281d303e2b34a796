"""Figures of chapter 8: the geometric weights of GAE on the k-step advantages of one episode."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from rlviz.figures.common import rounded, slider_steps

LAMBDAS = (0.0, 0.5, 0.8, 0.95, 1.0)


def mixture_weights(lam: float, n: int) -> np.ndarray:
    r"""Weights of :math:`\hat A^{(1)}, \dots, \hat A^{(n)}` in GAE for a step n steps before the end:
    :math:`(1-\lambda)\lambda^{k-1}` for :math:`k < n` and the tail :math:`\lambda^{n-1}` on :math:`k = n`."""
    k = np.arange(1, n + 1)
    w = (1 - lam) * lam ** (k - 1.0)
    w[-1] = lam ** (n - 1)
    return w


def weights_figure(n: int = 8, lambdas=LAMBDAS) -> go.Figure:
    """Bar chart of the mixture weights for a step n steps before its episode ends, slider over lambda."""
    fig = go.Figure()
    for i, lam in enumerate(lambdas):
        w = mixture_weights(lam, n)
        colors = ["#1f77b4"] * (n - 1) + ["#d62728"]
        fig.add_trace(
            go.Bar(
                x=list(range(1, n + 1)),
                y=rounded(w, 5),
                marker_color=colors,
                name=f"lambda={lam}",
                visible=i == 0,
                text=[f"{x:.3f}" for x in w],
                textposition="outside",
            )
        )
    fig.update_layout(
        title=(
            f"Weights of A^(k) in GAE, {n} steps before the episode ends"
            "<br><sup>red: the tail weight falls on the full return</sup>"
        ),
        xaxis_title="k (A^(k) uses k rewards; k = n is the full return)",
        yaxis_title="weight",
        yaxis_range=[0, 1.1],
        sliders=[slider_steps([str(l) for l in lambdas], 1, prefix="lambda = ")],
        height=420,
    )
    return fig
