r"""Trajectories of a tabular MDP: every one of them with its probability, or seeded samples.

A trajectory of horizon :math:`H` is :math:`\tau = (s_0, a_0, r_0, \dots, s_{H-1}, a_{H-1}, r_{H-1}, s_H)`
with probability (notes section 1)

.. math:: p_\pi(\tau) = \rho_0(s_0) \prod_{t=0}^{H-1} \pi(a_t \mid s_t) P(s_{t+1} \mid s_t, a_t).

An episode that reaches a terminal state stops there: later steps have ``alive = False``,
zero reward, action 0 and the terminal state repeated.

Arrays are batch-major here: ``(M, H)`` for M trajectories of H steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlviz import _validate as validate
from rlviz.tabular.mdp import TabularMDP, check_policy
from rlviz.tabular.mdp import state_values as _state_values

__all__ = [
    "Trajectories",
    "enumerate_trajectories",
    "sample_trajectories",
    "discounted_sum",
    "rewards_to_go",
    "mc_state_values",
    "mc_action_values",
    "MonteCarloEstimate",
    "mc_value_error_curve",
]


@dataclass(frozen=True)
class Trajectories:
    """A batch of trajectories.

    Attributes
    ----------
    states : int array (M, H + 1)
    actions : int array (M, H)
    rewards : float array (M, H)
        :math:`r(s_t, a_t)`, zero after termination.
    alive : bool array (M, H)
        ``alive[m, t]`` is True when step t was taken (s_t is not terminal).
    prob : float array (M,) or None
        Exact probabilities for enumerated trajectories; None for samples.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    alive: np.ndarray
    prob: np.ndarray | None

    @property
    def n(self) -> int:
        return self.states.shape[0]

    @property
    def horizon(self) -> int:
        return self.actions.shape[1]


def enumerate_trajectories(
    mdp: TabularMDP, pi, horizon: int, *, max_trajectories: int = 2_000_000
) -> Trajectories:
    r"""Every trajectory of ``horizon`` steps with positive probability, and that probability.

    Built breadth-first, one step at a time, vectorised over the trajectories so far. The
    probabilities sum to 1 (a check of chapter 1). Raises ``ValueError`` if there would be
    more than ``max_trajectories``.
    """
    pi = check_policy(mdp, pi)
    H = validate.positive("horizon", horizon, integer=True)
    s0 = np.flatnonzero(mdp.rho0 > 0)
    states = s0[:, None]
    prob = mdp.rho0[s0]
    actions = np.zeros((len(s0), 0), dtype=np.int64)
    alive = np.zeros((len(s0), 0), dtype=bool)
    for _ in range(H):
        s = states[:, -1]
        live = ~mdp.terminal[s]
        w = pi[s][:, :, None] * mdp.P[s]  # (M, A, S): pi(a|s) P(s'|s,a)
        w[~live] = 0.0
        w[~live, 0, s[~live]] = 1.0  # a finished episode continues as one copy
        m, a, s_next = np.nonzero(w > 0)
        if len(m) > max_trajectories:
            raise ValueError(
                f"horizon={H} gives more than max_trajectories={max_trajectories} "
                f"trajectories; lower the horizon or raise max_trajectories"
            )
        prob = prob[m] * w[m, a, s_next]
        states = np.concatenate([states[m], s_next[:, None]], axis=1)
        actions = np.concatenate([actions[m], a[:, None]], axis=1)
        alive = np.concatenate([alive[m], live[m][:, None]], axis=1)
    rewards = np.where(alive, mdp.r[states[:, :-1], actions], 0.0)
    return Trajectories(states, actions, rewards, alive, prob)


class _Categorical:
    """Inverse-CDF sampling from the rows of a table ``p`` of shape (..., C), vectorised.

    The rows' CDFs are laid end to end, row k shifted by k, so one ``searchsorted`` draws
    for a whole batch of rows.
    """

    def __init__(self, p: np.ndarray):
        self.n_choices = p.shape[-1]
        flat = p.reshape(-1, self.n_choices)
        cdf = np.cumsum(flat, axis=1)
        cdf[:, -1] = 1.0  # guard against rounding: the last bin closes the row
        self.shifted = (cdf + np.arange(flat.shape[0])[:, None]).ravel()

    def draw(self, rng: np.random.Generator, row: np.ndarray) -> np.ndarray:
        u = rng.random(row.shape[0])
        idx = np.searchsorted(self.shifted, row + u, side="right") - row * self.n_choices
        return np.minimum(idx, self.n_choices - 1)


def sample_trajectories(
    mdp: TabularMDP, pi, n: int, horizon: int, *, seed=None, s0=None, a0=None
) -> Trajectories:
    r"""``n`` trajectories of ``horizon`` steps sampled with a seeded generator.

    Vectorised over the ``n`` trajectories. ``s0`` (an int or an int array of shape (n,))
    fixes the start states instead of drawing from :math:`\rho_0`; ``a0`` fixes the first
    action (to estimate :math:`Q(s, a)`). ``seed`` is an int or a ``numpy.random.Generator``.
    """
    pi = check_policy(mdp, pi)
    n = validate.positive("n", n, integer=True)
    H = validate.positive("horizon", horizon, integer=True)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    S, A = mdp.n_states, mdp.n_actions
    start, policy, step = _Categorical(mdp.rho0[None]), _Categorical(pi), _Categorical(mdp.P)
    if s0 is None:
        s = start.draw(rng, np.zeros(n, dtype=np.int64))
    else:
        s = np.broadcast_to(np.asarray(s0, dtype=np.int64), (n,)).copy()
        if s.min() < 0 or s.max() >= S:
            raise ValueError(f"s0 must be state indices in [0, {S - 1}], got {s0!r}")
    if a0 is not None:
        a_first = np.broadcast_to(np.asarray(a0, dtype=np.int64), (n,))
        if a_first.min() < 0 or a_first.max() >= A:
            raise ValueError(f"a0 must be action indices in [0, {A - 1}], got {a0!r}")
    states = np.empty((n, H + 1), dtype=np.int64)
    actions = np.zeros((n, H), dtype=np.int64)
    alive = np.zeros((n, H), dtype=bool)
    states[:, 0] = s
    for t in range(H):
        live = ~mdp.terminal[s]
        if not live.any():  # every episode has ended: the rest is padding
            states[:, t + 1 :] = s[:, None]
            break
        a = a_first if (t == 0 and a0 is not None) else policy.draw(rng, s)
        s_next = np.where(live, step.draw(rng, s * A + a), s)
        actions[:, t] = np.where(live, a, 0)
        alive[:, t] = live
        states[:, t + 1] = s = s_next
    rewards = np.where(alive, mdp.r[states[:, :-1], actions], 0.0)
    return Trajectories(states, actions, rewards, alive, None)


def discounted_sum(rewards, gamma: float) -> np.ndarray:
    r""":math:`G_0 = \sum_{t=0}^{H-1} \gamma^t r_t` for each row of ``rewards`` (shape (M, H))."""
    rewards = validate.array("rewards", rewards, ndim=2)
    gamma = validate.unit_interval("gamma", gamma)
    return rewards @ (gamma ** np.arange(rewards.shape[1]))


def rewards_to_go(rewards, gamma: float) -> np.ndarray:
    r""":math:`G_t = \sum_{l=0}^{H-1-t} \gamma^l r_{t+l}` for every step of each row, shape (M, H).

    Computed backwards, :math:`G_t = r_t + \gamma G_{t+1}`, :math:`G_H = 0`.
    """
    rewards = validate.array("rewards", rewards, ndim=2)
    gamma = validate.unit_interval("gamma", gamma)
    G = np.zeros_like(rewards)
    acc = np.zeros(rewards.shape[0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        acc = rewards[:, t] + gamma * acc
        G[:, t] = acc
    return G


@dataclass(frozen=True)
class MonteCarloEstimate:
    """Sample means with standard errors and the bound on the bias of cutting at the horizon."""

    mean: np.ndarray
    se: np.ndarray
    n: int
    horizon: int
    truncation_bias_bound: float


def _truncation_bound(mdp: TabularMDP, horizon: int) -> float:
    if mdp.gamma < 1:
        return float(mdp.gamma**horizon * np.abs(mdp.r).max() / (1 - mdp.gamma))
    return float("inf")


def mc_state_values(mdp: TabularMDP, pi, n: int, horizon: int, *, seed=None) -> MonteCarloEstimate:
    r"""Monte-Carlo :math:`\hat V(s)`: the mean discounted return of ``n`` episodes from each s.

    All :math:`S \times n` episodes run as one vectorised batch. The return is cut after
    ``horizon`` steps, which biases it by at most :math:`\gamma^H \max|r| / (1-\gamma)`.
    """
    S = mdp.n_states
    n = validate.positive("n", n, integer=True)
    s0 = np.repeat(np.arange(S), n)
    tr = sample_trajectories(mdp, pi, S * n, horizon, seed=seed, s0=s0)
    g = discounted_sum(tr.rewards, mdp.gamma).reshape(S, n)
    se = g.std(axis=1, ddof=1) / np.sqrt(n) if n > 1 else np.full(S, np.inf)
    return MonteCarloEstimate(g.mean(axis=1), se, n, horizon, _truncation_bound(mdp, horizon))


def mc_action_values(mdp: TabularMDP, pi, n: int, horizon: int, *, seed=None) -> MonteCarloEstimate:
    r"""Monte-Carlo :math:`\hat Q(s, a)` from ``n`` episodes per pair, first action forced to a."""
    S, A = mdp.n_states, mdp.n_actions
    n = validate.positive("n", n, integer=True)
    s0 = np.repeat(np.arange(S), A * n)
    a0 = np.tile(np.repeat(np.arange(A), n), S)
    tr = sample_trajectories(mdp, pi, S * A * n, horizon, seed=seed, s0=s0, a0=a0)
    g = discounted_sum(tr.rewards, mdp.gamma).reshape(S, A, n)
    se = g.std(axis=2, ddof=1) / np.sqrt(n) if n > 1 else np.full((S, A), np.inf)
    return MonteCarloEstimate(g.mean(axis=2), se, n, horizon, _truncation_bound(mdp, horizon))


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
    tr = sample_trajectories(
        mdp, pi, S * n_max, horizon, seed=seed, s0=np.repeat(np.arange(S), n_max)
    )
    g = discounted_sum(tr.rewards, mdp.gamma).reshape(S, n_max)
    v = _state_values(mdp, pi)
    live = ~mdp.terminal
    csum = np.cumsum(g, axis=1)
    return np.array([np.sqrt(np.mean((csum[live, n - 1] / n - v[live]) ** 2)) for n in ns])
