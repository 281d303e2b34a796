"""The runs of chapter 8 that its identities, figures and notebook share: GAE as a mixture of
k-step advantages, on a rollout of :func:`rlviz.experiments.random_rollouts.random_rollout`."""

from __future__ import annotations

import numpy as np

from rlviz.fn.returns import k_step_advantages


def kstep_mixture(ro: dict, gamma: float, lam: float) -> np.ndarray:
    r"""The definition of GAE as a finite mixture: with :math:`T` rows every episode has ended by
    :math:`k = T`, so :math:`(1-\lambda)\sum_{k<T} \lambda^{k-1} \hat A^{(k)} + \lambda^{T-1} \hat A^{(T)}`."""
    T = ro["r_t"].shape[0]
    out = lam ** (T - 1) * k_step_advantages(**ro, k=T, gamma=gamma)
    for k in range(1, T):
        out += (1 - lam) * lam ** (k - 1) * k_step_advantages(**ro, k=k, gamma=gamma)
    return out
