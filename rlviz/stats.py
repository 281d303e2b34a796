"""Small statistics helpers for the Monte-Carlo checks."""

from __future__ import annotations

import numpy as np

from . import _validate as V
from .mdp import TabularMDP, state_values
from .trajectories import MonteCarloEstimate, discounted_sum, sample_trajectories

__all__ = ["loglog_slope", "mc_value_error_curve", "z_scores"]


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


def z_scores(est: MonteCarloEstimate, exact) -> np.ndarray:
    r"""How many standard errors each estimate lies from the exact value.

    :math:`z = \max(|\hat x - x| - b, 0) / \mathrm{se}`, where :math:`b` is the bound on the
    bias from cutting episodes at the horizon. Where the standard error is 0 (a deterministic
    return) the estimate must be exact: z is 0 if it is and inf otherwise.
    """
    exact = V.array("exact", exact, shape=est.mean.shape)
    gap = np.maximum(np.abs(est.mean - exact) - est.truncation_bias_bound, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(est.se > 0, gap / est.se, np.where(gap > 1e-12, np.inf, 0.0))
