"""The experiments of chapter 13 as lists of :class:`rlviz.agents.ppo.PPOConfig`, trained as one batch.

:func:`study` is the chapter's one batched run: the book's setting over :data:`BOOK_SEEDS`
(the claim "PPO solves CartPole" over ten seeds), each coefficient of :data:`SENSITIVITY`
changed alone from the book's setting and each implementation detail of :data:`ABLATIONS`
(Huang et al. 2022; Andrychowicz et al. 2021) switched alone, over :data:`SEEDS` each;
:func:`stored_study` reads it, trained and evaluated, from the run store;
:func:`seed_summary` reduces a group of runs to what the chapter reports (median, worst).
:func:`grid_configs` is the whole gamma x lambda x epsilon grid (one seed; the benchmark and
the live widget) and :func:`ablation_configs` the ablations alone. All are passed whole to
:func:`rlviz.agents.ppo.train`, which trains the settings as a batch dimension of one
computation. :func:`live_run` trains one setting (the chapter's live widget), and
:func:`book_value` is the book's value of one coefficient (the figures' labels).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rlviz._progress import progress_callback
from rlviz.agents.actor_critic import TrainResult
from rlviz.agents.ppo import PPOConfig, train
from rlviz.experiments.ppo_study import StudyResult, StudySpec, study_spec
from rlviz.experiments.run_store import load_or_train

__all__ = [
    "BOOK_SEEDS",
    "SEEDS",
    "SENSITIVITY",
    "Study",
    "study",
    "stored_study",
    "study_run_spec",
    "seed_summary",
    "GAMMAS",
    "LAMBDAS",
    "EPSILONS",
    "ABLATIONS",
    "grid_configs",
    "ablation_configs",
    "first_sustained",
    "book_value",
    "live_run",
]

GAMMAS = (0.9, 0.98, 0.995)
LAMBDAS = (0.5, 0.8, 0.95)
EPSILONS = (0.1, 0.2, 0.3)

# name -> the change from the book's setting (rlviz.agents.ppo.PPOConfig defaults)
ABLATIONS = {
    "book setting": {},
    "no advantage normalisation": {"norm_adv": False},
    "with value clipping (0.2)": {"clip_value": 0.2},
    "with entropy bonus (c2 = 0.01)": {"ent_coef": 0.01},
    "no gradient clipping": {"max_grad_norm": None},
    "no learning-rate annealing": {"anneal_lr": False},
}


BOOK_SEEDS = tuple(range(10))  # the book's setting: "PPO solves CartPole" over these seeds
SEEDS = tuple(range(5))  # every other group of the study

# name -> the change from the book's setting: one coefficient at a time (the chapter's
# sensitivity figure; the book's setting is the middle value of each row of the grid)
SENSITIVITY = {
    "gamma": {f"gamma = {g}": {"gamma": g} for g in GAMMAS},
    "lam": {f"lambda = {l}": {"lam": l} for l in LAMBDAS},
    "clip_eps": {f"epsilon = {e}": {"clip_eps": e} for e in EPSILONS},
}


@dataclasses.dataclass(frozen=True)
class Study:
    """The configs of one batched run and, per group name, its rows (one per seed)."""

    configs: list
    groups: dict  # name -> list of row indices into configs

    def rows(self, name: str, seeds=None) -> list[int]:
        """The rows of group ``name``; only those of ``seeds`` if given."""
        if name not in self.groups:
            raise ValueError(f"name must be one of {sorted(self.groups)}, got {name!r}")
        rows = self.groups[name]
        return rows if seeds is None else [k for k in rows if self.configs[k].seed in seeds]


def study(
    base: PPOConfig | None = None, *, book_seeds=BOOK_SEEDS, seeds=SEEDS, total_steps=None
) -> Study:
    """The chapter's batched run: ``"book setting"`` over ``book_seeds``; each change of
    :data:`SENSITIVITY` (the book's own values excluded: they are the book setting) and of
    :data:`ABLATIONS` over ``seeds``. ``total_steps`` overrides the budget (tests)."""
    base = base or PPOConfig()
    if total_steps is not None:
        base = dataclasses.replace(base, total_steps=total_steps)
    changes = {"book setting": ({}, book_seeds)}
    for coef, values in SENSITIVITY.items():
        for name, change in values.items():
            if change[coef] != getattr(base, coef):
                changes[name] = (change, seeds)
    for name, change in ABLATIONS.items():
        if change:
            changes[name] = (change, seeds)
    configs, groups = [], {}
    for name, (change, group_seeds) in changes.items():
        groups[name] = list(range(len(configs), len(configs) + len(group_seeds)))
        configs += [dataclasses.replace(base, seed=s, **change) for s in group_seeds]
    return Study(configs, groups)


def study_run_spec(s: Study) -> StudySpec:
    """The stored run of study ``s``: its configs as one batch, every setting evaluated with
    greedy actions and the book setting's also with sampled ones (100 episodes, seed 1000)."""
    return study_spec(s.configs, sampled_rows=s.rows("book setting"))


def stored_study(s: Study) -> StudyResult:
    """Study ``s`` trained and evaluated (:func:`study_run_spec`), read from the run store
    (:mod:`rlviz.experiments.run_store`) or trained when it is not stored fresh."""
    return load_or_train(study_run_spec(s))


def seed_summary(values) -> dict:
    """``median``, ``worst`` (minimum), ``best`` and ``n`` of per-seed results, as floats."""
    v = np.asarray(values, float)
    if v.ndim != 1 or len(v) == 0 or np.isnan(v).any():
        raise ValueError(f"values must be a 1-d array of numbers (no NaN), got {values!r}")
    return {
        "median": float(np.median(v)),
        "worst": float(v.min()),
        "best": float(v.max()),
        "n": len(v),
    }


def grid_configs(
    base: PPOConfig | None = None, *, gammas=GAMMAS, lams=LAMBDAS, epsilons=EPSILONS, seed: int = 0
) -> list[PPOConfig]:
    """All (gamma, lambda, epsilon) combinations, gamma slowest and epsilon fastest."""
    base = base or PPOConfig()
    return [
        dataclasses.replace(base, gamma=g, lam=l, clip_eps=e, seed=seed)
        for g in gammas
        for l in lams
        for e in epsilons
    ]


def ablation_configs(
    base: PPOConfig | None = None, *, seeds=(0, 1, 2), ablations=ABLATIONS
) -> list[PPOConfig]:
    """Each ablation for each seed, ablation slowest (len(ablations) * len(seeds) settings)."""
    base = base or PPOConfig()
    return [
        dataclasses.replace(base, seed=s, **change) for change in ablations.values() for s in seeds
    ]


def first_sustained(values, steps, threshold: float = 475.0) -> float:
    """The first step from which ``values`` stays >= ``threshold`` to the end (inf if never).

    ``values`` and ``steps`` are 1-d and of one length (a learning curve and its steps); a NaN
    value (no episode finished yet) counts as below the threshold.
    """
    values, steps = np.asarray(values, float), np.asarray(steps, float)
    if values.ndim != 1 or values.shape != steps.shape or len(values) == 0:
        raise ValueError(
            f"values and steps must be 1-d arrays of one length >= 1, got shapes "
            f"{values.shape} and {steps.shape}"
        )
    below = np.flatnonzero(~(values >= threshold))
    if len(below) == 0:
        return float(steps[0])
    return float(steps[below[-1] + 1]) if below[-1] + 1 < len(steps) else float("inf")


def book_value(field: str):
    """The book's value of one :class:`rlviz.agents.ppo.PPOConfig` field: its default (e.g.
    ``book_value("lam") == 0.8``)."""
    names = [f.name for f in dataclasses.fields(PPOConfig)]
    if field not in names:
        raise ValueError(f"field must be one of {names}, got {field!r}")
    return getattr(PPOConfig(), field)


def live_run(
    gamma: float = 0.98,
    lam: float = 0.8,
    epsilon: float = 0.2,
    seed: int = 0,
    total_steps: int = 12_000,
    progress=None,
) -> TrainResult:
    """Train PPO on CartPole with these settings, the others the book's (the chapter's live
    widget); ``progress(fraction)``, if given, is called after each update (the widget's
    progress bar)."""
    cfg = PPOConfig(gamma=gamma, lam=lam, clip_eps=epsilon, seed=seed, total_steps=total_steps)
    report = progress_callback(progress)  # report(step, total)
    callback = (
        None if report is None else (lambda update, steps, agent: report(update, cfg.updates))
    )
    return train(cfg, callback=callback)
