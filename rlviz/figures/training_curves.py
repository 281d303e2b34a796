"""Training-curve figures of the trained chapters (13-17): one run's curves, the median and
range of a group of runs (a band), a slider over metrics and x axes, and the live widget of a
trained variant. Data in (logs from :mod:`rlviz.experiments`), plotly figure out; nothing here
trains except through :mod:`rlviz.experiments` (the live variant run)."""

from __future__ import annotations

import dataclasses

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from rlviz._progress import progress_callback
from rlviz.experiments.addition_runs import Spread, live_variant_run
from rlviz.figures.common import legend_below, rounded, slider_steps

__all__ = [
    "COLORS",
    "rgba",
    "band_traces",
    "curves_figure",
    "band_figure",
    "metric_slider_figure",
    "live_variant_figure",
    "METRICS",
    "X_AXES",
]

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")


def rgba(hex_color: str, alpha: float) -> str:
    """``"#rrggbb"`` with opacity ``alpha`` as plotly's ``rgba(...)``."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def band_traces(
    x, lo, mid, hi, *, name: str, color: str, digits: int = 4, mode: str = "lines+markers"
) -> list[go.Scatter]:
    """A shaded range ``[lo, hi]`` (no legend entry) and a line ``mid`` named ``name``, grouped
    in the legend: the two traces of one band."""
    x = list(x)
    return [
        go.Scatter(
            x=x + x[::-1],
            y=rounded(np.concatenate([np.asarray(hi), np.asarray(lo)[::-1]]), digits),
            fill="toself",
            fillcolor=rgba(color, 0.15),
            mode="lines",
            line={"width": 0},
            hoverinfo="skip",
            showlegend=False,
            legendgroup=name,
        ),
        go.Scatter(
            x=x,
            y=rounded(mid, digits),
            mode=mode,
            name=name,
            legendgroup=name,
            line={"color": color, "width": 2.5},
        ),
    ]


def _groups(groups: dict) -> dict:
    """name -> logs, from id -> :class:`Spread` (named by label) or name -> logs."""
    return {
        (v.label if isinstance(v, Spread) else k): (v.logs if isinstance(v, Spread) else v)
        for k, v in groups.items()
    }


def curves_figure(logs: dict, title: str, target: float = 0.95) -> go.Figure:
    """Held-out success vs training seconds and vs answers sampled, one line per run."""
    fig = make_subplots(
        rows=1, cols=2, shared_yaxes=True, subplot_titles=("vs training time", "vs answers sampled")
    )
    for i, (name, log) in enumerate(logs.items()):
        c = COLORS[i % len(COLORS)]
        for col, x in ((1, log.seconds), (2, log.samples)):
            fig.add_trace(
                go.Scatter(
                    x=rounded(x, 3),
                    y=rounded(log.held_out, 4),
                    name=str(name),
                    legendgroup=str(name),
                    showlegend=col == 1,
                    line={"color": c},
                ),
                row=1,
                col=col,
            )
    for col in (1, 2):
        fig.add_hline(y=target, line_dash="dot", line_color="gray", row=1, col=col)
    fig.update_xaxes(title_text="training seconds (CPU, 1 thread)", row=1, col=1)
    fig.update_xaxes(title_text="answers sampled", row=1, col=2)
    fig.update_yaxes(title_text="held-out success (exact P[sampled answer right])", row=1, col=1)
    fig.update_layout(title=title, height=480)
    return fig


X_AXES = {
    "samples": "answers sampled",
    "seconds": "training seconds (median over the runs)",
}


def band_figure(
    bands,
    title: str,
    target: float | None = 0.95,
    yaxis_title: str | None = None,
    x: str = "samples",
) -> go.Figure:
    """Median (line) and range (shaded) over runs, against answers sampled (``x="samples"``)
    or wall time (``x="seconds"``: at each evaluation the median over the runs of the training
    seconds spent so far, evaluations excluded).

    ``bands``: a list of ``(name, logs, key)``: ``logs`` a dict or list of
    :class:`rlviz.agents.addition_task.TrainLog` evaluated at the same updates, ``key``
    ``"held_out"`` or ``"train"`` (success on the held-out or the training prompts) or
    ``"entropy"`` (:func:`rlviz.agents.addition_task.held_out_entropy`); ``target`` draws a
    dotted line (None: none)."""
    if x not in X_AXES:
        raise ValueError(f"x must be one of {tuple(X_AXES)}, got {x!r}")
    fig = go.Figure()
    for i, (name, logs, key) in enumerate(bands):
        logs = logs.logs if isinstance(logs, Spread) else logs
        logs = list(logs.values()) if isinstance(logs, dict) else list(logs)
        if key not in ("held_out", "train", "entropy"):
            raise ValueError(f"key must be 'held_out', 'train' or 'entropy', got {key!r}")
        if len({tuple(log.step) for log in logs}) != 1:
            raise ValueError(f"the runs of {name!r} must be evaluated at the same updates")
        xs = (
            [int(v) for v in logs[0].samples]
            if x == "samples"
            else rounded(np.median([log.seconds for log in logs], 0), 3)
        )
        y = np.array([getattr(log, key) for log in logs])
        for tr in band_traces(
            xs,
            y.min(0),
            np.median(y, 0),
            y.max(0),
            name=f"{name} ({len(logs)} runs)",
            color=COLORS[i % len(COLORS)],
        ):
            fig.add_trace(tr)
    if target is not None:
        fig.add_hline(y=target, line_dash="dot", line_color="gray")
    fig.update_layout(
        title=f"{title}<br><sup>median over runs (line) and their range (shaded)</sup>",
        xaxis_title=X_AXES[x],
        yaxis_title=yaxis_title or "success (exact P[sampled answer right])",
        height=500,
    )
    return fig


METRICS = {
    "held-out success": ("held_out", "success (exact P[sampled answer right])"),
    "training success": ("train", "success (exact P[sampled answer right])"),
    "held-out entropy": ("entropy", "entropy along the right answers (nats)"),
}


_YTITLES = {
    "held-out success": "held-out success (exact P[right])",
    "training success": "training success (exact P[right])",
    "held-out entropy": "held-out entropy (nats)",
}
_SHORT = {
    "held-out success": "held-out",
    "training success": "training",
    "held-out entropy": "entropy",
    "samples": "answers",
    "seconds": "seconds",
}


def metric_slider_figure(groups: dict, title: str) -> go.Figure:
    """:func:`band_figure` of every group (id -> :class:`Spread`, or name -> logs) for each metric of :data:`METRICS`
    against each x axis of :data:`X_AXES`; the slider picks the metric (held-out success,
    training success, held-out entropy) and the axis (answers sampled, training seconds)."""
    groups = _groups(groups)
    fig = go.Figure()
    per = 2 * len(groups)
    labels, xtitles, ytitles = [], [], []
    for metric, (key, ytitle) in METRICS.items():
        for x, xtitle in X_AXES.items():
            bands = [(n, logs, key) for n, logs in groups.items()]
            part = band_figure(bands, title, None, ytitle, x=x)
            for tr in part.data:
                tr.visible = not labels
                fig.add_trace(tr)
            labels.append(f"{_SHORT[metric]} / {_SHORT[x]}")
            xtitles.append(xtitle)
            ytitles.append(_YTITLES[metric])
    slider = slider_steps(labels, per, prefix="showing (metric / x axis): ")
    for step, xtitle, ytitle in zip(slider["steps"], xtitles, ytitles, strict=True):
        step["args"].append({"xaxis.title.text": xtitle, "yaxis.title.text": ytitle})
    slider.update(x=0.05, len=0.9, pad={"t": 55})
    fig.update_layout(
        title=f"{title}<br><sup>median over runs (line) and their range (shaded); the slider "
        f"picks the metric and the x axis</sup>",
        xaxis_title=xtitles[0],
        yaxis_title=ytitles[0],
        sliders=[slider],
        height=440,
        margin={"b": 50},
    )
    # many groups with long names: the legend goes below the slider
    return legend_below(fig, len(groups), above=150)


def live_variant_figure(
    variants: dict,
    variant: str,
    split: int = 0,
    seed: int = 0,
    inner_steps: int | None = None,
    steps: int = 30,
    progress=None,
) -> go.Figure:
    """Train one variant of ``variants`` (id -> :class:`rlviz.experiments.addition_runs.Variant`,
    e.g. :data:`rlviz.experiments.ch15.TRAINED_VARIANTS`) live on split ``split`` with ``seed``
    (:func:`rlviz.experiments.addition_runs.live_variant_run`) and plot its held-out success
    (the live widgets of chapters 15-16); ``inner_steps``, if given, replaces the variant's
    gradient steps per batch (``updates_per_batch``); ``progress(fraction)`` after each update."""
    if variant not in variants:
        raise ValueError(f"variant must be one of {list(variants)}, got {variant!r}")
    v = variants[variant]
    if v.trainer != "grpo":
        raise ValueError(f"live_variant_figure trains GRPO variants, {variant!r} is {v.trainer!r}")
    cfg = v.config
    if inner_steps is not None:
        cfg = dataclasses.replace(cfg, updates_per_batch=inner_steps)
    log = live_variant_run(cfg, steps, split, seed, callback=progress_callback(progress))
    return curves_figure(
        {f"{v.label}, split {split}, seed {seed}, {cfg.updates_per_batch} inner steps": log},
        f"Held-out success {log.held_out[-1]:.3f} and held-out entropy {log.entropy[-1]:.3f} "
        f"after {steps} updates",
    )
