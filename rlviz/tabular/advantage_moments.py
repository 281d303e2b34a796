r"""Exact bias and variance of k-step and GAE advantage estimates on a tabular MDP (chapter 7).

For a start pair :math:`(s_0, a_0) = (s, a)` and a value estimate :math:`\hat V = V^\pi + e`
(zero on terminal states), the estimators of notes section 7 are random variables of the
trajectory that follows:

.. math::
    \hat A^{(k)} = \sum_{l=0}^{k-1} \gamma^l r_l + \gamma^k \hat V(s_k) - \hat V(s_0),\qquad
    \hat A^{\text{GAE}} = \sum_{l \ge 0} (\gamma\lambda)^l \delta_l
      = \sum_{l\ge 0} (\gamma\lambda)^l u_l - \hat V(s_0),

with :math:`u_l = r_l + \gamma(1-\lambda)\hat V(s_{l+1})`. Rewards are the MDP's
:math:`r(s, a)`; the randomness is in the actions (after :math:`a_0`) and the transitions.
Their conditional mean and variance given :math:`(s, a)` are computed exactly, with no
sampling: for :math:`\hat A^{(k)}` by a k-step backward recursion on the first two moments,
for GAE by two linear solves on state-action pairs (the infinite sum has no truncation).
Bias is measured against the true :math:`A^\pi(s, a)`. Arrays of results have shape ``(S, A)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlviz import _validate as validate
from rlviz.fn.returns import Transitions, gae, k_step_advantages
from rlviz.tabular.mdp import TabularMDP, advantages, check_policy, state_visitation
from rlviz.tabular.trajectories import enumerate_trajectories

__all__ = [
    "Moments",
    "value_error",
    "kstep_moments",
    "gae_moments",
    "pair_weights",
    "summarise",
    "kstep_moments_by_enumeration",
    "gae_moments_by_enumeration",
]


@dataclass(frozen=True)
class Moments:
    """Conditional mean and variance of an estimator given (s, a), and its bias against A."""

    mean: np.ndarray  # (S, A)
    var: np.ndarray  # (S, A)
    bias: np.ndarray  # (S, A): mean - A^pi(s, a)


def value_error(mdp: TabularMDP, scale: float, seed: int = 0) -> np.ndarray:
    r"""A fixed error direction :math:`e = \text{scale} \cdot z`, :math:`z \sim N(0, I)` seeded, 0
    on terminal states."""
    scale = float(scale)
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"scale must be a finite number >= 0, got {scale!r}")
    z = np.random.default_rng(seed).normal(size=mdp.n_states)
    return np.where(mdp.terminal, 0.0, scale * z)


def _check_v_hat(mdp: TabularMDP, v_hat) -> np.ndarray:
    v_hat = validate.array("v_hat", v_hat, shape=(mdp.n_states,))
    if np.any(v_hat[mdp.terminal] != 0):
        raise ValueError(
            f"v_hat must be 0 on terminal states (their value is known), got {v_hat[mdp.terminal]}"
        )
    return v_hat


def kstep_moments(mdp: TabularMDP, pi, v_hat, k: int) -> Moments:
    r"""Exact mean, variance and bias of :math:`\hat A^{(k)}` given :math:`(s_0, a_0) = (s, a)`.

    With :math:`Y_j = \sum_{l<j}\gamma^l r_l + \gamma^j \hat V(s_j)`, the state-level moments
    :math:`f_j(s) = \mathbb E[Y_j \mid s_0 = s]`, :math:`g_j(s) = \mathbb E[Y_j^2 \mid s_0 = s]`
    obey :math:`f_0 = \hat V`, :math:`g_0 = \hat V^2` and, for the pair,

    .. math::
        F_j(s,a) = r(s,a) + \gamma (P f_{j-1})(s,a),\quad
        G_j(s,a) = r^2 + 2\gamma r\,(P f_{j-1}) + \gamma^2 (P g_{j-1}),

    :math:`f_j = \sum_a \pi F_j`, :math:`g_j = \sum_a \pi G_j`. Then
    :math:`\mathbb E[\hat A^{(k)}] = F_k - \hat V(s)` and :math:`\text{Var} = G_k - F_k^2`.
    """
    pi = check_policy(mdp, pi)
    v_hat = _check_v_hat(mdp, v_hat)
    k = validate.positive("k", k, integer=True)
    g, P, r = mdp.gamma, mdp.P, mdp.r
    f, sq = v_hat, v_hat**2
    for _ in range(k):
        Pf, Pg = P @ f, P @ sq
        F = r + g * Pf
        G = r**2 + 2 * g * r * Pf + g**2 * Pg
        f, sq = (pi * F).sum(1), (pi * G).sum(1)
    mean = F - v_hat[:, None]
    var = np.maximum(G - F**2, 0.0)
    return Moments(mean, var, mean - advantages(mdp, pi))


def gae_moments(mdp: TabularMDP, pi, v_hat, lam: float) -> Moments:
    r"""Exact mean, variance and bias of :math:`\hat A^{\text{GAE}(\gamma,\lambda)}` given (s, a).

    :math:`W = \sum_l \kappa^l u_l`, :math:`\kappa = \gamma\lambda`, is a discounted additive
    functional of the chain of pairs, :math:`\mathcal K[(s,a),(s',a')] = P(s'|s,a)\pi(a'|s')` (live
    :math:`s'` only). Its moments solve

    .. math::
        m = \bar u + \kappa \mathcal K m, \qquad
        M_2(s,a) = \sum_{s'} P(s'|s,a)\big[u^2 + 2\kappa u\, \bar m(s')\big] + \kappa^2 (\mathcal K M_2)(s,a),

    with :math:`u = r(s,a) + \gamma(1-\lambda)\hat V(s')`, :math:`\bar u = \mathbb E_{s'} u`,
    :math:`\bar m(s') = \sum_{a'} \pi(a'|s') m(s',a')`. Then :math:`\mathbb E[\hat A] = m - \hat V(s)`
    and :math:`\text{Var} = M_2 - m^2`. Needs :math:`\kappa < 1` or a policy that terminates.
    """
    pi = check_policy(mdp, pi)
    v_hat = _check_v_hat(mdp, v_hat)
    lam = validate.unit_interval("lam", lam)
    g, S, A = mdp.gamma, mdp.n_states, mdp.n_actions
    kappa = g * lam
    live = ~mdp.terminal
    Plive = mdp.P * live[None, None, :]  # transitions into terminal states end the sum
    kernel = (Plive[:, :, :, None] * pi[None, None, :, :]).reshape(S * A, S * A)
    rows = np.repeat(live, A)  # pairs whose state is live
    Kl = kernel[np.ix_(rows, rows)]
    M = np.eye(int(rows.sum())) - kappa * Kl
    u = mdp.r[:, :, None] + g * (1 - lam) * v_hat[None, None, :]  # (S, A, S')
    u_bar = (mdp.P * u).sum(-1).reshape(-1)
    m = np.zeros(S * A)
    m[rows] = np.linalg.solve(M, u_bar[rows])
    m_state = (pi * m.reshape(S, A)).sum(1) * live
    c = (mdp.P * (u**2 + 2 * kappa * u * m_state[None, None, :])).sum(-1).reshape(-1)
    M2 = np.zeros(S * A)
    M2[rows] = np.linalg.solve(np.eye(int(rows.sum())) - kappa**2 * Kl, c[rows])
    m, M2 = m.reshape(S, A), M2.reshape(S, A)
    mean = np.where(live[:, None], m - v_hat[:, None], 0.0)
    var = np.where(live[:, None], np.maximum(M2 - m**2, 0.0), 0.0)
    return Moments(mean, var, mean - advantages(mdp, pi))


def pair_weights(mdp: TabularMDP, pi) -> np.ndarray:
    r"""Weights :math:`w(s,a) \propto \eta(s)\pi(a|s)` over live pairs (discounted visits), summing to 1."""
    pi = check_policy(mdp, pi)
    w = state_visitation(mdp, pi)[:, None] * pi
    return w / w.sum()


def summarise(mom: Moments, w: np.ndarray) -> dict:
    """Weighted squared bias, variance and their sum (the mean squared error) over pairs."""
    bias2 = float((w * mom.bias**2).sum())
    var = float((w * mom.var).sum())
    return {"bias2": bias2, "var": var, "mse": bias2 + var}


def _one_hot_start(mdp: TabularMDP, s: int) -> TabularMDP:
    rho0 = np.zeros(mdp.n_states)
    rho0[s] = 1.0
    return TabularMDP(mdp.P, mdp.r, rho0, mdp.gamma, mdp.terminal, name=f"{mdp.name} from {s}")


def _moments_by_enumeration(
    mdp, pi, v_hat, horizon, estimate, states=None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of ``estimate(traj)`` (a (M,) array at t = 0) given (s0, a0), by enumeration.

    Rows of states not in ``states`` (default: every non-terminal state) are NaN.
    """
    pi = check_policy(mdp, pi)
    S, A = mdp.n_states, mdp.n_actions
    mean, var = np.full((S, A), np.nan), np.full((S, A), np.nan)
    mean[mdp.terminal] = var[mdp.terminal] = 0.0
    for s in np.flatnonzero(~mdp.terminal) if states is None else states:
        tr = enumerate_trajectories(_one_hot_start(mdp, s), pi, horizon)
        x = estimate(tr)
        for a in range(A):
            sel = tr.actions[:, 0] == a
            p = tr.prob[sel] / tr.prob[sel].sum()
            mean[s, a] = p @ x[sel]
            var[s, a] = p @ (x[sel] - mean[s, a]) ** 2
    return mean, var


def _time_major(tr, v_hat, terminal):
    """A batch of enumerated trajectories as a time-major rollout (rows t, one env per trajectory)."""
    r = tr.rewards.T
    v = v_hat[tr.states[:, :-1]].T
    terminated = (~tr.alive.T) | terminal[tr.states[:, 1:]].T  # padded rows end at once
    return r, v, v_hat[tr.states[:, -1]], terminated, np.zeros_like(terminated)


def kstep_moments_by_enumeration(
    mdp: TabularMDP, pi, v_hat, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of :func:`rlviz.fn.returns.k_step_advantages` at t = 0 over every k-step trajectory."""
    v_hat = _check_v_hat(mdp, v_hat)

    def estimate(tr):
        r, v, v_T, term, trunc = _time_major(tr, v_hat, mdp.terminal)
        return k_step_advantages(
            r, v, k=k, v_T=v_T, terminated_t=term, truncated_t=trunc, gamma=mdp.gamma
        )[0]

    return _moments_by_enumeration(mdp, pi, v_hat, k, estimate)


def gae_moments_by_enumeration(
    mdp: TabularMDP, pi, v_hat, lam: float, horizon: int, *, states=None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of :func:`rlviz.fn.returns.gae` at t = 0 by enumeration.

    Exact when every episode has ended within ``horizon`` steps (e.g. a
    :func:`rlviz.tabular.mdp.time_unrolled` MDP); raises ``ValueError`` otherwise. Only the start
    states in ``states`` (default: all non-terminal) are enumerated; other rows are NaN.
    """
    v_hat = _check_v_hat(mdp, v_hat)

    def estimate(tr):
        if not mdp.terminal[tr.states[:, -1]].all():
            raise ValueError(
                f"some episodes are still running after horizon={horizon} steps; "
                f"GAE by enumeration needs every episode to end"
            )
        r, v, v_T, term, trunc = _time_major(tr, v_hat, mdp.terminal)
        rollout = Transitions(r_t=r, v_t=v, v_T=v_T, terminated_t=term, truncated_t=trunc)
        return gae(rollout, gamma=mdp.gamma, lam=lam)[0]

    return _moments_by_enumeration(mdp, pi, v_hat, horizon, estimate, states)
