r"""The addition task's trained runs, shared by chapters 14-17: variants, spreads over splits
and seeds, their summaries and the live runs.

* A :class:`Variant` is a value: a short stable ``id``, a display ``label`` and a validated
  trainer config (:class:`rlviz.agents.grpo.GRPOConfig` or
  :class:`rlviz.agents.token_ppo.PPOConfig`), built when its module loads (:func:`variant`), so
  a bad combination fails at import, not twenty minutes into a chapter.
* :func:`run_variants` trains each variant from the book's reference (:func:`book_task`) over
  :data:`SPLITS` x :data:`SPREAD_SEEDS` and returns a :class:`Spread` per id (the runs, by
  ``(split, seed)``); :func:`spread_summary` and :func:`spread_table` say what a group of runs
  supports.
* :func:`live_variant_run`: one short run for the chapters' live widgets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from rlviz._threads import torch_threads
from rlviz.agents.addition_task import AdditionTask, TrainLog
from rlviz.agents.grpo import GRPOConfig, train_grpo
from rlviz.agents.token_ppo import PPOConfig
from rlviz.experiments.run_spec import TRAINERS, book_task, spec_of
from rlviz.experiments.run_store import load_or_train

__all__ = [
    "SPLITS",
    "SPREAD_SEEDS",
    "Variant",
    "Spread",
    "variant",
    "variant_table",
    "book_task",
    "run_config",
    "run_spread",
    "run_variants",
    "spread_summary",
    "truncate_log",
    "spread_table",
    "paired",
    "paired_table",
    "live_variant_run",
]

SPLITS = (0, 1, 2, 3, 4)  # split_seed of AdditionTask.make: which 20 prompts are held out
SPREAD_SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Variant:
    """One trained variant: ``id`` (short, stable: the key notebooks read), ``label`` (for
    display only) and ``config`` (a validated trainer config; its seed, number of updates and
    evaluation settings are set per run)."""

    id: str
    label: str
    config: GRPOConfig | PPOConfig

    @property
    def trainer(self) -> str:
        return "grpo" if isinstance(self.config, GRPOConfig) else "ppo"


def variant(id: str, label: str, trainer: str = "grpo", **change) -> Variant:
    """A :class:`Variant` whose config is ``trainer``'s defaults with ``change`` (checked now:
    a bad option or combination raises ``ValueError`` here)."""
    if not (isinstance(id, str) and id and id.replace("-", "").replace("_", "").isalnum()):
        raise ValueError(f"id must be a short name of letters, digits, - and _, got {id!r}")
    if trainer not in TRAINERS:
        raise ValueError(f"trainer must be one of {tuple(TRAINERS)}, got {trainer!r}")
    return Variant(id, label, TRAINERS[trainer][0](**change))


def variant_table(*variants: Variant) -> dict[str, Variant]:
    """``{id: variant}`` in the given order; a repeated id is refused."""
    out: dict[str, Variant] = {}
    for v in variants:
        if not isinstance(v, Variant):
            raise ValueError(f"variants must be Variant values, got {v!r}")
        if v.id in out:
            raise ValueError(f"variant id {v.id!r} is used twice")
        out[v.id] = v
    return out


@dataclass(frozen=True)
class Spread:
    """A variant's runs: ``logs[(split, seed)]`` is the run's
    :class:`rlviz.agents.addition_task.TrainLog`."""

    variant: Variant
    logs: dict

    @property
    def label(self) -> str:
        return self.variant.label

    def summary(self, target: float = 0.95) -> dict:
        return spread_summary(self.logs, target)


def run_config(config, steps: int = 80, splits=SPLITS, seeds=SPREAD_SEEDS) -> dict:
    """One run of ``config`` per (split, seed) from the book's reference: ``{(split, seed):
    TrainLog}``. Split ``k`` is :meth:`AdditionTask.make` with ``split_seed=k`` (split 0 is the
    book's); ``steps`` updates each, no early stop, held-out and training success evaluated
    every 10 updates (exact). Each run is read from the run store
    (:func:`rlviz.experiments.run_store.load_or_train`), or trained on one torch thread
    (:func:`rlviz.experiments.run_spec.train_run`) when it is not stored fresh."""
    return {
        (split, seed): load_or_train(spec_of(config, steps, split, seed))
        for split in splits
        for seed in seeds
    }


def run_spread(
    steps: int = 80, splits=SPLITS, seeds=SPREAD_SEEDS, trainer: str = "grpo", **change
) -> dict:
    """:func:`run_config` of ``trainer``'s defaults with ``change`` (the notes' GRPO by default)."""
    return run_config(variant("spread", "spread", trainer, **change).config, steps, splits, seeds)


def run_variants(
    variants: dict, steps: int, splits=SPLITS, seeds=SPREAD_SEEDS, known=None
) -> dict[str, Spread]:
    """Each variant of ``variants`` (id -> :class:`Variant`) over ``splits`` x ``seeds``,
    ``steps`` updates: ``{id: Spread}``. ``known`` maps an id to runs already made with at least
    ``steps`` updates (e.g. :func:`run_spread`'s), which are cut to ``steps``
    (:func:`truncate_log`) instead of trained again."""
    out = {}
    for vid, v in variants.items():
        have = (known or {}).get(vid)
        if have is not None:
            logs = {(k, s): truncate_log(have[(k, s)], steps) for k in splits for s in seeds}
        else:
            logs = run_config(v.config, steps, tuple(splits), tuple(seeds))
        out[vid] = Spread(v, logs)
    return out


def truncate_log(log: TrainLog, steps: int) -> TrainLog:
    """The evaluations of ``log`` up to update ``steps`` (a run's first ``steps`` updates)."""
    if not log.step or log.step[-1] < steps:
        raise ValueError(f"the log must reach update {steps}, it ends at {log.step[-1:]}")
    keep = [i for i, s in enumerate(log.step) if s <= steps]
    fields = ["step", "seconds", "samples", "held_out", "train"]
    if len(log.entropy) == len(log.step):
        fields.append("entropy")
    out = TrainLog(**{f: [getattr(log, f)[i] for i in keep] for f in fields})
    if log.reached_step is not None and log.reached_step <= steps:
        out.reached_step, out.reached_seconds = log.reached_step, log.reached_seconds
    return out


def _logs(runs) -> list:
    if isinstance(runs, Spread):
        runs = runs.logs
    return list(runs.values()) if isinstance(runs, dict) else list(runs)


def spread_summary(logs, target: float = 0.95) -> dict:
    """What a group of runs supports (a :class:`Spread`, or its logs): over the runs, the median
    and worst (minimum) held-out success at the end and at its best evaluation, the final
    training success (median), how many runs reached ``target`` held-out success, and the median
    update and answers sampled when they first did (None if none did); the median held-out
    entropy at the end (None if the logs have none); the median fraction of tokens whose
    off-policy weight the cap changed (``TrainLog.capped``, chapter 17; None if no run has one)."""
    logs = _logs(logs)
    if not logs:
        raise ValueError("logs must hold at least one TrainLog")
    final = np.array([log.held_out[-1] for log in logs])
    peak = np.array([max(log.held_out) for log in logs])
    reached = [
        (log.step[i], log.samples[i])
        for log in logs
        for i in [next((i for i, h in enumerate(log.held_out) if h >= target), None)]
        if i is not None
    ]
    entropy = [log.entropy[-1] for log in logs if len(log.entropy) == len(log.step)]
    capped = [log.capped for log in logs if log.capped is not None]
    return {
        "runs": len(logs),
        "entropy_final_median": float(np.median(entropy)) if entropy else None,
        "capped_median": float(np.median(capped)) if capped else None,
        "final_median": float(np.median(final)),
        "final_worst": float(final.min()),
        "peak_median": float(np.median(peak)),
        "peak_worst": float(peak.min()),
        "train_final_median": float(np.median([log.train[-1] for log in logs])),
        "reached": len(reached),
        "reached_step_median": float(np.median([r[0] for r in reached])) if reached else None,
        "reached_samples_median": float(np.median([r[1] for r in reached])) if reached else None,
    }


def spread_table(groups: dict, target: float = 0.95, capped: bool = False) -> str:
    """A printed table of :func:`spread_summary` per group (id -> :class:`Spread`, printed with
    its label; or name -> logs): runs, held-out success at the end (median, worst), training
    success (median), held-out entropy at the end (median), runs reaching ``target``; two
    decimals, so that the notebook tests compare it. ``capped``: one more column, the median
    over runs of the fraction of answer tokens whose off-policy weight the cap changed
    (:func:`spread_summary`'s ``capped_median``; "-" without a correction)."""
    head = (
        f"{'':40} {'runs':>4} {'held-out: median':>16} {'worst':>6} {'training':>9} "
        f"{'entropy':>8} {'reach ' + format(target, '.2f'):>11}"
    )
    lines = [head + (f" {'capped':>7}" if capped else "")]
    for key, logs in groups.items():
        name = logs.label if isinstance(logs, Spread) else key
        s = spread_summary(logs, target)
        ent = "-" if s["entropy_final_median"] is None else f"{s['entropy_final_median']:.2f}"
        line = (
            f"{name:40} {s['runs']:4d} {s['final_median']:16.2f} {s['final_worst']:6.2f} "
            f"{s['train_final_median']:9.2f} {ent:>8} {s['reached']:>7d} of {s['runs']}"
        )
        if capped:
            c = s["capped_median"]
            line += f" {'-' if c is None else format(c, '.3f'):>7}"
        lines.append(line)
    return "\n".join(lines)


def paired(a, b, metric: str = "held_out") -> dict:
    """Runs of two variants that share splits and seeds, compared pair by pair (``a`` minus
    ``b``, each a :class:`Spread` or its logs): the final ``metric`` (``"held_out"`` or
    ``"train"`` success) of each shared ``(split, seed)``; the median and the worst (minimum)
    paired difference, their mean, and how many pairs ``a`` wins, ties (equal to 1e-9) and
    loses. Runs without a partner are refused (a paired statistic needs the same pairs)."""
    la = a.logs if isinstance(a, Spread) else a
    lb = b.logs if isinstance(b, Spread) else b
    if metric not in ("held_out", "train"):
        raise ValueError(f"metric must be 'held_out' or 'train', got {metric!r}")
    if set(la) != set(lb) or not la:
        raise ValueError(
            f"the two spreads must hold the same (split, seed) pairs, got {sorted(la)} and "
            f"{sorted(lb)}"
        )
    keys = sorted(la)
    d = np.array([getattr(la[k], metric)[-1] - getattr(lb[k], metric)[-1] for k in keys])
    return {
        "pairs": len(keys),
        "median": float(np.median(d)),
        "mean": float(d.mean()),
        "worst": float(d.min()),
        "wins": int((d > 1e-9).sum()),
        "ties": int((np.abs(d) <= 1e-9).sum()),
        "losses": int((d < -1e-9).sum()),
    }


def paired_table(spreads: dict, against: str, metric: str = "held_out") -> str:
    """A printed table of :func:`paired` for every spread of ``spreads`` (id -> :class:`Spread`)
    against the one with id ``against``: the paired difference of the final ``metric`` (median,
    mean, worst) and the wins / ties / losses over the shared (split, seed) pairs; two or three
    decimals, so that the notebook tests compare it."""
    if against not in spreads:
        raise ValueError(f"against must be one of {list(spreads)}, got {against!r}")
    base = spreads[against]
    head = f"{'minus ' + base.label:40} {'pairs':>5} {'median':>7} {'mean':>7} {'worst':>7} {'wins/ties/losses':>17}"
    lines = [head]
    for vid, sp in spreads.items():
        if vid == against:
            continue
        p = paired(sp, base, metric)
        wtl = f"{p['wins']}/{p['ties']}/{p['losses']}"
        lines.append(
            f"{sp.label:40} {p['pairs']:5d} {p['median']:+7.3f} {p['mean']:+7.3f} "
            f"{p['worst']:+7.3f} {wtl:>17}"
        )
    return "\n".join(lines)


def live_variant_run(
    config: GRPOConfig, steps: int = 30, split: int = 0, seed: int = 0, callback=None
) -> TrainLog:
    """One GRPO run of ``config`` (e.g. a :class:`Variant`'s) from the book's reference on split
    ``split`` with ``seed``, ``steps`` updates, no early stop, evaluated every 5 (the live
    widgets of chapters 14-17); ``callback(step, max_steps)`` after each update. One torch
    thread, as the spreads."""
    if not isinstance(config, GRPOConfig):
        raise ValueError(f"config must be a GRPOConfig, got {type(config).__name__}")
    with torch_threads(1):
        _, ref = book_task()
        task = AdditionTask.make(split_seed=split)
        cfg = dataclasses.replace(
            config, max_steps=steps, stop_at_target=False, eval_every=5, seed=seed
        )
        return train_grpo(task, ref, cfg, callback=callback)[1]
