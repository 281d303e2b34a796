"""The experiments of chapter 13 as lists of :class:`rlviz.agents.ppo.PPOConfig`, trained as one batch.

:func:`grid_configs` is the gamma x lambda x epsilon grid behind the chapter's sliders;
:func:`ablation_configs` switches one implementation detail at a time (Huang et al. 2022;
Andrychowicz et al. 2021) over several seeds. Both are passed whole to :func:`rlviz.agents.ppo.train`,
which trains the settings as a batch dimension of one computation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rlviz.agents.ppo import PPOConfig

__all__ = [
    "GAMMAS",
    "LAMBDAS",
    "EPSILONS",
    "ABLATIONS",
    "grid_configs",
    "ablation_configs",
    "first_sustained",
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
