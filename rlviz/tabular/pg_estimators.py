r"""Per-trajectory policy-gradient estimators and their exact moments (chapters 3, 5, 6).

Every estimator maps a :class:`rlviz.tabular.trajectories.Trajectories` batch of :math:`M`
trajectories of :math:`H` steps to an array of shape ``(M, SA)``, one gradient estimate
(flattened like the logits, length :math:`SA`) per trajectory, vectorised over trajectories.
With :math:`\psi_t = \nabla_\theta \log \pi(a_t \mid s_t)` (0 after the episode ended) and
:math:`G_t = \sum_{l=0}^{H-1-t} \gamma^l r_{t+l}` the reward-to-go within the horizon:

* total return (REINFORCE, Williams 1992): :math:`G_0 \sum_t \psi_t`;
* reward-to-go: :math:`\sum_t \gamma^t G_t \psi_t` (or without :math:`\gamma^t`);
* with a baseline :math:`b_t(s)`: :math:`\sum_t \gamma^t (G_t - b_t(s_t)) \psi_t`;
* with an action-dependent "baseline" :math:`b_t(s, a)`, or with the advantage
  :math:`A_t(s, a)` in place of :math:`G_t`.

On enumerated trajectories (``prob`` set) :func:`expectation` and :func:`covariance` are the
exact moments (probability-weighted sums); on sampled ones :func:`rlviz.fn.stats.sample_mean_se` gives the
Monte-Carlo mean and its standard error.
"""

from __future__ import annotations

import numpy as np

from rlviz import _validate as validate
from rlviz.tabular.mdp import TabularMDP, policy_transition
from rlviz.tabular.policy_gradient import score_table
from rlviz.tabular.trajectories import Trajectories, discounted_sum, rewards_to_go

__all__ = [
    "score_terms",
    "total_return_estimates",
    "reward_to_go_estimates",
    "past_reward_estimates",
    "action_baseline_estimates",
    "advantage_estimates",
    "optimal_baseline",
    "per_parameter_baseline_estimates",
    "expectation",
    "covariance",
    "total_variance",
    "action_baseline_bias",
    "advantage_estimate_moments",
]


def score_terms(traj: Trajectories, pi) -> np.ndarray:
    r""":math:`\psi_t = \nabla_\theta \log \pi(a_t \mid s_t)` for every step, shape ``(M, H,
    S*A)``; 0 where not alive."""
    table = score_table(pi)
    psi = table[traj.states[:, :-1], traj.actions]
    return np.where(traj.alive[:, :, None], psi, 0.0)


def _weighted_scores(traj: Trajectories, pi, w) -> np.ndarray:
    r""":math:`\sum_t w_t \psi_t` for a weight array ``w`` of shape ``(M, H)``."""
    return np.einsum("mt,mtk->mk", w, score_terms(traj, pi))


def _per_step(name: str, table, traj: Trajectories, extra_dims: int) -> np.ndarray:
    """A table of shape (S, ...) or (H, S, ...) broadcast to (H, S, ...)."""
    table = validate.array(name, table)
    H = traj.horizon
    if table.ndim == 1 + extra_dims:
        return np.broadcast_to(table, (H,) + table.shape)
    if table.ndim == 2 + extra_dims and table.shape[0] == H:
        return table
    raise ValueError(
        f"{name} must have shape (S{', A' * extra_dims}) or (H={H}, S"
        f"{', A' * extra_dims}), got {table.shape}"
    )


def total_return_estimates(traj: Trajectories, pi, gamma: float) -> np.ndarray:
    r"""REINFORCE with the total return: :math:`G_0 \sum_{t<H} \psi_t`, shape ``(M, S*A)``."""
    g0 = discounted_sum(traj.rewards, gamma)
    return g0[:, None] * score_terms(traj, pi).sum(axis=1)


def reward_to_go_estimates(
    traj: Trajectories, pi, gamma: float, *, discount_t: bool = True, baseline=None
) -> np.ndarray:
    r"""Reward-to-go: :math:`\sum_{t<H} \gamma^t (G_t - b_t(s_t)) \psi_t`, shape ``(M, S*A)``.

    ``discount_t=False`` drops :math:`\gamma^t` (the notes' section 4 form, which is *not* an
    unbiased estimate of :math:`\nabla J_H`). ``baseline`` is ``None`` (0), shape ``(S,)``
    or time-dependent ``(H, S)``.
    """
    G = rewards_to_go(traj.rewards, gamma)
    if baseline is not None:
        b = _per_step("baseline", baseline, traj, 0)
        G = G - b[np.arange(traj.horizon)[None, :], traj.states[:, :-1]]
    disc = gamma ** np.arange(traj.horizon) if discount_t else np.ones(traj.horizon)
    return _weighted_scores(traj, pi, G * disc[None, :])


def past_reward_estimates(traj: Trajectories, pi, gamma: float) -> np.ndarray:
    r"""The "past rewards x current score" term: :math:`\sum_t \big(\sum_{k<t} \gamma^k r_k\big)
    \psi_t`, ``(M, S*A)``."""
    disc = gamma ** np.arange(traj.horizon)
    past = np.cumsum(traj.rewards * disc, axis=1) - traj.rewards * disc
    return _weighted_scores(traj, pi, past)


def _sa_weight(name: str, table, traj: Trajectories) -> np.ndarray:
    t = _per_step(name, table, traj, 1)
    return t[np.arange(traj.horizon)[None, :], traj.states[:, :-1], traj.actions]


def action_baseline_estimates(traj: Trajectories, pi, gamma: float, baseline_sa) -> np.ndarray:
    r"""An action-dependent "baseline": :math:`\sum_t \gamma^t (G_t - b_t(s_t, a_t)) \psi_t`, ``(M, S*A)``.

    Biased: its expectation is :math:`\nabla J_H - \mathbb E[\sum_t \gamma^t b_t(s_t, a_t) \psi_t]`.
    ``baseline_sa`` has shape ``(S, A)`` or ``(H, S, A)``.
    """
    G = rewards_to_go(traj.rewards, gamma) - _sa_weight("baseline_sa", baseline_sa, traj)
    return _weighted_scores(traj, pi, G * gamma ** np.arange(traj.horizon)[None, :])


def advantage_estimates(traj: Trajectories, pi, gamma: float, adv) -> np.ndarray:
    r"""Advantage form: :math:`\sum_t \gamma^t A_t(s_t, a_t) \psi_t`, ``(M, S*A)``; ``adv`` is
    ``(S, A)`` or ``(H, S, A)``."""
    w = _sa_weight("adv", adv, traj) * gamma ** np.arange(traj.horizon)[None, :]
    return _weighted_scores(traj, pi, w)


def _xy(traj: Trajectories, pi, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """X = sum_t gamma^t G_t psi_t, shape (M, SA), and Y_t = gamma^t psi_t, shape (M, H, SA)."""
    psi = score_terms(traj, pi)
    disc = gamma ** np.arange(traj.horizon)
    G = rewards_to_go(traj.rewards, gamma)
    return np.einsum("mt,mtk->mk", G * disc, psi), disc[None, :, None] * psi


def optimal_baseline(traj: Trajectories, pi, gamma: float) -> np.ndarray:
    r"""The variance-minimising baseline, one constant per time step and parameter, shape ``(H, S*A)``.

    With :math:`X_i = \sum_t \gamma^t G_t \psi_{t,i}` and :math:`Y_{t,i} = \gamma^t \psi_{t,i}`
    the estimate of component :math:`i` with baselines :math:`b_{t,i}` is
    :math:`X_i - \sum_t b_{t,i} Y_{t,i}`. Two facts make its variance easy to minimise:
    :math:`\mathbb E[Y_{t,i}] = 0`, and :math:`\mathbb E[Y_{t,i} Y_{u,i}] = 0` for
    :math:`t < u` (condition on the history up to :math:`s_u`: :math:`Y_{t,i}` is fixed and
    :math:`\psi_u` has conditional mean 0). So

    .. math:: \operatorname{Var} = \operatorname{Var}(X_i)
              + \sum_t \big(b_{t,i}^2 \mathbb E[Y_{t,i}^2] - 2 b_{t,i} \mathbb E[X_i Y_{t,i}]\big),

    a sum of parabolas, each minimised at

    .. math:: b_{t,i}^* = \frac{\mathbb E[X_i Y_{t,i}]}{\mathbb E[Y_{t,i}^2]}

    (Greensmith et al. 2004; per parameter, as in Peters and Schaal's optimal baseline).
    For the tabular softmax :math:`\psi_{t,i} = 0` unless :math:`s_t` is the state of
    parameter :math:`i`, so :math:`b^*` contains every time- and state-dependent baseline
    :math:`b_t(s)`, :math:`V_t(s)` included, and beats all of them. Exact on enumerated
    trajectories; 0 where :math:`\mathbb E[Y_{t,i}^2] = 0`.
    """
    X, Y = _xy(traj, pi, gamma)
    num, den = expectation(traj, X[:, None, :] * Y), expectation(traj, Y * Y)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_parameter_baseline_estimates(traj: Trajectories, pi, gamma: float, b) -> np.ndarray:
    r""":math:`X_i - \sum_t b_{t,i} Y_{t,i}` (see :func:`optimal_baseline`), ``b`` of shape ``(H,
    S*A)``; ``(M, S*A)``."""
    X, Y = _xy(traj, pi, gamma)
    b = validate.array("b", b, shape=Y.shape[1:])
    return X - np.einsum("tk,mtk->mk", b, Y)


def _probs(traj: Trajectories) -> np.ndarray:
    if traj.prob is None:
        raise ValueError(
            "exact moments need enumerated trajectories (prob set); for samples "
            "use rlviz.fn.stats.sample_mean_se"
        )
    return traj.prob


def expectation(traj: Trajectories, est) -> np.ndarray:
    r"""Exact :math:`\mathbb E[g] = \sum_\tau p(\tau) g(\tau)` over enumerated trajectories; ``est`` is ``(M, ...)``."""
    p = _probs(traj)
    est = validate.array("est", est)
    if est.shape[0] != p.shape[0]:
        raise ValueError(f"est must have {p.shape[0]} rows (one per trajectory), got {est.shape}")
    return np.tensordot(p, est, axes=1)


def covariance(traj: Trajectories, est) -> np.ndarray:
    r"""Exact covariance :math:`\sum_\tau p(\tau) (g - \bar g)(g - \bar g)^\top`, shape ``(SA, SA)``."""
    est = validate.array("est", est, ndim=2)
    c = est - expectation(traj, est)[None, :]
    return (c * _probs(traj)[:, None]).T @ c


def total_variance(traj: Trajectories, est) -> float:
    r""":math:`\operatorname{tr} \operatorname{Cov}(g) = \mathbb E\|g - \mathbb E g\|^2`, exact."""
    est = validate.array("est", est, ndim=2)
    c = est - expectation(traj, est)[None, :]
    return float(_probs(traj) @ (c**2).sum(axis=1))


def action_baseline_bias(mdp: TabularMDP, pi, horizon: int, baseline_sa) -> np.ndarray:
    r"""Closed-form bias of :func:`action_baseline_estimates`, shape ``(S*A,)``.

    .. math:: \mathbb E\Big[\sum_t \gamma^t (G_t - b_t(s_t, a_t)) \psi_t\Big] - \nabla J_H
              = -\sum_{t<H} \gamma^t \sum_{s \text{ live}} \Pr(s_t = s)
                \sum_a \pi(a \mid s)\, b_t(s, a)\, \nabla \log \pi(a \mid s),

    with :math:`\Pr(s_t = \cdot) = \rho_0^\top P_\pi^t`. Zero when :math:`b_t` does not
    depend on the action (then the inner sum is :math:`b_t(s) \sum_a \nabla \pi(a|s) = 0`).
    """
    H = validate.positive("horizon", horizon, integer=True)
    b = validate.array("baseline_sa", baseline_sa)
    if b.shape == (mdp.n_states, mdp.n_actions):
        b = np.broadcast_to(b, (H,) + b.shape)
    elif b.shape != (H, mdp.n_states, mdp.n_actions):
        raise ValueError(
            f"baseline_sa must have shape (S, A) or (H, S, A) = ({H}, "
            f"{mdp.n_states}, {mdp.n_actions}), got {b.shape}"
        )
    table = score_table(pi)
    P_pi = policy_transition(mdp, pi)
    p, bias = mdp.rho0 * ~mdp.terminal, np.zeros(table.shape[2])
    for t in range(H):
        bias -= mdp.gamma**t * np.einsum("s,sa,sak->k", p * ~mdp.terminal, pi * b[t], table)
        p = p @ P_pi
    return bias


def advantage_estimate_moments(
    traj: Trajectories, gamma: float, values, n_actions: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Exact conditional mean and variance of :math:`\hat A_t = G_t - V_t(s_t)` given :math:`(s_t, a_t)`.

    On enumerated trajectories, for every step :math:`t` and pair :math:`(s, a)`:
    :math:`\Pr(s_t = s, a_t = a)`, :math:`\mathbb E[\hat A_t \mid s_t=s, a_t=a]` (which equals
    :math:`A_t(s, a)`: :math:`\hat A_t` is unbiased) and
    :math:`\operatorname{Var}(\hat A_t \mid s_t=s, a_t=a)` (which is not 0: :math:`\hat A_t`
    is an estimate, not the advantage). ``values`` has shape ``(H, S)``; returns
    ``(prob, mean, var)``, each ``(H, S, A)``, with mean and variance NaN where the
    probability is 0. Steps after the episode ended are left out.
    """
    p = _probs(traj)
    H = traj.horizon
    vals = validate.array("values", values, ndim=2)
    if vals.shape[0] != H:
        raise ValueError(f"values must have shape (H={H}, S), got {vals.shape}")
    S = vals.shape[1]
    A = validate.positive("n_actions", n_actions, integer=True)
    adv = rewards_to_go(traj.rewards, gamma) - vals[np.arange(H)[None, :], traj.states[:, :-1]]
    out = np.zeros((3, H, S * A))
    for t in range(H):
        live = traj.alive[:, t]
        idx = traj.states[live, t] * A + traj.actions[live, t]
        w = p[live]
        out[0, t] = np.bincount(idx, w, S * A)
        out[1, t] = np.bincount(idx, w * adv[live, t], S * A)
        out[2, t] = np.bincount(idx, w * adv[live, t] ** 2, S * A)
    prob = out[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(prob > 0, out[1] / prob, np.nan)
        var = np.where(prob > 0, out[2] / prob - mean**2, np.nan)
    shape = (H, S, A)
    return prob.reshape(shape), mean.reshape(shape), np.maximum(var, 0.0).reshape(shape)
