"""Figures of chapter 17: bias and variance of the off-policy corrections against the cap.

Each function computes its data with :mod:`rlviz.experiments.ch17` (exact, on chapter 14's
tree) and returns a plotly figure.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlviz._progress import progress_callback
from rlviz.experiments.ch17 import (
    CAPPED,
    CAPS,
    DELTAS,
    cap_sweep,
    live_trained_run,
    mean_squared_error,
)
from rlviz.figures.common import rounded, slider_steps
from rlviz.figures.training_curves import curves_figure

LABELS = {
    "tis token": "TIS, token",
    "tis sequence": "TIS, sequence",
    "mis token": "MIS, token",
    "mis sequence": "MIS, sequence",
    "none token": "naive (no correction)",
    "is token": "IS, token, no cap",
    "is sequence": "IS, sequence, no cap",
}
COLOURS = {
    "tis token": "#1f77b4",
    "tis sequence": "#d62728",
    "mis token": "#2ca02c",
    "mis sequence": "#9467bd",
    "none token": "#7f7f7f",
    "is token": "#17becf",
    "is sequence": "#ff7f0e",
}
REFERENCES = ("none token", "is token", "is sequence")


def _traces(sweep: dict, visible: bool, legend: bool):
    caps = sweep["caps"]
    out = []
    for col, what in ((1, "bias"), (2, "var")):
        for key in [f"{c} {lv}" for c, lv in CAPPED]:
            out.append(
                (
                    col,
                    go.Scatter(
                        x=caps,
                        y=rounded(sweep[what][key], 5),
                        mode="lines+markers",
                        name=LABELS[key],
                        legendgroup=key,
                        showlegend=legend and col == 1,
                        line={"color": COLOURS[key]},
                        visible=visible,
                    ),
                )
            )
        for key in REFERENCES:
            out.append(
                (
                    col,
                    go.Scatter(
                        x=[caps[0], caps[-1]],
                        y=rounded([sweep[what][key]] * 2, 5),
                        mode="lines",
                        name=LABELS[key],
                        legendgroup=key,
                        showlegend=legend and col == 1,
                        line={"color": COLOURS[key], "dash": "dash"},
                        visible=visible,
                    ),
                )
            )
    return out


def cap_figure(deltas=DELTAS[1:], caps=CAPS, sweeps=None) -> go.Figure:
    """Relative bias and variance of TIS and MIS (token and sequence level) against the cap C,
    with the naive loss and uncapped IS as dashed lines; one slider step per sampler
    perturbation ``delta``. ``sweeps``: precomputed :func:`rlviz.experiments.ch17.cap_sweep`
    results, one per delta."""
    deltas = list(deltas)
    if sweeps is None:
        sweeps = [cap_sweep(d, caps) for d in deltas]
    if len(sweeps) != len(deltas):
        raise ValueError(f"sweeps must hold one sweep per delta ({len(deltas)}), got {len(sweeps)}")
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(
            "relative bias |E[g] - grad J| / |grad J|",
            "relative variance tr Var / |grad J|^2",
        ),
    )
    per_step = 0
    for k, sweep in enumerate(sweeps):
        traces = _traces(sweep, visible=k == 0, legend=True)
        per_step = len(traces)
        for col, tr in traces:
            fig.add_trace(tr, row=1, col=col)
    labels = [
        f"{d:g} (max pi/mu: seq {s['max_w']['sequence']:.1f}, token {s['max_w']['token']:.1f})"
        for d, s in zip(deltas, sweeps, strict=True)
    ]
    fig.update_xaxes(type="log", title_text="cap C")
    fig.update_yaxes(title_text="relative bias", row=1, col=1)
    fig.update_yaxes(title_text="relative variance", row=1, col=2)
    fig.update_layout(
        title="A cap trades bias for variance; only sequence-level IS is unbiased",
        sliders=[slider_steps(labels, per_step, prefix="sampler perturbation delta = ")],
        height=520,
    )
    return fig


def live_cap_figure(delta: float = 0.5, batch: int = 16) -> go.Figure:
    """The live cell's figure: mean squared error :math:`\\text{bias}^2 + \\text{variance}/N`
    (relative to :math:`\\|\\nabla J\\|^2`) of each correction against the cap, for a batch of
    ``batch`` answers per prompt and the sampler perturbation ``delta``."""
    sweep = cap_sweep(delta)
    fig = go.Figure()
    for key in [f"{c} {lv}" for c, lv in CAPPED]:
        mse = mean_squared_error(sweep, key, batch)
        fig.add_trace(
            go.Scatter(
                x=sweep["caps"], y=rounded(mse, 5), name=LABELS[key], line={"color": COLOURS[key]}
            )
        )
    for key in REFERENCES:
        mse = mean_squared_error(sweep, key, batch)
        fig.add_trace(
            go.Scatter(
                x=[sweep["caps"][0], sweep["caps"][-1]],
                y=rounded([mse, mse], 5),
                name=LABELS[key],
                mode="lines",
                line={"color": COLOURS[key], "dash": "dash"},
            )
        )
    fig.update_layout(
        title=f"Mean squared error of the gradient, N = {batch} answers per prompt, delta = {delta:g}",
        xaxis={"type": "log", "title": "cap C"},
        yaxis={"title": "bias^2 + variance / N (relative to |grad J|^2)"},
        height=460,
    )
    return fig


def live_trained_figure(
    delta: float = 3.0,
    correction: str = "tis",
    level: str = "sequence",
    cap: float = 2.0,
    split: int = 0,
    seed: int = 0,
    progress=None,
) -> go.Figure:
    """Train GRPO live with a sampler perturbed by ``delta``, once with the off-policy
    ``correction`` at ``level`` and ``cap`` and once naive
    (:func:`rlviz.experiments.ch17.live_trained_run`), and plot both runs' held-out success
    (the chapter's live widget); ``progress(fraction)`` after each update."""
    runs = live_trained_run(
        delta, correction, level, cap, split=split, seed=seed, callback=progress_callback(progress)
    )
    name = f"{correction.upper()}, {level}" + (
        f", C = {round(cap, 6):g}" if correction in ("tis", "mis") else ""
    )
    return curves_figure(
        {name: runs.corrected, "naive (no weight)": runs.naive},
        f"Sampler delta = {round(delta, 6):g}: held-out success {runs.corrected.held_out[-1]:.3f} "
        f"with the weight, {runs.naive.held_out[-1]:.3f} without",
    )
