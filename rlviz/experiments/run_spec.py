"""One trained run of the addition task as a value: what determines it, and how it is trained.

A :class:`RunSpec` is everything a run's log depends on besides rlviz's code and torch: the
trainer (``"grpo"`` or ``"ppo"``), the config fields that differ from that trainer's defaults,
the number of updates, how often it is evaluated, the split (``AdditionTask.make(split_seed=)``)
and the seed. :func:`train_run` trains it from the book's reference policy (:func:`book_task`)
on one torch thread, no early stop, no time limit, so the same spec gives the same log on the
same kind of machine (the log's wall-clock ``seconds`` aside).

This module and what it imports are the code that determines a run: the run store
(:mod:`rlviz.experiments.run_store`) hashes exactly these files
(:func:`~rlviz.experiments.run_store.determining_files`), so editing a trainer makes the stored
runs stale and editing a table or a figure does not.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from typing import ClassVar

from rlviz import _validate as validate
from rlviz._threads import torch_threads
from rlviz.agents.addition_task import AdditionTask, TrainLog, pretrain_reference
from rlviz.agents.grpo import GRPOConfig, train_grpo
from rlviz.agents.token_ppo import PPOConfig, train_ppo
from rlviz.fn.offpolicy import OffPolicy

__all__ = [
    "TRAINERS",
    "RunSpec",
    "spec_of",
    "book_task",
    "train_run",
    "log_to_dict",
    "log_from_dict",
]

TRAINERS = {"grpo": (GRPOConfig, train_grpo), "ppo": (PPOConfig, train_ppo)}
# set per run from the spec, never part of its config changes
_PER_RUN = ("seed", "max_steps", "stop_at_target", "eval_every", "max_seconds")


def _plain(value):
    """A config field as JSON: an OffPolicy as a dict, inf as the string ``"inf"``."""
    if isinstance(value, OffPolicy):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def _unplain(name: str, value):
    if name == "off_policy":
        return OffPolicy(**{k: _unplain(k, v) for k, v in value.items()})
    if value in ("inf", "-inf"):
        return float(value)
    return value


@dataclass(frozen=True, eq=False)
class RunSpec:
    """A run: ``trainer``, ``changes`` (sorted ``(field, value)`` pairs: the config's fields
    that differ from the trainer's defaults, as JSON values), ``steps`` updates, evaluated every
    ``eval_every`` (and after the last), on split ``split`` with seed ``seed``."""

    kind: ClassVar[str] = "addition"  # the run store's folder for these runs

    trainer: str
    changes: tuple
    steps: int
    split: int
    seed: int
    eval_every: int = 10

    def __post_init__(self):
        validate.choice("trainer", self.trainer, tuple(TRAINERS))
        validate.integer("steps", self.steps, minimum=1)
        validate.integer("split", self.split, minimum=0)
        validate.integer("seed", self.seed, minimum=0)
        validate.integer("eval_every", self.eval_every, minimum=1)
        fields = {f.name for f in dataclasses.fields(TRAINERS[self.trainer][0])}
        for name, _ in self.changes:
            if name not in fields or name in _PER_RUN:
                raise ValueError(
                    f"changes may name the fields of {self.trainer}'s config except "
                    f"{_PER_RUN}, got {name!r}"
                )
        self.config()  # a bad value fails now, not when the run starts

    def config(self):
        """The trainer config this spec trains (its per-run fields set)."""
        cls = TRAINERS[self.trainer][0]
        change = {name: _unplain(name, value) for name, value in self.changes}
        return cls(
            **change,
            seed=self.seed,
            max_steps=self.steps,
            stop_at_target=False,
            eval_every=self.eval_every,
            max_seconds=math.inf,
        )

    def as_dict(self) -> dict:
        return {
            "trainer": self.trainer,
            "changes": {name: value for name, value in self.changes},
            "steps": self.steps,
            "split": self.split,
            "seed": self.seed,
            "eval_every": self.eval_every,
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunSpec:
        return cls(
            d["trainer"],
            tuple(sorted(d["changes"].items())),
            d["steps"],
            d["split"],
            d["seed"],
            d["eval_every"],
        )

    @property
    def id(self) -> str:
        """A short stable name: a hash of the spec's canonical JSON."""
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __eq__(self, other) -> bool:  # by content (a change may hold a dict: OffPolicy's)
        return isinstance(other, RunSpec) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)


def spec_of(config, steps: int, split: int, seed: int, eval_every: int = 10) -> RunSpec:
    """The :class:`RunSpec` that trains ``config`` (a GRPOConfig or an addition-task PPOConfig;
    its own per-run fields are ignored) for ``steps`` updates on ``split`` with ``seed``."""
    trainer = next((name for name, (c, _) in TRAINERS.items() if type(config) is c), None)
    if trainer is None:
        raise ValueError(
            f"config must be one of {[c.__name__ for c, _ in TRAINERS.values()]}, "
            f"got {type(config).__name__}"
        )
    default = TRAINERS[trainer][0]()
    changes = tuple(
        sorted(
            (f.name, _plain(getattr(config, f.name)))
            for f in dataclasses.fields(config)
            if f.name not in _PER_RUN and getattr(config, f.name) != getattr(default, f.name)
        )
    )
    return RunSpec(trainer, changes, steps, split, seed, eval_every)


_BOOK_TASK: dict = {}


def book_task():
    """The book's task (split 0) and its reference policy (a fresh copy of the cached one)."""
    task = _BOOK_TASK.setdefault("task", AdditionTask.make())
    return task, pretrain_reference(task)


def train_run(spec: RunSpec, callback=None) -> TrainLog:
    """Train ``spec`` from the book's reference (pretrained on all 81 prompts: one reference
    for every split) on one torch thread; ``callback(step, max_steps)`` after each update."""
    train = TRAINERS[spec.trainer][1]
    with torch_threads(1):
        _, ref = book_task()
        task = AdditionTask.make(split_seed=spec.split)
        return train(task, ref, spec.config(), callback=callback)[1]


_LOG_FIELDS = [f.name for f in dataclasses.fields(TrainLog)]


def log_to_dict(log: TrainLog) -> dict:
    """A :class:`TrainLog` as JSON values (floats exact: Python writes their shortest repr)."""
    return {name: getattr(log, name) for name in _LOG_FIELDS}


def log_from_dict(d: dict) -> TrainLog:
    if sorted(d) != sorted(_LOG_FIELDS):
        raise ValueError(f"a stored log must have the fields {_LOG_FIELDS}, got {sorted(d)}")
    return TrainLog(**d)
