"""Figures of chapter 16: clip-higher and entropy, the covariance rule, ratio bias and variance.

Each function computes its data with :mod:`rlviz.experiments.ch16` and returns a plotly figure
whose slider steps (:func:`rlviz.figures.common.slider_steps`) hold precomputed data, so they
work on the static site.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlviz.experiments.answer_trees import tree_setting
from rlviz.experiments.ch16 import (
    CLIP_COV_KS,
    DELTAS,
    EPS_HIGHS,
    EPS_LOW,
    INNER_STEPS,
    LENGTHS,
    RATIO_KINDS,
    clip_batch,
    clip_cov_entropy_rates,
    clip_entropy_rates,
    entropy_directions,
    expected_ratio_gradient,
    off_policy_theta,
    ratio_variances,
    ratio_variances_mc,
)
from rlviz.figures.common import rounded, slider_steps
from rlviz.tabular.answer_tree import exact_gradient
from rlviz.tabular.entropy_dynamics import first_order_errors

__all__ = [
    "clip_entropy_figure",
    "clip_cov_figure",
    "entropy_error_figure",
    "ratio_bias_figure",
    "ratio_variance_figure",
    "live_clip_figure",
]

BATCHES = (("rare", "good tokens rare"), ("common", "good tokens common"))


def _clip_traces(fig, steps: int, eps_low: float, visible: bool) -> None:
    for good, label in BATCHES:
        c = clip_entropy_rates(clip_batch(good), steps, EPS_HIGHS, eps_low)
        x = list(c["eps_high"])
        fig.add_trace(
            go.Scatter(x=x, y=rounded(c["dH"], 6), name=f"dH/d eta, {label}", visible=visible),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=rounded(c["upper"], 4),
                name=f"stopped by the upper clip, {label}",
                line={"dash": "dot"},
                visible=visible,
            ),
            row=1,
            col=2,
        )


def _clip_layout(fig, title: str) -> None:
    fig.update_xaxes(title_text="eps_high (eps_low = 0.2)")
    fig.update_yaxes(title_text="first-order entropy change dH/d eta (nats)", row=1, col=1)
    fig.update_yaxes(title_text="fraction of the group", row=1, col=2)
    fig.update_layout(title=title, height=500)


def clip_entropy_figure(steps=INNER_STEPS) -> go.Figure:
    """dH/d eta of the clipped gradient vs eps_high, and the fraction the upper clip stops;
    one slider step per number of inner steps taken on the group before."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14)
    for i, m in enumerate(steps):
        _clip_traces(fig, m, EPS_LOW, i == 0)
    _clip_layout(fig, "Clip-higher: more entropy when it releases rare tokens, less for common")
    fig.update_layout(sliders=[slider_steps([str(m) for m in steps], 4, prefix="inner steps = ")])
    return fig


def clip_cov_figure(steps=INNER_STEPS, ks=CLIP_COV_KS) -> go.Figure:
    """Clip-Cov: dH/d eta and the cosine to the full gradient vs the number of detached tokens;
    one slider step per number of inner steps."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14)
    for i, m in enumerate(steps):
        for good, label in BATCHES:
            c = clip_cov_entropy_rates(clip_batch(good), m, ks)
            x = [int(k) for k in c["k"]]
            fig.add_trace(
                go.Scatter(x=x, y=rounded(c["dH"], 6), name=f"dH/d eta, {label}", visible=i == 0),
                row=1,
                col=1,
            )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=rounded(c["cos"], 5),
                    name=f"cosine to the full gradient, {label}",
                    line={"dash": "dot"},
                    visible=i == 0,
                ),
                row=1,
                col=2,
            )
    fig.update_xaxes(title_text="tokens detached (largest covariance score first)")
    fig.update_yaxes(title_text="first-order entropy change dH/d eta (nats)", row=1, col=1)
    fig.update_yaxes(title_text="cosine", row=1, col=2)
    fig.update_layout(
        title="Clip-Cov: detaching the highest-covariance tokens raises the entropy change",
        height=500,
        sliders=[slider_steps([str(m) for m in steps], 4, prefix="inner steps = ")],
    )
    return fig


def live_clip_figure(steps: int = 1, eps_low: float = EPS_LOW) -> go.Figure:
    """The panels of :func:`clip_entropy_figure` for any number of inner steps and eps_low
    (for the live cell)."""
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.14)
    _clip_traces(fig, int(steps), float(eps_low), True)
    _clip_layout(fig, f"{int(steps)} inner steps, eps_low = {round(float(eps_low), 6):g}")
    fig.update_xaxes(title_text=f"eps_high (eps_low = {round(float(eps_low), 6):g})")
    return fig


STEP_GRID = tuple(np.geomspace(1e-4, 1e-1, 13))


def entropy_error_figure(seeds=(0, 1), etas=STEP_GRID) -> go.Figure:
    """Error of the covariance prediction vs step size (log-log), per direction; the bug
    without mean-centring dashed. One slider step per random tree."""
    fig = go.Figure()
    per = 0
    for i, seed in enumerate(seeds):
        _, theta, dirs = entropy_directions(seed)
        per = 0
        for name, d in dirs.items():
            for centred, dash in ((True, None), (False, "dash")):
                if not centred and name == "natural PG":
                    continue  # E_pi[A] = 0: the uncentred formula is the same
                err = first_order_errors(theta, d, etas, centred=centred)
                fig.add_trace(
                    go.Scatter(
                        x=list(etas),
                        y=[float(f"{e:.4g}") for e in np.maximum(err, 1e-300)],
                        name=name + ("" if centred else ", not centred (bug)"),
                        line={"dash": dash},
                        visible=i == 0,
                    )
                )
                per += 1
    fig.update_layout(
        title="Error of the covariance rule: slope 2 (first order exact); slope 1 without centring",
        xaxis_title="step size eta",
        yaxis_title="max over prefixes |H(z + eta dz) - H(z) + eta Cov| (nats)",
        xaxis_type="log",
        yaxis_type="log",
        height=480,
        sliders=[slider_steps([str(s) for s in seeds], per, prefix="random tree ")],
    )
    return fig


OFF_POLICY_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))
BIAS_EPSILONS = (0.1, 0.2, 0.3)


def ratio_bias_figure(ts=OFF_POLICY_GRID, epsilons=BIAS_EPSILONS, seed: int = 0) -> go.Figure:
    """||E[grad] - grad J(theta)|| / ||grad J(theta)|| vs the distance from theta_old, one line
    per ratio kind; one slider step per clip width."""
    ans, theta_old, r = tree_setting(seed)
    thetas = [off_policy_theta(theta_old, t, seed) for t in ts]
    grads = [exact_gradient(th, ans, r) for th in thetas]
    fig = go.Figure()
    for i, eps in enumerate(epsilons):
        for kind in RATIO_KINDS:
            gaps = [
                np.linalg.norm(expected_ratio_gradient(kind, th, theta_old, ans, r, eps) - g)
                / np.linalg.norm(g)
                for th, g in zip(thetas, grads)
            ]
            fig.add_trace(
                go.Scatter(
                    x=list(ts), y=rounded(gaps, 5), name=kind, mode="lines+markers", visible=i == 0
                )
            )
    fig.update_layout(
        title="Expected gradient vs grad J(theta): only the unclipped sequence ratio stays unbiased",
        xaxis_title="distance t from theta_old (theta = theta_old + t d)",
        yaxis_title="relative error ||E[g] - grad J|| / ||grad J||",
        height=480,
        sliders=[slider_steps([str(e) for e in epsilons], len(RATIO_KINDS), prefix="eps = ")],
    )
    return fig


VARIANCE_RATIOS = ("sequence", "GSPO", "token (mean)")


def ratio_variance_figure(deltas=DELTAS, lengths=LENGTHS, n: int = 400) -> go.Figure:
    """Exact variance (lines) and Monte-Carlo estimates from ``n`` answers (markers, +-2 se) of
    the three ratios vs the maximum answer length; one slider step per distance delta."""
    fig = go.Figure()
    for i, delta in enumerate(deltas):
        exact = [ratio_variances(L, delta) for L in lengths]
        mc = [ratio_variances_mc(L, delta, n) for L in lengths]
        for name in VARIANCE_RATIOS:
            fig.add_trace(
                go.Scatter(
                    x=list(lengths),
                    y=rounded([e[name][1] for e in exact], 6),
                    name=f"{name} (exact)",
                    visible=i == 0,
                )
            )
        for name in VARIANCE_RATIOS:
            fig.add_trace(
                go.Scatter(
                    x=list(lengths),
                    y=rounded([m[name][0] for m in mc], 6),
                    error_y={"array": rounded([2 * m[name][1] for m in mc], 6)},
                    mode="markers",
                    name=f"{name} (Monte Carlo, {n} answers)",
                    visible=i == 0,
                )
            )
    fig.update_layout(
        title="Variance of the ratio vs answer length: the product grows, the mean does not",
        xaxis_title="maximum answer length L (tokens)",
        yaxis_title="variance under y ~ pi_old",
        yaxis_type="log",
        height=480,
        sliders=[
            slider_steps([str(d) for d in deltas], 2 * len(VARIANCE_RATIOS), prefix="delta = ")
        ],
    )
    return fig
