r"""Time limits: value targets with truncation bootstrapped vs treated as termination (chapter 9).

An infinite-horizon discounted MDP is run in episodes cut after ``horizon`` = H steps by a
time limit that the agent does not observe (Pardo et al. 2018). The state after the cut,
:math:`s_H`, is not terminal: its value is :math:`V^\pi(s_H)`. The lambda-return target of
step t, computed within the episode, is

.. math::
    G^\lambda_t = r_t + \gamma\big[(1-\lambda)\hat V(s_{t+1}) + \lambda G^\lambda_{t+1}\big]
    \ (t < H-1), \qquad
    G^\lambda_{H-1} = r_{H-1} + \gamma\,\hat V(s_H)\ \text{(right: bootstrap)}
    \ \text{or}\ r_{H-1}\ \text{(wrong: as if terminal).}

Everything here is exact: expectations given :math:`s_t = s` by matrix products, or by
enumerating every trajectory (the check). Arrays indexed ``[t, s]`` have shape ``(H, S)``.
"""

from __future__ import annotations

import numpy as np

from rlviz import _validate as validate
from rlviz.fn.returns import lambda_returns
from rlviz.tabular.mdp import (
    TabularMDP,
    check_policy,
    policy_reward,
    policy_transition,
    state_values,
)
from rlviz.tabular.trajectories import enumerate_trajectories

__all__ = [
    "state_occupancy",
    "expected_targets",
    "target_bias",
    "fitted_values",
    "fitted_fixed_point",
    "targets_by_enumeration",
]


def _check(mdp: TabularMDP, pi, horizon) -> tuple[np.ndarray, int]:
    pi = check_policy(mdp, pi)
    if mdp.terminal.any():
        raise ValueError(
            "this module models a time limit on a continuing MDP; got an MDP with terminal states"
        )
    return pi, validate.positive("horizon", horizon, integer=True)


def state_occupancy(mdp: TabularMDP, pi, horizon: int) -> np.ndarray:
    r""":math:`\mu_t(s) = \Pr(s_t = s)` for :math:`t < H`, from :math:`\rho_0`, shape ``(H, S)``."""
    pi, H = _check(mdp, pi, horizon)
    P = policy_transition(mdp, pi)
    mu = np.empty((H, mdp.n_states))
    mu[0] = mdp.rho0
    for t in range(1, H):
        mu[t] = mu[t - 1] @ P
    return mu


def expected_targets(
    mdp: TabularMDP, pi, v, lam: float, horizon: int, *, truncation_as_termination: bool
) -> np.ndarray:
    r"""Exact :math:`g_t(s) = \mathbb E[G^\lambda_t \mid s_t = s]` for a value table ``v``, ``(H, S)``.

    Backwards: :math:`g_{H-1} = r_\pi + \gamma P_\pi v` (right) or :math:`r_\pi` (wrong), and
    :math:`g_t = r_\pi + \gamma P_\pi\big[(1-\lambda) v + \lambda g_{t+1}\big]`.
    """
    pi, H = _check(mdp, pi, horizon)
    v = validate.array("v", v, shape=(mdp.n_states,))
    lam = validate.unit_interval("lam", lam)
    P, r, g = policy_transition(mdp, pi), policy_reward(mdp, pi), mdp.gamma
    out = np.empty((H, mdp.n_states))
    out[H - 1] = r if truncation_as_termination else r + g * P @ v
    for t in range(H - 2, -1, -1):
        out[t] = r + g * P @ ((1 - lam) * v + lam * out[t + 1])
    return out


def target_bias(mdp: TabularMDP, pi, lam: float, horizon: int) -> np.ndarray:
    r"""Bias of the wrong targets with the true :math:`V^\pi`, in closed form, ``(H, S)``.

    .. math:: \mathbb E[G^{\lambda,\text{wrong}}_t - V^\pi(s_t) \mid s_t]
              = -\gamma (\gamma\lambda)^{H-1-t} \big(P_\pi^{H-t} V^\pi\big)(s_t),

    since the right targets are unbiased and the two differ by
    :math:`\gamma (\gamma\lambda)^{H-1-t} V^\pi(s_H)`.
    """
    pi, H = _check(mdp, pi, horizon)
    lam = validate.unit_interval("lam", lam)
    P, v, g = policy_transition(mdp, pi), state_values(mdp, pi), mdp.gamma
    out = np.empty((H, mdp.n_states))
    Pv = P @ v
    for t in range(H - 1, -1, -1):
        out[t] = -g * (g * lam) ** (H - 1 - t) * Pv
        Pv = P @ Pv
    return out


def _regression(mdp, pi, lam, H, wrong):
    """The affine map v -> visit-weighted mean of the expected targets: returns (M, b), v' = M v + b."""
    mu = state_occupancy(mdp, pi, H)
    w = mu / np.maximum(mu.sum(0), 1e-300)  # share of visits to s made at time t
    S = mdp.n_states
    b = (w * expected_targets(mdp, pi, np.zeros(S), lam, H, truncation_as_termination=wrong)).sum(0)
    cols = [
        (w * expected_targets(mdp, pi, np.eye(S)[j], lam, H, truncation_as_termination=wrong)).sum(
            0
        )
        - b
        for j in range(S)
    ]
    return np.stack(cols, axis=1), b


def fitted_values(
    mdp: TabularMDP,
    pi,
    lam: float,
    horizon: int,
    iterations: int,
    *,
    truncation_as_termination: bool,
    v0=None,
) -> np.ndarray:
    r"""Tabular V fitted by iterating on the expected targets, shape ``(iterations + 1, S)``.

    :math:`V_{i+1}(s) = \sum_t \mu_t(s)\, g_t^{V_i}(s) / \sum_t \mu_t(s)`: the least-squares
    fit of a table to infinitely many episodes' targets (every visit weighted equally).
    """
    pi, H = _check(mdp, pi, horizon)
    n = validate.positive("iterations", iterations, integer=True)
    M, b = _regression(mdp, pi, validate.unit_interval("lam", lam), H, truncation_as_termination)
    v = np.zeros(mdp.n_states) if v0 is None else validate.array("v0", v0, shape=(mdp.n_states,))
    out = [v]
    for _ in range(n):
        v = M @ v + b
        out.append(v)
    return np.array(out)


def fitted_fixed_point(
    mdp: TabularMDP, pi, lam: float, horizon: int, *, truncation_as_termination: bool
) -> np.ndarray:
    """The limit of :func:`fitted_values`, solved directly: :math:`(I - M) v = b`."""
    pi, H = _check(mdp, pi, horizon)
    M, b = _regression(mdp, pi, validate.unit_interval("lam", lam), H, truncation_as_termination)
    return np.linalg.solve(np.eye(mdp.n_states) - M, b)


def targets_by_enumeration(
    mdp: TabularMDP, pi, v, lam: float, horizon: int, *, truncation_as_termination: bool
) -> np.ndarray:
    r""":math:`\mathbb E[G^\lambda_t \mid s_t = s]` by enumerating every H-step episode, ``(H, S)``.

    The targets come from :func:`rlviz.fn.returns.lambda_returns` on the episodes laid out
    time-major: the last step is flagged ``truncated_t`` with ``v_final_t`` = v(s_H) (right),
    or ``terminated_t`` (wrong). NaN where :math:`\Pr(s_t = s) = 0`.
    """
    pi, H = _check(mdp, pi, horizon)
    v = validate.array("v", v, shape=(mdp.n_states,))
    tr = enumerate_trajectories(mdp, pi, H)
    M = tr.n
    flag = np.zeros((H, M), dtype=bool)
    flag[H - 1] = True
    none = np.zeros((H, M), dtype=bool)
    v_final = np.zeros((H, M))
    v_final[H - 1] = v[tr.states[:, H]]
    term, trunc = (flag, none) if truncation_as_termination else (none, flag)
    G = lambda_returns(
        tr.rewards.T,
        v[tr.states[:, :H]].T,
        v_T=v[tr.states[:, H]],
        terminated_t=term,
        truncated_t=trunc,
        gamma=mdp.gamma,
        lam=lam,
        v_final_t=v_final,
    )
    out = np.full((H, mdp.n_states), np.nan)
    for t in range(H):
        for s in range(mdp.n_states):
            sel = tr.states[:, t] == s
            if tr.prob[sel].sum() > 0:
                out[t, s] = tr.prob[sel] @ G[t, sel] / tr.prob[sel].sum()
    return out
