r"""Random rollouts with episode ends, on which chapters 8 and 9 check the estimators of
:mod:`rlviz.fn.returns` against their definitions.

:func:`random_rollout` is a seeded float64 rollout, a dict of ``r_t``, ``v_t``, ``v_T``,
``v_final_t``, ``terminated_t`` and ``truncated_t`` with terminations and truncations (some at
the first and the last step); :data:`SETTINGS` are the :math:`(\gamma, \lambda)` pairs the checks run at;
:func:`discounted_td_sum` is the closed form of notes section 8 written as the plain loop, the
oracle that the fast estimators and their unit tests are compared with.
"""

from __future__ import annotations

import numpy as np

__all__ = ["random_rollout", "episode_ends", "discounted_td_sum", "SETTINGS"]


def random_rollout(seed: int, T: int = 12, N: int = 6, p_end: float = 0.15) -> dict:
    """A float64 rollout (N >= 4) with random terminations and truncations, some at the first and last steps."""
    rng = np.random.default_rng(seed)
    term = rng.random((T, N)) < p_end
    trunc = (rng.random((T, N)) < p_end) & ~term
    term[0, 0] = term[T - 1, 1] = True  # episodes that end at the first and the last step
    trunc[0, 2] = trunc[T - 1, 3] = True
    return {
        "r_t": rng.normal(size=(T, N)),
        "v_t": rng.normal(size=(T, N)),
        "v_T": rng.normal(size=N),
        "v_final_t": rng.normal(size=(T, N)),
        "terminated_t": term,
        "truncated_t": trunc,
    }


def episode_ends(ro: dict) -> np.ndarray:
    """ends[t, n]: the episode of (t, n) stops at row t (terminal, time limit or rollout end)."""
    ends = ro["terminated_t"] | ro["truncated_t"]
    ends[-1] = True
    return ends


def discounted_td_sum(
    delta: np.ndarray, ends: np.ndarray, factor: float, k: int | None = None
) -> np.ndarray:
    r"""The closed forms of notes section 8, literally: :math:`\sum_{l} \text{factor}^l \delta_{t+l}`.

    The sum runs over l = 0, 1, ... up to k - 1 (all if ``k`` is None) and stops at the end of
    t's episode or of the rollout. Loops over (t, n, l): written to be read.
    """
    T, N = delta.shape
    out = np.zeros((T, N))
    for n in range(N):
        for t in range(T):
            l = 0
            while True:
                out[t, n] += factor**l * delta[t + l, n]
                if ends[t + l, n] or (k is not None and l == k - 1):
                    break
                l += 1
    return out


SETTINGS = [(0.9, 0.95), (0.99, 0.5), (1.0, 1.0), (0.5, 0.0)]  # (gamma, lambda)
