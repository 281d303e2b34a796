"""Chapter 4: the discounted state distribution, the policy gradient theorem, and dropping gamma^t.

Setting: the corridor (episodic) in the discounted infinite-horizon reading, solved by linear
algebra; the true gradient is autograd of :math:`J = \\rho_0^\\top (I - \\gamma P_\\pi)^{-1} r_\\pi`.
"""

from __future__ import annotations

import numpy as np

from rlviz.experiments.ch04 import DETAIL, notes_comparison, settings
from rlviz.experiments.corridor_settings import THETA
from rlviz.fn.stats import sample_mean_se, z_scores
from rlviz.tabular.episodic import corridor
from rlviz.tabular.mdp import discounted_state_distribution, policy_transition
from rlviz.tabular.pg_estimators import reward_to_go_estimates
from rlviz.tabular.policy_gradient import (
    exact_gradient,
    exact_hessian,
    notes_direction,
    pg_theorem_rhs,
    softmax_policy,
)
from rlviz.tabular.trajectories import sample_trajectories
from rlviz.verify import Measure, identity


def discounted_series(mdp, pi, f, tol: float = 1e-15) -> float:
    r""":math:`\mathbb E[\sum_t \gamma^t f(s_t)] = \sum_t \gamma^t \rho_0^\top P_\pi^t f`, summed
    until the tail is below ``tol``.

    A power series, computed independently of the linear solve behind :math:`d_\gamma`. The
    tail after step :math:`T` is at most :math:`\gamma^T \max|f| / (1-\gamma)`.
    """
    P_pi = policy_transition(mdp, pi)
    p, total, t = mdp.rho0.copy(), 0.0, 0
    bound = np.abs(f).max() / (1 - mdp.gamma)
    while mdp.gamma**t * bound > tol:
        total += mdp.gamma**t * float(p @ f)
        p = p @ P_pi
        t += 1
    return total


@identity(
    "ch4.d_sums_to_one",
    chapter=4,
    kind="sanity",
    title="the discounted state distribution d_gamma sums to 1",
)
def d_sums_to_one() -> Measure:
    errs = [
        abs(discounted_state_distribution(m, softmax_policy(th)).sum() - 1) for m, th in settings()
    ]
    return Measure(float(max(errs)), DETAIL)


@identity(
    "ch4.discounted_sum_as_d",
    chapter=4,
    title="E[sum_t gamma^t f(s_t)] (power series) = E_{s~d}[f(s)] / (1 - gamma) (solve)",
)
def discounted_sum_as_d() -> Measure:
    rng = np.random.default_rng(5)
    errs = []
    for m, th in settings():
        pi = softmax_policy(th)
        f = rng.normal(size=m.n_states)
        lhs = discounted_series(m, pi, f)
        rhs = discounted_state_distribution(m, pi) @ f / (1 - m.gamma)
        errs.append(abs(lhs - rhs))
    return Measure(float(max(errs)), DETAIL + ", random f")


@identity(
    "ch4.policy_gradient_theorem",
    chapter=4,
    title="grad J (autograd of the linear solve) = E_{s~d,a~pi}[Q grad log pi] / (1 - gamma)",
)
def policy_gradient_theorem_check() -> Measure:
    errs = [
        np.abs(exact_gradient(m, th) - pg_theorem_rhs(m, softmax_policy(th))).max()
        for m, th in settings()
    ]
    return Measure(float(max(errs)), DETAIL)


@identity(
    "ch4.hessian_symmetric",
    chapter=4,
    title="a true gradient has a symmetric Jacobian: ||Hess J - Hess J^T|| / ||Hess J|| = 0",
    statistic="max relative asymmetry",
)
def hessian_symmetric() -> Measure:
    errs = []
    for m, th in settings(gammas=(0.5, 0.9, 0.99), n_random=2):
        hs = exact_hessian(m, th)
        errs.append(np.linalg.norm(hs - hs.T) / np.linalg.norm(hs))
    return Measure(float(max(errs)), "corridor, gamma in {0.5, 0.9, 0.99} + 2 random episodic MDPs")


@identity(
    "ch4.notes_direction_not_gradient",
    chapter=4,
    kind="bound",
    tol=0.01,
    at_least=True,
    statistic="min over gamma of ||Jac - Jac^T|| / ||Jac||",
    title="gamma^t dropped: Jacobian not symmetric, so not the gradient of any function",
)
def notes_direction_not_gradient() -> Measure:
    rows = notes_comparison()
    worst = min(r["asymmetry"] for r in rows)
    shown = ", ".join(f"{r['gamma']}: {r['asymmetry']:.3f}" for r in rows)
    return Measure(worst, f"||Jac - Jac^T||/||Jac|| by gamma: {shown} (corridor)")


@identity(
    "ch4.notes_estimator_mc",
    chapter=4,
    kind="statistical",
    tol=4.0,
    title="Monte-Carlo E[sum_t G_t grad log pi] (no gamma^t) within 4 s.e. of eta_1 pi A",
)
def notes_estimator_mc() -> Measure:
    m = corridor(0.8)
    pi = softmax_policy(THETA)
    H = 100  # P(episode longer than H) < 1e-15 here (spectral radius of P_pi on live states 0.69)
    tr = sample_trajectories(m, pi, 10000, H, seed=7)
    mean, se = sample_mean_se(reward_to_go_estimates(tr, pi, m.gamma, discount_t=False))
    alive_at_end = float(tr.alive[:, -1].mean())
    z = z_scores(mean, se, notes_direction(m, THETA))
    return Measure(
        float(z.max()),
        f"corridor, gamma=0.8, N=10000 episodes (cut at {H} steps; "
        f"{alive_at_end:.0%} still running), seed 7",
    )
