"""Small statistics helpers for the Monte-Carlo checks."""

from __future__ import annotations

import numpy as np

from . import _validate as V
from .mdp import TabularMDP, state_values
from .trajectories import discounted_sum, sample_trajectories

__all__ = ["loglog_slope", "mc_value_error_curve"]


def loglog_slope(x, y) -> tuple[float, float]:
    r"""Least-squares fit of :math:`\log y = a + b \log x`; returns ``(b, a)``."""
    x = V.array("x", x, ndim=1)
    y = V.array("y", y, shape=(x.shape[0],))
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    b, a = np.polyfit(np.log(x), np.log(y), 1)
    return float(b), float(a)


def mc_value_error_curve(mdp: TabularMDP, pi, ns, horizon: int, *, seed: int = 0) -> np.ndarray:
    r"""RMS over states of :math:`\hat V_N(s) - V(s)` for each N in ``ns``.

    One batch of ``max(ns)`` episodes per state is sampled and the estimates use its first N
    episodes (nested prefixes), so the curve costs one simulation.
    """
    ns = np.asarray(ns, dtype=np.int64)
    if ns.ndim != 1 or np.any(ns < 1):
        raise ValueError(f"ns must be a 1-d array of positive integers, got {ns!r}")
    n_max = int(ns.max())
    S = mdp.n_states
    tr = sample_trajectories(mdp, pi, S * n_max, horizon, seed=seed,
                             s0=np.repeat(np.arange(S), n_max))
    g = discounted_sum(tr.rewards, mdp.gamma).reshape(S, n_max)
    v = state_values(mdp, pi)
    live = ~mdp.terminal
    csum = np.cumsum(g, axis=1)
    return np.array([np.sqrt(np.mean((csum[live, n - 1] / n - v[live]) ** 2)) for n in ns])
