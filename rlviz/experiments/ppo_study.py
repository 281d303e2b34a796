"""Chapter 13's batched PPO study on CartPole as one stored run: what determines it, how it is
trained and evaluated, and its record.

A :class:`StudySpec` lists the settings trained together as one batch (each a
:class:`rlviz.agents.ppo.PPOConfig`, by the fields that differ from the defaults, seed
included) and how they are evaluated: every setting with greedy actions, the rows
``sampled_rows`` also with sampled actions, ``episodes`` episodes from ``eval_seed``. The batch
is one run, not one per setting: the settings share a computation, so a setting trained alone
is not bit-identical to the same setting trained in the batch.

:func:`train_study` returns the record the store keeps: the logs the chapter reads
(``steps``, ``return``) and the mechanism's (``approx_kl``, ``clip_fraction``), the 100-episode
means, and ``train_seconds`` (wall clock: a replay does not compare it). :class:`StudyResult`
is what the chapter gets back: a :class:`rlviz.agents.actor_critic.TrainResult` without its
agent (the figures read its logs) and the evaluations.

This module and what it imports are the code the run store hashes for these runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from rlviz import _validate as validate
from rlviz.agents.actor_critic import TrainResult, evaluate_settings
from rlviz.agents.ppo import PPOConfig, train

__all__ = ["StudySpec", "StudyResult", "study_spec", "train_study", "result_of", "LOGGED"]

LOGGED = ("steps", "return", "approx_kl", "clip_fraction")  # the logs a record keeps


@dataclass(frozen=True, eq=False)
class StudySpec:
    """``settings``: per setting, sorted ``(field, value)`` pairs of its config's fields that
    differ from :class:`PPOConfig`'s defaults (seed included); ``sampled_rows``: the settings
    also evaluated with sampled actions; ``episodes`` and ``eval_seed``: the evaluation."""

    kind: ClassVar[str] = "ppo-study"

    settings: tuple
    sampled_rows: tuple
    episodes: int = 100
    eval_seed: int = 1000

    def __post_init__(self):
        if not self.settings:
            raise ValueError("settings must hold at least one setting, got none")
        validate.integer("episodes", self.episodes, minimum=1)
        validate.integer("eval_seed", self.eval_seed, minimum=0)
        n = len(self.settings)
        if any(not (isinstance(k, int) and 0 <= k < n) for k in self.sampled_rows):
            raise ValueError(
                f"sampled_rows must be row indices in [0, {n}), got {self.sampled_rows}"
            )
        self.configs()  # a bad value fails now

    def configs(self) -> list[PPOConfig]:
        return [PPOConfig(**dict(change)) for change in self.settings]

    def as_dict(self) -> dict:
        return {
            "settings": [dict(change) for change in self.settings],
            "sampled_rows": list(self.sampled_rows),
            "episodes": self.episodes,
            "eval_seed": self.eval_seed,
        }

    @classmethod
    def from_dict(cls, d: dict) -> StudySpec:
        return cls(
            tuple(tuple(sorted(c.items())) for c in d["settings"]),
            tuple(d["sampled_rows"]),
            d["episodes"],
            d["eval_seed"],
        )

    @property
    def id(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def __eq__(self, other) -> bool:
        return isinstance(other, StudySpec) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)


def study_spec(configs, sampled_rows=(), episodes: int = 100, eval_seed: int = 1000) -> StudySpec:
    """The :class:`StudySpec` of training ``configs`` (PPOConfigs) as one batch."""
    default = PPOConfig()
    settings = []
    for c in configs:
        if type(c) is not PPOConfig:
            raise ValueError(f"configs must be rlviz.agents.ppo.PPOConfig values, got {c!r}")
        settings.append(
            tuple(
                sorted(
                    (f.name, getattr(c, f.name))
                    for f in dataclasses.fields(c)
                    if getattr(c, f.name) != getattr(default, f.name)
                )
            )
        )
    return StudySpec(tuple(settings), tuple(int(k) for k in sampled_rows), episodes, eval_seed)


def train_study(spec: StudySpec) -> dict:
    """Train the settings as one batch (one torch thread) and evaluate them: the record."""
    result = train(spec.configs())
    greedy = evaluate_settings(result.agent, None, spec.episodes, seed=spec.eval_seed).mean(1)
    sampled = (
        evaluate_settings(
            result.agent,
            list(spec.sampled_rows),
            spec.episodes,
            seed=spec.eval_seed,
            deterministic=False,
        ).mean(1)
        if spec.sampled_rows
        else np.zeros(0)
    )
    return {
        **{key: result.log(key).tolist() for key in LOGGED},
        "greedy": greedy.tolist(),
        "sampled": sampled.tolist(),
        "train_seconds": result.train_seconds,
    }


class StudyResult(NamedTuple):
    """``result``: the study's TrainResult (``agent`` None; logs :data:`LOGGED`; its
    ``train_seconds`` those of the run that was stored); ``greedy``: each setting's mean return
    over the evaluation episodes with greedy actions; ``sampled``: the same with sampled actions
    for the spec's ``sampled_rows``."""

    result: TrainResult
    greedy: np.ndarray
    sampled: np.ndarray


def result_of(spec: StudySpec, record: dict) -> StudyResult:
    logs = {key: record[key] for key in LOGGED}
    result = TrainResult(None, spec.configs(), logs, record["train_seconds"])
    return StudyResult(result, np.asarray(record["greedy"]), np.asarray(record["sampled"]))
