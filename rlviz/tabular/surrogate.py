r"""Importance sampling, the surrogate objective, KL divergences, the Fisher matrix and tabular TRPO
(chapters 10 and 11).

Setting: a tabular discounted MDP (:math:`\gamma < 1`) and the softmax policy of
:mod:`rlviz.tabular.policy_gradient` with flat logits :math:`\theta` (length :math:`SA`). The old
policy :math:`\pi_{\text{old}} = \pi_{\theta_{\text{old}}}` fixes the data distribution: the
discounted state distribution :math:`d_{\text{old}} = d^{\pi_{\text{old}}}_\gamma` (sums to 1,
:func:`rlviz.tabular.mdp.discounted_state_distribution`) and the advantages
:math:`A_{\text{old}} = A^{\pi_{\text{old}}}` (:func:`rlviz.tabular.mdp.advantages`).

The **surrogate** (Kakade and Langford 2002; Schulman et al. 2015, with :math:`\eta`
written :math:`J`) is

.. math:: L_{\theta_{\text{old}}}(\theta) = J(\theta_{\text{old}}) + \frac{1}{1-\gamma}\,
          \mathbb E_{s \sim d_{\text{old}},\, a \sim \pi_{\text{old}}}\Big[
          \frac{\pi_\theta(a \mid s)}{\pi_{\text{old}}(a \mid s)} A_{\text{old}}(s, a)\Big],

the first-order model of :math:`J(\theta) = J(\theta_{\text{old}}) + \frac{1}{1-\gamma}
\mathbb E_{s \sim d_\theta, a \sim \pi_\theta}[A_{\text{old}}(s, a)]` in which the new
policy's state distribution :math:`d_\theta` is replaced by the old one.

Everything differentiable is written in ``torch`` float64, so autograd gives exact gradients
and Hessians. Arrays: policies ``(S, A)``, flat logits ``(S*A,)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from rlviz import _validate as validate
from rlviz._threads import torch_threads
from rlviz.fn.ppo_loss import categorical_kl
from rlviz.fn.trust_region import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    trpo_step_size,
)
from rlviz.tabular.advantage_moments import gae_moments
from rlviz.tabular.mdp import (
    TabularMDP,
    advantages,
    discounted_state_distribution,
    objective,
    state_visitation,
)
from rlviz.tabular.policy_gradient import DTYPE, objective_torch, score_table, softmax_policy

__all__ = [
    "kl_rows",
    "importance_weighted_means",
    "ratio_variance",
    "OldPolicy",
    "old_policy",
    "surrogate_torch",
    "surrogate_sample_estimates",
    "surrogate_estimate_variance",
    "undiscounted_visitation",
    "step_average_gradient",
    "sample_surrogate_gradients",
    "mean_kl_torch",
    "kl_rows_torch",
    "line_profile",
    "policy_directions",
    "schulman_constant",
    "fisher_matrix",
    "kl_hessian",
    "tabular_natural_gradient",
    "tabular_trpo_step",
    "tabular_trpo",
]


# ----------------------------------------------------------------------------- per-state tables


def _policy(name: str, pi, shape=None) -> np.ndarray:
    pi = (
        validate.array(name, pi, ndim=2) if shape is None else validate.array(name, pi, shape=shape)
    )
    validate.distribution_rows(name, pi)
    return pi


def kl_rows(p, q) -> np.ndarray:
    r"""Per-state :math:`\mathrm{KL}(p(\cdot|s) \,\|\, q(\cdot|s)) = \sum_a p(a|s) \log
    \frac{p(a|s)}{q(a|s)}`, shape ``(S,)``.

    Terms with :math:`p(a|s) = 0` contribute 0; ``q`` must be positive where ``p`` is.
    """
    p = _policy("p", p)
    q = _policy("q", q, shape=p.shape)
    if np.any((p > 0) & (q <= 0)):
        raise ValueError("q must be > 0 wherever p > 0 (otherwise KL(p || q) is infinite)")
    safe_q = np.where(p > 0, q, 1.0)
    return np.where(p > 0, p * (np.log(np.where(p > 0, p, 1.0)) - np.log(safe_q)), 0.0).sum(axis=1)


def importance_weighted_means(pi_old, pi_new, f) -> tuple[np.ndarray, np.ndarray]:
    r"""Both sides of importance sampling, per state, shape ``(S,)`` each.

    .. math:: \underbrace{\sum_a \pi_{\text{old}}(a|s)\, \frac{\pi_{\text{new}}(a|s)}
              {\pi_{\text{old}}(a|s)}\, f(s, a)}_{\mathbb E_{\text{old}}[\rho f]}
              \quad\text{and}\quad
              \underbrace{\sum_a \pi_{\text{new}}(a|s) f(s, a)}_{\mathbb E_{\text{new}}[f]},

    with the ratio :math:`\rho = \pi_{\text{new}} / \pi_{\text{old}}`. Equal whenever
    :math:`\pi_{\text{old}} > 0` wherever :math:`\pi_{\text{new}} > 0` (required here:
    ``pi_old > 0`` everywhere). ``f`` has shape ``(S, A)``.
    """
    pi_old = _policy("pi_old", pi_old)
    pi_new = _policy("pi_new", pi_new, shape=pi_old.shape)
    f = validate.array("f", f, shape=pi_old.shape)
    if np.any(pi_old <= 0):
        raise ValueError("pi_old must be > 0 everywhere (the ratio divides by it)")
    ratio = pi_new / pi_old
    return (pi_old * ratio * f).sum(axis=1), (pi_new * f).sum(axis=1)


def ratio_variance(pi_old, pi_new, f) -> np.ndarray:
    r"""Exact variance of one ratio-weighted sample :math:`\rho f` with :math:`a \sim
    \pi_{\text{old}}(\cdot|s)`, shape ``(S,)``.

    .. math:: \operatorname{Var}_{a \sim \pi_{\text{old}}}[\rho f]
              = \sum_a \frac{\pi_{\text{new}}(a|s)^2}{\pi_{\text{old}}(a|s)} f(s,a)^2
              - \Big(\sum_a \pi_{\text{new}}(a|s) f(s,a)\Big)^2 .

    With :math:`f \equiv 1` it is the :math:`\chi^2` divergence
    :math:`\chi^2(\pi_{\text{new}} \| \pi_{\text{old}}) = \sum_a \pi_{\text{new}}^2/\pi_{\text{old}} - 1
    \ge e^{\mathrm{KL}(\pi_{\text{new}} \| \pi_{\text{old}})} - 1`, which grows with the KL.
    """
    pi_old = _policy("pi_old", pi_old)
    pi_new = _policy("pi_new", pi_new, shape=pi_old.shape)
    f = validate.array("f", f, shape=pi_old.shape)
    if np.any(pi_old <= 0):
        raise ValueError("pi_old must be > 0 everywhere (the ratio divides by it)")
    return (pi_new**2 / pi_old * f**2).sum(axis=1) - ((pi_new * f).sum(axis=1)) ** 2


# ----------------------------------------------------------------------------- the surrogate


@dataclass(frozen=True, eq=False)
class OldPolicy:
    r"""What the old policy fixes: its logits, policy, :math:`d_{\text{old}}`,
    :math:`A_{\text{old}}`, :math:`J(\theta_{\text{old}})`."""

    mdp: TabularMDP
    theta: np.ndarray  # flat logits, shape (S*A,)
    pi: np.ndarray  # (S, A)
    d: np.ndarray  # (S,), sums to 1
    adv: np.ndarray  # (S, A)
    J: float


def old_policy(mdp: TabularMDP, theta_old) -> OldPolicy:
    """Freeze :math:`\\theta_{\\text{old}}` (shape ``(S, A)`` or ``(S*A,)``): policy, d_old, A_old and J."""
    S, A = mdp.n_states, mdp.n_actions
    if not mdp.gamma < 1:
        raise ValueError(f"the surrogate needs a discounted MDP, gamma in [0, 1), got {mdp.gamma}")
    th = validate.array(
        "theta_old", np.reshape(np.asarray(theta_old, dtype=float), -1), shape=(S * A,)
    )
    pi = softmax_policy(th.reshape(S, A))
    return OldPolicy(
        mdp, th, pi, discounted_state_distribution(mdp, pi), advantages(mdp, pi), objective(mdp, pi)
    )


def _flat_torch(old: OldPolicy, theta) -> torch.Tensor:
    if isinstance(theta, torch.Tensor):
        if theta.shape != (old.theta.size,):
            raise ValueError(f"theta must have shape ({old.theta.size},), got {tuple(theta.shape)}")
        return theta
    return torch.tensor(validate.array("theta", theta, shape=(old.theta.size,)), dtype=DTYPE)


def surrogate_torch(old: OldPolicy, theta) -> torch.Tensor:
    r"""The surrogate :math:`L_{\theta_{\text{old}}}(\theta)` as a differentiable function of the flat logits.

    .. math:: L(\theta) = J(\theta_{\text{old}}) + \frac{1}{1-\gamma} \sum_s d_{\text{old}}(s)
              \sum_a \pi_{\text{old}}(a|s)\, \frac{\pi_\theta(a|s)}{\pi_{\text{old}}(a|s)}\,
              A_{\text{old}}(s, a).

    Normalisation: :math:`d_{\text{old}}` sums to 1, and the :math:`1/(1-\gamma)` and the
    constant :math:`J(\theta_{\text{old}})` make :math:`L` comparable with :math:`J` itself
    (Schulman et al. 2015 write :math:`L_\pi(\tilde\pi) = \eta(\pi) + \sum_s \rho_\pi(s)
    \sum_a \tilde\pi(a|s) A_\pi(s,a)` with the unnormalised :math:`\rho_\pi = d_\pi/(1-\gamma)`:
    the same function). So :math:`L(\theta_{\text{old}}) = J(\theta_{\text{old}})` since
    :math:`\sum_a \pi A = 0`.
    """
    th = _flat_torch(old, theta)
    S, A = old.mdp.n_states, old.mdp.n_actions
    logp = torch.log_softmax(th.reshape(S, A), dim=1)
    logp_old = torch.log_softmax(torch.tensor(old.theta.reshape(S, A), dtype=DTYPE), dim=1)
    pi_old = logp_old.exp()
    d = torch.tensor(old.d, dtype=DTYPE)
    adv = torch.tensor(old.adv, dtype=DTYPE)
    ratio = torch.exp(logp - logp_old)  # pi_theta / pi_old, finite even where pi_old underflows
    return old.J + (d * (pi_old * ratio * adv).sum(dim=1)).sum() / (1 - old.mdp.gamma)


def _policy_at(old: OldPolicy, theta) -> np.ndarray:
    th = validate.array("theta", theta, shape=(old.theta.size,))
    return softmax_policy(th.reshape(old.mdp.n_states, old.mdp.n_actions))


def surrogate_sample_estimates(
    rng: np.random.Generator, old: OldPolicy, theta, n: int
) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`n` old-policy samples of the ratio and of the surrogate term, shapes ``(n,)`` and ``(n,)``.

    Each draws :math:`s \sim d_{\text{old}}`, :math:`a \sim \pi_{\text{old}}(\cdot|s)` and returns
    :math:`\rho = \pi_\theta(a|s) / \pi_{\text{old}}(a|s)` and
    :math:`X = \rho\, A_{\text{old}}(s,a) / (1-\gamma)`. :math:`\mathbb E[\rho] = 1` and
    :math:`\mathbb E[X] = L(\theta) - J(\theta_{\text{old}})` (:func:`surrogate_torch`);
    the variances are :func:`surrogate_estimate_variance`. (The exact :math:`d_{\text{old}}`
    and :math:`A_{\text{old}}` are used, so the only noise is the sampling of :math:`(s, a)`.)
    """
    n = validate.positive("n", n, integer=True)
    pi = _policy_at(old, theta)
    S, A = pi.shape
    s = rng.choice(S, size=n, p=old.d / old.d.sum())
    u = rng.random(n)
    a = np.minimum((np.cumsum(old.pi, axis=1)[s] < u[:, None]).sum(axis=1), A - 1)
    rho = pi[s, a] / old.pi[s, a]
    return rho, rho * old.adv[s, a] / (1 - old.mdp.gamma)


def surrogate_estimate_variance(old: OldPolicy, theta) -> tuple[float, float]:
    r"""Exact variances of one sample of :func:`surrogate_sample_estimates`: ``(Var[rho], Var[X])``.

    With :math:`f = A_{\text{old}}/(1-\gamma)` and :math:`m_s = \mathbb E_{a \sim \pi_\theta}[f(s, a)]`,
    by the law of total variance over :math:`s \sim d_{\text{old}}`:

    .. math:: \operatorname{Var}[X] = \sum_s d_{\text{old}}(s)\big(\operatorname{Var}_{a \sim \pi_{\text{old}}}[\rho f]
              + m_s^2\big) - \Big(\sum_s d_{\text{old}}(s) m_s\Big)^2,
              \qquad
              \operatorname{Var}[\rho] = \sum_s d_{\text{old}}(s)\, \chi^2\big(\pi_\theta(\cdot|s)
              \,\|\, \pi_{\text{old}}(\cdot|s)\big),

    the per-state variances from :func:`ratio_variance` (:math:`\mathbb E[\rho \mid s] = 1`).
    At :math:`\theta = \theta_{\text{old}}` (:math:`\rho \equiv 1`) :math:`\operatorname{Var}[\rho] = 0`
    and :math:`\operatorname{Var}[X]` is the variance of :math:`A_{\text{old}}/(1-\gamma)`; both
    grow as :math:`\pi_\theta` moves away from :math:`\pi_{\text{old}}`.
    """
    pi = _policy_at(old, theta)
    f = old.adv / (1 - old.mdp.gamma)
    m = (pi * f).sum(axis=1)
    var_x = float(old.d @ (ratio_variance(old.pi, pi, f) + m**2) - (old.d @ m) ** 2)
    var_rho = float(old.d @ ratio_variance(old.pi, pi, np.ones_like(f)))
    return var_rho, var_x


# ----------------------------------------------------------------------------- the sample surrogate


def undiscounted_visitation(mdp: TabularMDP, pi) -> np.ndarray:
    r"""Expected visits per episode :math:`\eta_1(s) = \sum_{t \ge 0} \Pr(s_t = s)`, shape ``(S,)``.

    :func:`rlviz.tabular.mdp.state_visitation` of the same MDP with :math:`\gamma = 1` (finite
    only in an episodic MDP: terminal states required). A time-step average over a batch of
    whole episodes weights state :math:`s` by :math:`\eta_1(s) / \sum_{s'} \eta_1(s')`
    (chapter 4, erratum E11).
    """
    if not mdp.terminal.any():
        raise ValueError("the undiscounted visitation needs an episodic MDP (terminal states)")
    return state_visitation(dataclasses.replace(mdp, gamma=1.0), pi)


def step_average_gradient(pi, weights, adv) -> np.ndarray:
    r""":math:`\sum_s w(s) \sum_a \pi(a|s)\, \hat A(s, a)\, \nabla_\theta \log\pi(a|s)` for the
    softmax policy, flat, shape ``(S*A,)``.

    The expected gradient at :math:`\theta_{\text{old}}` of a surrogate
    :math:`\sum_t r_t(\theta) \hat A_t` whose samples visit :math:`s` with weight :math:`w(s)` and
    whose advantage has conditional mean ``adv`` :math:`= \mathbb E[\hat A_t \mid s_t = s, a_t
    = a]`, shape ``(S, A)`` (:math:`\nabla r_t = \nabla \log \pi(a_t|s_t)` at
    :math:`\theta_{\text{old}}`). ``weights`` has shape ``(S,)``. Scores from
    :func:`rlviz.tabular.policy_gradient.score_table`.
    """
    pi = _policy("pi", pi)
    w = validate.array("weights", weights, shape=(pi.shape[0],))
    adv = validate.array("adv", adv, shape=pi.shape)
    return np.einsum("s,sa,sak->k", w, pi * adv, score_table(pi))


def sample_surrogate_gradients(old: OldPolicy, v_hat, lam: float) -> dict:
    r"""The expected gradient at :math:`\theta_{\text{old}}` of the surrogate as practice computes it,
    step by step from the exact surrogate, and :math:`\nabla J`; flat arrays ``(S*A,)``.

    All are expectations (a batch large enough that its averages are their means), on the
    scale of one episode (sums over an episode's steps; the time-step average divides them
    by :math:`\mathbb E[T] = \sum_s \eta_1(s)`, which changes no direction):

    * ``grad_J``: :math:`\nabla J(\theta_{\text{old}})` (autograd of
      :func:`~rlviz.tabular.policy_gradient.objective_torch`);
    * ``exact``: :math:`\nabla L(\theta_{\text{old}})` of the exact surrogate
      (:func:`surrogate_torch`: discounted visitation, true advantage), equal to ``grad_J``;
    * ``undiscounted``: :math:`\sum_s \eta_1(s) \sum_a \pi A^\pi \nabla\log\pi`, the
      true advantage but the states of a time-step average (:func:`undiscounted_visitation`);
    * ``gae``: the same with :math:`\mathbb E[\hat A^{\text{GAE}(\gamma,\lambda)} \mid s, a]`
      computed with ``v_hat`` (:func:`rlviz.tabular.advantage_moments.gae_moments`);
    * ``normalised``: the same with :math:`(\hat A - \mu)/\sigma`, :math:`\mu, \sigma^2` the
      mean and variance of :math:`\hat A_t` over the batch's steps
      (:math:`\sigma^2 = \sum_s \bar\eta_1(s) \sum_a \pi (\operatorname{Var}[\hat A|s,a]
      + \mathbb E[\hat A|s,a]^2) - \mu^2`, :math:`\bar\eta_1 = \eta_1/\sum\eta_1`).

    Also ``mu``, ``sigma`` and ``steps`` :math:`= \mathbb E[T]`. ``v_hat`` has shape ``(S,)``
    (0 on terminal states); ``lam`` in [0, 1]. Needs an episodic MDP.
    """
    mdp, pi = old.mdp, old.pi
    eta1 = undiscounted_visitation(mdp, pi)
    with torch_threads(1):
        th = torch.tensor(old.theta, dtype=DTYPE, requires_grad=True)
        (g_j,) = torch.autograd.grad(objective_torch(mdp, th), th)
        th = torch.tensor(old.theta, dtype=DTYPE, requires_grad=True)
        (g_l,) = torch.autograd.grad(surrogate_torch(old, th), th)
    mom = gae_moments(mdp, pi, v_hat, lam)
    w = eta1 / eta1.sum()
    mu = float(w @ (pi * mom.mean).sum(1))
    sigma = float(np.sqrt(w @ (pi * (mom.var + mom.mean**2)).sum(1) - mu**2))
    return {
        "grad_J": g_j.numpy(),
        "exact": g_l.numpy(),
        "undiscounted": step_average_gradient(pi, eta1, old.adv),
        "gae": step_average_gradient(pi, eta1, mom.mean),
        "normalised": step_average_gradient(pi, eta1, (mom.mean - mu) / sigma),
        "mu": mu,
        "sigma": sigma,
        "steps": float(eta1.sum()),
    }


def kl_rows_torch(old: OldPolicy, theta) -> torch.Tensor:
    r"""Per-state :math:`\mathrm{KL}(\pi_{\text{old}}(\cdot|s) \,\|\, \pi_\theta(\cdot|s))`,
    differentiable, shape ``(S,)``."""
    th = _flat_torch(old, theta)
    S, A = old.mdp.n_states, old.mdp.n_actions
    logp = torch.log_softmax(th.reshape(S, A), dim=1)
    logp_old = torch.log_softmax(torch.tensor(old.theta.reshape(S, A), dtype=DTYPE), dim=1)
    return categorical_kl(logp_old, logp)


def mean_kl_torch(old: OldPolicy, theta) -> torch.Tensor:
    r""":math:`\bar D_{\mathrm{KL}}(\theta) = \mathbb E_{s \sim
    d_{\text{old}}}[\mathrm{KL}(\pi_{\text{old}}(\cdot|s) \,\|\, \pi_\theta(\cdot|s))]`, the TRPO
    constraint."""
    return (torch.tensor(old.d, dtype=DTYPE) * kl_rows_torch(old, theta)).sum()


def policy_directions(old: OldPolicy, n_random: int, *, seed: int = 0) -> dict[str, np.ndarray]:
    r"""Unit directions in logit space that move the policy: the gradient of :math:`J` and ``n_random`` random ones.

    Random directions are standard normal, zero on terminal states (whose policy does not
    matter), with each state's mean removed (adding a constant to a state's logits leaves
    :math:`\pi` unchanged), then normalised. Keys: ``"gradient"``, ``"random 1"``, ...
    """
    n_random = int(validate.array("n_random", n_random, shape=()))
    if n_random < 0:
        raise ValueError(f"n_random must be >= 0, got {n_random}")
    S, A = old.mdp.n_states, old.mdp.n_actions
    th = torch.tensor(old.theta, dtype=DTYPE, requires_grad=True)
    (g,) = torch.autograd.grad(objective_torch(old.mdp, th), th)
    out = {"gradient": g.numpy() / np.linalg.norm(g.numpy())}
    rng = np.random.default_rng(seed)
    for k in range(n_random):
        u = rng.normal(size=(S, A))
        u[old.mdp.terminal] = 0.0
        u -= u.mean(axis=1, keepdims=True)
        out[f"random {k + 1}"] = (u / np.linalg.norm(u)).ravel()
    return out


def schulman_constant(old: OldPolicy) -> tuple[float, float]:
    r"""The constant of Schulman et al. (2015), Theorem 1: :math:`C =
    4\epsilon\gamma/(1-\gamma)^2`, :math:`\epsilon = \max_{s,a}|A_{\text{old}}(s,a)|`.

    Returns ``(C, epsilon)``. With it :math:`J(\theta) \ge L(\theta) - C\, D^{\max}_{\mathrm{KL}}`,
    where :math:`D^{\max}_{\mathrm{KL}} = \max_s \mathrm{KL}(\pi_{\text{old}}(\cdot|s) \| \pi_\theta(\cdot|s))`.
    The proof bounds the total variation :math:`\alpha` by :math:`\alpha^2 \le D_{\mathrm{KL}}`,
    which is true but weaker than Pinsker's inequality :math:`\alpha^2 \le D_{\mathrm{KL}}/2`.
    """
    eps = float(np.abs(old.adv).max())
    g = old.mdp.gamma
    return 4 * eps * g / (1 - g) ** 2, eps


def line_profile(old: OldPolicy, direction, steps) -> dict:
    r""":math:`J`, :math:`L`, mean and max KL, and the lower bound along :math:`\theta_{\text{old}} + t u`.

    ``direction`` :math:`u` has shape ``(S*A,)``; ``steps`` :math:`t` shape ``(n,)``.
    Returns arrays of shape ``(n,)``: ``J``, ``L``, ``kl_mean`` (:math:`d_{\text{old}}`-weighted),
    ``kl_max`` (max over states), ``bound`` :math:`= L - C\,D^{\max}_{\mathrm{KL}}`
    (:func:`schulman_constant`), and ``t``; ``C`` is the constant used.
    """
    u = validate.array("direction", direction, shape=(old.theta.size,))
    t = validate.array("steps", steps, ndim=1)
    C, _ = schulman_constant(old)
    out = {k: np.empty(t.size) for k in ("J", "L", "kl_mean", "kl_max")}
    with torch.no_grad(), torch_threads(1):
        for i, ti in enumerate(t):
            th = torch.tensor(old.theta + ti * u, dtype=DTYPE)
            out["J"][i] = float(objective_torch(old.mdp, th))
            out["L"][i] = float(surrogate_torch(old, th))
            kl = kl_rows_torch(old, th)
            out["kl_mean"][i] = float((torch.tensor(old.d, dtype=DTYPE) * kl).sum())
            out["kl_max"][i] = float(kl.max())
    out["bound"] = out["L"] - C * out["kl_max"]
    out["t"] = t
    out["C"] = C
    return out


# ----------------------------------------------------------------------------- Fisher information


def fisher_matrix(old: OldPolicy) -> np.ndarray:
    r"""The Fisher information of the policy under :math:`d_{\text{old}}`, from the score, shape ``(SA, SA)``.

    .. math:: F = \mathbb E_{s \sim d_{\text{old}}, a \sim \pi_{\text{old}}}\big[
              \nabla_\theta \log\pi_\theta(a|s)\, \nabla_\theta \log\pi_\theta(a|s)^\top\big]_{\theta_{\text{old}}},

    with the closed-form softmax score (:func:`rlviz.tabular.policy_gradient.score_table`). Block
    diagonal: the block of state :math:`s` is :math:`d(s)(\operatorname{diag}\pi_s - \pi_s\pi_s^\top)`,
    which kills the all-ones vector, so :math:`F` is singular (rank at most :math:`S(A-1)`).
    """
    psi = score_table(old.pi)  # (S, A, SA)
    w = old.d[:, None] * old.pi  # (S, A)
    return np.einsum("sa,sak,sal->kl", w, psi, psi)


def kl_hessian(old: OldPolicy) -> np.ndarray:
    r""":math:`\nabla^2_\theta \bar D_{\mathrm{KL}}(\theta)` at :math:`\theta_{\text{old}}` by
    ``torch.autograd.functional.hessian``, shape ``(SA, SA)``."""
    return torch.autograd.functional.hessian(
        lambda th: mean_kl_torch(old, th), torch.tensor(old.theta, dtype=DTYPE)
    ).numpy()


def tabular_natural_gradient(old: OldPolicy) -> np.ndarray:
    r"""The minimum-norm solution of :math:`F x = \nabla J(\theta_{\text{old}})` in closed form, shape ``(SA,)``.

    For the tabular softmax (Kakade 2002), :math:`\nabla J` has :math:`(s,a)` entry
    :math:`\frac{d(s)}{1-\gamma}\pi(a|s)A(s,a)` and the block of :math:`F` is
    :math:`d(s)(\operatorname{diag}\pi_s - \pi_s\pi_s^\top)`; since :math:`\sum_a \pi A = 0`,
    :math:`(\operatorname{diag}\pi_s - \pi_s\pi_s^\top) A_s = \pi_s \odot A_s`, so
    :math:`x = A/(1-\gamma)` solves it, and removing each state's mean (the null direction)
    gives the minimum-norm solution

    .. math:: x_{s,a} = \frac{A_{\text{old}}(s,a) - \frac1{|\mathcal A|}\sum_b A_{\text{old}}(s,b)}{1-\gamma}
              \quad (\text{states with } d(s) > 0).
    """
    adv = old.adv - old.adv.mean(axis=1, keepdims=True)
    adv = np.where(old.d[:, None] > 0, adv, 0.0)
    return (adv / (1 - old.mdp.gamma)).ravel()


# ----------------------------------------------------------------------------- tabular TRPO


def tabular_trpo_step(
    old: OldPolicy,
    delta: float,
    *,
    cg_iters: int = 50,
    damping: float = 0.0,
    max_backtracks: int = 15,
) -> dict:
    r"""One exact TRPO step: :math:`g = \nabla L = \nabla J`, :math:`x \approx F^{-1} g` by CG,
    step :math:`\sqrt{2\delta/g^\top x}\,x`, line search.

    1. :math:`g = \nabla_\theta L(\theta_{\text{old}})` by autograd (equal to :math:`\nabla J`);
    2. :math:`x` from :func:`~rlviz.fn.trust_region.conjugate_gradient` with
       :func:`~rlviz.fn.trust_region.fisher_vector_product` of :func:`mean_kl_torch`
       (plus ``damping``); with no damping CG stays in the range of the singular :math:`F`;
    3. full step :math:`\beta x`, :math:`\beta` from :func:`~rlviz.fn.trust_region.trpo_step_size`;
    4. :func:`~rlviz.fn.trust_region.backtracking_line_search` on the exact mean KL and the
       surrogate improvement.

    Returns a dict: ``theta`` (new flat logits), ``fraction``, ``kl`` (exact mean KL of the
    accepted step, 0 if none), ``improvement`` of :math:`L`, ``cg_residual`` (last CG residual
    norm), ``residuals`` (all of them), ``tries``.
    """
    delta = validate.positive("delta", delta)
    th = torch.tensor(old.theta, dtype=DTYPE, requires_grad=True)
    (g,) = torch.autograd.grad(surrogate_torch(old, th), th)
    if float(torch.linalg.vector_norm(g)) <= 1e-12:  # at a stationary point: nothing to do
        return {
            "theta": old.theta.copy(),
            "fraction": 0.0,
            "kl": 0.0,
            "improvement": 0.0,
            "cg_residual": 0.0,
            "residuals": [],
            "tries": 0,
        }
    p = th.detach().clone().requires_grad_(True)
    x, res = conjugate_gradient(
        lambda v: fisher_vector_product(lambda: mean_kl_torch(old, p), [p], v, damping=damping),
        g,
        iters=cg_iters,
        tol=1e-12,
    )
    step = trpo_step_size(g, x, delta) * x
    theta_old = torch.tensor(old.theta, dtype=DTYPE)
    frac, info = backtracking_line_search(
        step,
        lambda t: surrogate_torch(old, t) - old.J,
        lambda t: mean_kl_torch(old, t),
        delta,
        max_backtracks=max_backtracks,
        theta_old=theta_old,
    )
    j = info["accepted"]
    new = (theta_old + frac * step).numpy() if j is not None else old.theta.copy()
    return {
        "theta": new,
        "fraction": frac,
        "kl": info["kls"][j] if j is not None else 0.0,
        "improvement": info["improvements"][j] if j is not None else 0.0,
        "cg_residual": res[-1] if res else 0.0,
        "residuals": res,
        "tries": len(info["fractions"]),
    }


def tabular_trpo(mdp: TabularMDP, theta0, delta: float, n_iters: int, **step_kwargs) -> dict:
    r"""Iterate :func:`tabular_trpo_step` from ``theta0``; exact :math:`J` after every step.

    Returns arrays of length ``n_iters + 1`` (``J``, starting with :math:`J(\theta_0)`) and
    ``n_iters`` (``kl``, ``fraction``, ``cg_residual``, ``improvement``), and the final
    ``theta`` (flat).
    """
    n = validate.positive("n_iters", n_iters, integer=True)
    old = old_policy(mdp, theta0)
    hist = {"J": [old.J], "kl": [], "fraction": [], "cg_residual": [], "improvement": []}
    for _ in range(n):
        with torch_threads(1):
            out = tabular_trpo_step(old, delta, **step_kwargs)
        old = old_policy(mdp, out["theta"])
        hist["J"].append(old.J)
        for k in ("kl", "fraction", "cg_residual", "improvement"):
            hist[k].append(out[k])
    res = {k: np.asarray(v) for k, v in hist.items()}
    res["theta"] = old.theta
    return res
