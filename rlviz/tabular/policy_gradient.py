r"""The softmax policy and its exact objective, gradient and Hessian (chapters 3 to 6).

The policy is tabular softmax over logits :math:`\theta` of shape ``(S, A)``:

.. math:: \pi_\theta(a \mid s) = \frac{e^{\theta_{s,a}}}{\sum_b e^{\theta_{s,b}}}.

Gradients are with respect to the flattened :math:`\theta` (index ``s * A + a``, length
:math:`SA`). The objective is written in ``torch`` (float64) as a function of
:math:`\theta`, computed exactly (forward recursion over a horizon, or a linear solve), so
``torch.autograd`` gives the true gradient, which the chapters compare with the expectations
of the Monte-Carlo estimators of :mod:`rlviz.tabular.pg_estimators`.

Settings (stated everywhere they are used):

* **finite horizon** :math:`H`: :math:`J_H(\theta) = \sum_{t<H} \gamma^t \rho_0^\top P_\pi^t r_\pi`,
  episodes cut after :math:`H` steps (earlier at a terminal state);
* **discounted** (:math:`H = \infty`): :math:`J(\theta) = \rho_0^\top (I - \gamma P_\pi)^{-1} r_\pi`,
  solved on the non-terminal states (so :math:`\gamma = 1` is allowed in an episodic MDP).
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz import _validate as validate
from rlviz.tabular.mdp import TabularMDP, action_values, discounted_state_distribution

__all__ = [
    "softmax_policy",
    "score_table",
    "score_table_autograd",
    "objective_torch",
    "exact_gradient",
    "exact_hessian",
    "finite_horizon_values",
    "visitation_torch",
    "policy_gradient_theorem",
    "notes_direction",
    "notes_direction_torch",
    "jacobian_asymmetry",
    "pg_theorem_rhs",
]

DTYPE = torch.float64


def _theta(mdp: TabularMDP, theta) -> np.ndarray:
    return validate.array("theta", theta, shape=(mdp.n_states, mdp.n_actions))


def softmax_policy(theta) -> np.ndarray:
    r""":math:`\pi_\theta(a \mid s) = e^{\theta_{s,a}} / \sum_b e^{\theta_{s,b}}`, shape ``(S, A)``."""
    theta = validate.array("theta", theta, ndim=2)
    z = np.exp(theta - theta.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def score_table(pi) -> np.ndarray:
    r"""The score :math:`\nabla_\theta \log \pi_\theta(a \mid s)` in closed form, shape ``(S, A, S*A)``.

    For the softmax policy only the logits of state :math:`s` matter:

    .. math:: \frac{\partial \log \pi(a \mid s)}{\partial \theta_{s',b}}
              = \mathbb 1[s' = s]\,(\mathbb 1[b = a] - \pi(b \mid s)),

    i.e. the one-hot vector of :math:`a` minus :math:`\pi(\cdot \mid s)`, in the block of
    :math:`s`. Entry ``[s, a]`` is the gradient vector (flattened like ``theta``).
    """
    pi = validate.array("pi", pi, ndim=2)
    validate.distribution_rows("pi", pi)
    S, A = pi.shape
    out = np.zeros((S, A, S, A))
    for s in range(S):
        out[s, :, s, :] = np.eye(A) - pi[s][None, :]
    return out.reshape(S, A, S * A)


def score_table_autograd(theta) -> np.ndarray:
    r"""The same score table from ``torch.autograd`` of :math:`\log \pi_\theta(a \mid s)` (a check)."""
    theta = validate.array("theta", theta, ndim=2)
    S, A = theta.shape
    jac = torch.autograd.functional.jacobian(
        lambda th: torch.log_softmax(th.reshape(S, A), dim=1).reshape(-1),
        torch.tensor(theta.ravel(), dtype=DTYPE),
    )
    return jac.numpy().reshape(S, A, S * A)


def _torch_model(mdp: TabularMDP, theta_flat: torch.Tensor):
    S, A = mdp.n_states, mdp.n_actions
    pi = torch.softmax(theta_flat.reshape(S, A), dim=1)
    P = torch.tensor(mdp.P, dtype=DTYPE)
    r = torch.tensor(mdp.r, dtype=DTYPE)
    P_pi = torch.einsum("sa,sat->st", pi, P)
    r_pi = (pi * r).sum(dim=1)
    return pi, P, r, P_pi, r_pi


def _live(mdp: TabularMDP) -> torch.Tensor:
    return torch.tensor(np.flatnonzero(~mdp.terminal))


def _values_torch(mdp: TabularMDP, P_pi, r_pi, gamma: float) -> torch.Tensor:
    r""":math:`V = (I - \gamma P_\pi)^{-1} r_\pi` on the non-terminal states, 0 on terminal ones."""
    live = _live(mdp)
    M = torch.eye(len(live), dtype=DTYPE) - gamma * P_pi[live][:, live]
    v = torch.zeros(mdp.n_states, dtype=DTYPE)
    return v.index_put((live,), torch.linalg.solve(M, r_pi[live]))


def visitation_torch(mdp: TabularMDP, P_pi, gamma: float) -> torch.Tensor:
    r""":math:`\eta_\gamma(s) = \sum_{t \ge 0} \gamma^t \Pr(s_t = s)` on non-terminal states (0 on terminal ones).

    :math:`\eta_\gamma^\top = \rho_0^\top (I - \gamma P_\pi)^{-1}` restricted to the
    non-terminal states; with :math:`\gamma = 1` (an episodic MDP) it is the expected number of
    visits, :math:`\eta_1`. Differentiable through ``P_pi``.
    """
    live = _live(mdp)
    M = torch.eye(len(live), dtype=DTYPE) - gamma * P_pi[live][:, live]
    rho0 = torch.tensor(mdp.rho0, dtype=DTYPE)
    eta = torch.zeros(mdp.n_states, dtype=DTYPE)
    return eta.index_put((live,), torch.linalg.solve(M.T, rho0[live]))


def objective_torch(
    mdp: TabularMDP, theta_flat: torch.Tensor, horizon: int | None = None
) -> torch.Tensor:
    r"""The exact objective as a differentiable function of the flat logits (float64).

    ``horizon = H``: :math:`J_H = \sum_{t=0}^{H-1} \gamma^t \rho_0^\top P_\pi^t r_\pi` by forward
    recursion. ``horizon = None``: :math:`J = \rho_0^\top (I - \gamma P_\pi)^{-1} r_\pi` by a
    linear solve on the non-terminal states.
    """
    _, _, _, P_pi, r_pi = _torch_model(mdp, theta_flat)
    rho0 = torch.tensor(mdp.rho0, dtype=DTYPE)
    if horizon is None:
        return rho0 @ _values_torch(mdp, P_pi, r_pi, mdp.gamma)
    H = validate.positive("horizon", horizon, integer=True)
    J, p = torch.zeros((), dtype=DTYPE), rho0
    for t in range(H):
        J = J + mdp.gamma**t * (p @ r_pi)
        p = p @ P_pi
    return J


def _flat(mdp: TabularMDP, theta) -> torch.Tensor:
    return torch.tensor(_theta(mdp, theta).ravel(), dtype=DTYPE)


def exact_gradient(mdp: TabularMDP, theta, horizon: int | None = None) -> np.ndarray:
    r""":math:`\nabla_\theta J_H` (or :math:`\nabla_\theta J` for ``horizon=None``) by autograd, shape ``(S*A,)``."""
    th = _flat(mdp, theta).requires_grad_(True)
    (g,) = torch.autograd.grad(objective_torch(mdp, th, horizon), th)
    return g.numpy()


def exact_hessian(mdp: TabularMDP, theta, horizon: int | None = None) -> np.ndarray:
    r""":math:`\nabla^2_\theta J`, shape ``(S*A, S*A)``: the Jacobian of a true gradient (symmetric)."""
    return torch.autograd.functional.hessian(
        lambda th: objective_torch(mdp, th, horizon), _flat(mdp, theta)
    ).numpy()


def finite_horizon_values(mdp: TabularMDP, pi, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Time-dependent values of the :math:`H`-step problem, by backward recursion.

    :math:`V_H = 0`, :math:`Q_t(s, a) = r(s, a) + \gamma \sum_{s'} P(s' \mid s, a) V_{t+1}(s')`,
    :math:`V_t(s) = \sum_a \pi(a \mid s) Q_t(s, a)`: the expected reward-to-go from step
    :math:`t` with :math:`H - t` steps left. Returns ``(V, Q)`` of shapes ``(H, S)`` and
    ``(H, S, A)``; the advantage is ``Q - V[..., None]``.
    """
    pi = validate.array("pi", pi, shape=(mdp.n_states, mdp.n_actions))
    H = validate.positive("horizon", horizon, integer=True)
    Vt = np.zeros((H + 1, mdp.n_states))
    Qt = np.zeros((H, mdp.n_states, mdp.n_actions))
    for t in range(H - 1, -1, -1):
        Qt[t] = mdp.r + mdp.gamma * np.einsum("sat,t->sa", mdp.P, Vt[t + 1])
        Vt[t] = (pi * Qt[t]).sum(axis=1)
    return Vt[:H], Qt


def _weighted_advantage_torch(
    mdp: TabularMDP, theta_flat: torch.Tensor, visit_gamma: float
) -> torch.Tensor:
    r""":math:`g_{s,a} = \eta(s)\, \pi(a \mid s)\, A^\pi_\gamma(s, a)`, flat; ``visit_gamma`` sets :math:`\eta`."""
    pi, P, r, P_pi, r_pi = _torch_model(mdp, theta_flat)
    v = _values_torch(mdp, P_pi, r_pi, mdp.gamma)
    q = r + mdp.gamma * torch.einsum("sat,t->sa", P, v)
    eta = visitation_torch(mdp, P_pi, visit_gamma)
    return (eta[:, None] * pi * (q - v[:, None])).reshape(-1)


def policy_gradient_theorem(mdp: TabularMDP, theta) -> np.ndarray:
    r"""The policy gradient theorem in closed form for the softmax policy, shape ``(S*A,)``.

    .. math:: \nabla_\theta J = \sum_s \eta_\gamma(s) \sum_a \pi(a \mid s) Q^\pi(s, a)
              \nabla_\theta \log \pi(a \mid s)
              = \frac{1}{1-\gamma}\mathbb E_{s \sim d_\gamma, a \sim \pi}[Q^\pi \nabla \log \pi],

    whose :math:`(s, a)` entry is :math:`\eta_\gamma(s)\, \pi(a \mid s)\, A^\pi(s, a)` since
    :math:`\sum_a \pi(a|s) Q(s,a) (e_a - \pi(\cdot|s)) = \pi(\cdot|s) \odot (Q(s,\cdot) - V(s))`.
    """
    return _weighted_advantage_torch(mdp, _flat(mdp, theta), mdp.gamma).numpy()


def notes_direction_torch(mdp: TabularMDP, theta_flat: torch.Tensor) -> torch.Tensor:
    r"""The expectation of the notes' estimator with :math:`\gamma^t` dropped, differentiable in ``theta_flat``.

    .. math:: \mathbb E\Big[\sum_{t \ge 0} G_t \nabla_\theta \log \pi(a_t \mid s_t)\Big]
              = \sum_s \eta_1(s) \sum_a \pi(a \mid s)\, Q^\pi_\gamma(s, a)\, \nabla_\theta \log \pi(a \mid s),

    with the *undiscounted* visitation :math:`\eta_1(s) = \sum_t \Pr(s_t = s)` (finite in an
    episodic MDP) in place of :math:`\eta_\gamma`; its :math:`(s, a)` entry is
    :math:`\eta_1(s)\,\pi(a \mid s)\, A^\pi_\gamma(s, a)`. Nota and Thomas (2020).
    """
    return _weighted_advantage_torch(mdp, theta_flat, 1.0)


def notes_direction(mdp: TabularMDP, theta) -> np.ndarray:
    r"""Numpy value of :func:`notes_direction_torch`, shape ``(S*A,)``. Needs an episodic MDP."""
    if not mdp.terminal.any():
        raise ValueError(
            f"the notes' direction needs an episodic MDP (terminal states), got "
            f"{mdp!r}: without them the undiscounted visitation is infinite"
        )
    return notes_direction_torch(mdp, _flat(mdp, theta)).numpy()


def jacobian_asymmetry(fn, theta) -> tuple[float, np.ndarray]:
    r""":math:`\|J - J^\top\|_F / \|J\|_F` for the Jacobian :math:`J` of a vector field ``fn`` at ``theta``.

    A vector field is the gradient of some function only if its Jacobian (then a Hessian) is
    symmetric. ``fn`` maps a flat float64 tensor to a tensor of the same length. Returns the
    ratio and the Jacobian.
    """
    th = torch.tensor(np.asarray(theta, dtype=np.float64).ravel(), dtype=DTYPE)
    jac = torch.autograd.functional.jacobian(fn, th, vectorize=True).numpy()
    norm = np.linalg.norm(jac)
    if norm == 0:
        return 0.0, jac
    return float(np.linalg.norm(jac - jac.T) / norm), jac


def pg_theorem_rhs(mdp, pi) -> np.ndarray:
    r""":math:`\frac{1}{1-\gamma}\mathbb E_{s \sim d_\gamma, a \sim \pi}[Q^\pi(s,a) \nabla \log
    \pi(a|s)]`, shape ``(S*A,)``."""
    d = discounted_state_distribution(mdp, pi)
    q = action_values(mdp, pi)
    return np.einsum("s,sa,sak->k", d, pi * q, score_table(pi)) / (1 - mdp.gamma)
