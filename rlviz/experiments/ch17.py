r"""The settings of chapter 17 (a sampler that is not the learner), shared by its identity
checks, its figures and the chapter itself.

The learner is chapter 14's random tree (:func:`rlviz.experiments.answer_trees.tree_setting`: two
prompts, answers of 1 to 3 tokens over ``a``, ``b`` and an end token, binary rewards); the
sampler has the learner's logits moved by ``delta`` along a fixed random direction
(:func:`mismatch_setting`): ``delta = 0`` is on-policy, a small ``delta`` mimics another
engine's numerics, a large one stale weights. Everything is exact
(:mod:`rlviz.tabular.sampler_mismatch`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from rlviz._progress import stage_callback
from rlviz._threads import torch_threads
from rlviz.agents.addition_task import TrainLog
from rlviz.agents.grpo import GRPOConfig
from rlviz.experiments.addition_runs import live_variant_run, variant, variant_table
from rlviz.experiments.answer_trees import tree_setting
from rlviz.fn.offpolicy import OffPolicy
from rlviz.tabular.sampler_mismatch import estimator_moments, max_weights

__all__ = [
    "DELTAS",
    "CAPS",
    "CAPPED",
    "UNCAPPED",
    "mismatch_setting",
    "moments",
    "cap_sweep",
    "uncapped_table",
    "mean_squared_error",
    "best_cap",
    "mis_vs_tis",
    "TRAINED_DELTA",
    "TRAINED_STEPS",
    "TRAINED_VARIANTS",
    "LiveRuns",
    "live_trained_run",
]

DELTAS = (0.0, 0.25, 0.5, 0.75, 1.0)
CAPS = tuple(float(c) for c in np.round(np.geomspace(0.5, 64.0, 15), 4))
CAPPED = (("tis", "token"), ("tis", "sequence"), ("mis", "token"), ("mis", "sequence"))
UNCAPPED = (("none", "token"), ("is", "token"), ("is", "sequence"))


def mismatch_setting(delta: float, seed: int = 0):
    """(answers, learner logits, sampler logits, rewards): chapter 14's tree ``seed`` and a
    sampler whose logits are the learner's plus ``delta`` times a standard normal direction."""
    if not delta >= 0:
        raise ValueError(f"delta must be >= 0, got {delta!r}")
    ans, theta, r = tree_setting(seed)
    direction = np.random.default_rng(seed + 200).normal(size=theta.shape)
    return ans, theta, theta + delta * direction, r


def moments(delta: float, correction: str, level: str, cap: float = math.inf, seed: int = 0):
    """:func:`rlviz.tabular.sampler_mismatch.estimator_moments` on :func:`mismatch_setting`."""
    ans, theta, theta_mu, r = mismatch_setting(delta, seed)
    with torch_threads(1):
        return estimator_moments(theta, theta_mu, ans, r, correction, level, cap)


def cap_sweep(delta: float, caps=CAPS, seed: int = 0) -> dict:
    """Relative bias :math:`\\|E[\\hat g] - \\nabla J\\| / \\|\\nabla J\\|` and relative variance
    :math:`\\operatorname{tr}\\operatorname{Var}[\\hat g] / \\|\\nabla J\\|^2` of each capped
    correction against the cap (``"tis token"``, ...: lists over ``caps``), of the uncapped ones
    (``"none token"`` = naive, ``"is token"``, ``"is sequence"``: numbers), and the largest
    weights (``max_w``)."""
    ans, theta, theta_mu, r = mismatch_setting(delta, seed)
    out = {"caps": [float(c) for c in caps], "bias": {}, "var": {}}
    with torch_threads(1):
        for c, lv in CAPPED:
            ms = [estimator_moments(theta, theta_mu, ans, r, c, lv, cap) for cap in caps]
            out["bias"][f"{c} {lv}"] = [m["rel_bias"] for m in ms]
            out["var"][f"{c} {lv}"] = [m["rel_var"] for m in ms]
        for c, lv in UNCAPPED:
            m = estimator_moments(theta, theta_mu, ans, r, c, lv)
            out["bias"][f"{c} {lv}"] = m["rel_bias"]
            out["var"][f"{c} {lv}"] = m["rel_var"]
    out["max_w"] = max_weights(theta, theta_mu, ans)
    return out


def uncapped_table(deltas=DELTAS, seed: int = 0) -> list[dict]:
    """For each ``delta``: the largest sequence and token weights and the relative bias and
    variance of the naive loss and of token- and sequence-level IS without a cap."""
    rows = []
    for d in deltas:
        ans, theta, theta_mu, r = mismatch_setting(d, seed)
        row = {
            "delta": float(d),
            **{f"max_w_{k}": v for k, v in max_weights(theta, theta_mu, ans).items()},
        }
        with torch_threads(1):
            for c, lv in UNCAPPED:
                m = estimator_moments(theta, theta_mu, ans, r, c, lv)
                row[f"bias {c} {lv}"] = m["rel_bias"]
                row[f"var {c} {lv}"] = m["rel_var"]
        rows.append(row)
    return rows


def mean_squared_error(sweep: dict, key: str, batch: int):
    """:math:`\\text{bias}^2 + \\text{variance}/N` (relative to :math:`\\|\\nabla J\\|^2`) of the
    correction ``key`` of a :func:`cap_sweep` with ``batch`` = :math:`N` answers per prompt: a
    list over the caps for a capped correction, a number for an uncapped one."""
    batch = int(batch)
    if batch < 1:
        raise ValueError(f"batch must be a positive integer, got {batch!r}")
    b, v = sweep["bias"][key], sweep["var"][key]
    if isinstance(b, float):
        return b**2 + v / batch
    return [bi**2 + vi / batch for bi, vi in zip(b, v, strict=True)]


def best_cap(sweep: dict, key: str, batch: int) -> float:
    """The cap of the sweep's grid with the smallest :func:`mean_squared_error`."""
    return sweep["caps"][int(np.argmin(mean_squared_error(sweep, key, batch)))]


def mis_vs_tis(sweeps, level: str = "sequence") -> dict:
    """Over every cap of every sweep: is MIS at least as biased as TIS (``more_biased``) and at
    most as variable (``less_variable``) at ``level``? (1e-12 slack for rounding.)"""
    pairs = [
        (
            s["bias"][f"mis {level}"],
            s["bias"][f"tis {level}"],
            s["var"][f"mis {level}"],
            s["var"][f"tis {level}"],
        )
        for s in sweeps
    ]
    return {
        "more_biased": all(
            m >= t - 1e-12 for bm, bt, _, _ in pairs for m, t in zip(bm, bt, strict=True)
        ),
        "less_variable": all(
            m <= t + 1e-12 for _, _, vm, vt in pairs for m, t in zip(vm, vt, strict=True)
        ),
    }


# ---------------------------------------------------------------- in training
TRAINED_DELTA = 3.0  # the sampler's logit perturbation in the trained runs (GRPOConfig)
TRAINED_STEPS = 30
_PRACTICE = {"term": "token", "loss_agg": "token-mean"}


def _off(
    correction: str = "none", level: str = "token", cap: float = math.inf, delta=TRAINED_DELTA
) -> dict:
    return dict(
        _PRACTICE,
        sampler_delta=float(delta),
        off_policy=OffPolicy(correction=correction, level=level, cap=cap),
    )


# id -> Variant, for rlviz.experiments.addition_runs.run_variants
TRAINED_VARIANTS = variant_table(
    variant("on-policy", "on-policy (the learner samples)", **_PRACTICE),
    variant("naive", "naive (no weight)", **_off()),
    variant("is-seq", "IS, sequence, no cap", **_off("is", "sequence")),
    variant("tis-seq-1", "TIS, sequence, C = 1", **_off("tis", "sequence", 1.0)),
    variant("tis-seq-2", "TIS, sequence, C = 2", **_off("tis", "sequence", 2.0)),
    variant("mis-seq-2", "MIS, sequence, C = 2", **_off("mis", "sequence", 2.0)),
    variant("tis-token-2", "TIS, token, C = 2", **_off("tis", "token", 2.0)),
)


class LiveRuns(NamedTuple):
    """The two runs of chapter 17's live widget."""

    corrected: TrainLog
    naive: TrainLog


def live_trained_run(
    delta: float = TRAINED_DELTA,
    correction: str = "tis",
    level: str = "sequence",
    cap: float = 2.0,
    steps: int = TRAINED_STEPS,
    split: int = 0,
    seed: int = 0,
    callback=None,
) -> LiveRuns:
    """Two GRPO runs from the book's reference on split ``split`` with a sampler perturbed by
    ``delta`` (the chapter's live widget): with the off-policy ``correction`` at ``level`` and
    ``cap`` (``cap`` is ignored for ``"is"``, which has none, and both for ``"none"``), and naive (no weight)
    (:func:`rlviz.experiments.addition_runs.live_variant_run`); ``callback(step, max_steps)``
    after each update of either (the first run counts as the first half)."""
    if correction == "none":  # the naive loss twice: no level, no cap
        level, cap = "token", math.inf
    cap = math.inf if correction == "is" else cap
    logs = []
    for k, (corr, lvl, c) in enumerate(((correction, level, cap), ("none", "token", math.inf))):
        cfg = GRPOConfig(**_off(corr, lvl, c, delta))
        cb = stage_callback(callback, k, 2)
        logs.append(live_variant_run(cfg, steps, split, seed, callback=cb))
    return LiveRuns(*logs)
