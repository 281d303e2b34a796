"""Chapter 8: telescoping the k-step advantages into sums of TD residuals."""

from __future__ import annotations

import numpy as np

from rlviz.experiments.ch08 import kstep_mixture
from rlviz.experiments.random_rollouts import (
    SETTINGS,
    discounted_td_sum,
    episode_ends,
    random_rollout,
)
from rlviz.fn.returns import Transitions, gae, k_step_advantages, td_errors
from rlviz.verify import Measure, identity


@identity(
    "ch8.kstep_telescoping",
    chapter=8,
    title="A^(k)_t = sum_{l<k} gamma^l delta_{t+l} (episode ends included)",
)
def kstep_telescoping() -> Measure:
    errs = []
    for seed, (gamma, _) in enumerate(SETTINGS):
        ro = random_rollout(seed)
        delta = td_errors(**ro, gamma=gamma)
        for k in (1, 2, 3, 5, 12):
            lhs = k_step_advantages(**ro, k=k, gamma=gamma)
            errs.append(np.abs(lhs - discounted_td_sum(delta, episode_ends(ro), gamma, k)).max())
    return Measure(float(max(errs)), "4 random rollouts (T=12, N=6), k in {1, 2, 3, 5, 12}")


@identity("ch8.gae_closed_form", chapter=8, title="GAE_t = sum_l (gamma lambda)^l delta_{t+l}")
def gae_closed_form() -> Measure:
    errs = []
    for seed, (gamma, lam) in enumerate(SETTINGS):
        ro = random_rollout(10 + seed)
        delta = td_errors(**ro, gamma=gamma)
        lhs = gae(Transitions(**ro), gamma=gamma, lam=lam)
        errs.append(np.abs(lhs - discounted_td_sum(delta, episode_ends(ro), gamma * lam)).max())
    return Measure(float(max(errs)), "4 random rollouts, (gamma, lambda) from (0.5, 0) to (1, 1)")


@identity(
    "ch8.gae_mixture_tail",
    chapter=8,
    title="GAE = (1 - lambda) sum_k lambda^(k-1) A^(k), tail weight on the full return",
)
def gae_mixture_tail() -> Measure:
    errs = []
    for seed, (gamma, lam) in enumerate(SETTINGS):
        ro = random_rollout(20 + seed)
        errs.append(
            np.abs(
                gae(Transitions(**ro), gamma=gamma, lam=lam) - kstep_mixture(ro, gamma, lam)
            ).max()
        )
    return Measure(float(max(errs)), "4 random rollouts (T=12, N=6)")
