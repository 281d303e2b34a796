r"""Chapter 10: importance sampling and the surrogate objective.

Setting (:mod:`rlviz.experiments.old_policies`): the corridor of chapters 3-4 read as a
discounted MDP (:math:`\gamma = 0.9`) with the old logits
:data:`rlviz.experiments.corridor_settings.THETA`, and random dense MDPs (:math:`S = 5`,
:math:`A = 3`). :math:`J` is the exact linear-solve objective (autograd), :math:`L` the
surrogate :func:`rlviz.tabular.surrogate.surrogate_torch`.
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz._threads import torch_threads
from rlviz.experiments.ch10 import MC_N, autograd_gradient, gradient_gaps, variance_study
from rlviz.experiments.corridor_settings import THETA
from rlviz.experiments.old_policies import DETAIL, GAMMA, book_old, random_olds
from rlviz.fn.stats import loglog_slope
from rlviz.tabular.episodic import corridor
from rlviz.tabular.examples import random_policy
from rlviz.tabular.mdp import discounted_state_distribution, objective
from rlviz.tabular.policy_gradient import DTYPE, exact_gradient, objective_torch, softmax_policy
from rlviz.tabular.surrogate import (
    importance_weighted_means,
    kl_rows,
    line_profile,
    policy_directions,
    surrogate_torch,
)
from rlviz.verify import Measure, identity


@identity(
    "ch10.importance_sampling",
    chapter=10,
    title="E_{a~pi_old}[(pi_new/pi_old) f] = E_{a~pi_new}[f] in every state",
)
def importance_sampling() -> Measure:
    rng = np.random.default_rng(11)
    errs = []
    for _ in range(50):
        S, A = int(rng.integers(1, 6)), int(rng.integers(2, 6))
        lhs, rhs = importance_weighted_means(
            random_policy(rng, S, A), random_policy(rng, S, A), rng.normal(size=(S, A)) * 10
        )
        errs.append(np.abs(lhs - rhs).max())
    return Measure(float(max(errs)), "50 random (pi_old, pi_new, f) tables, S <= 5, A <= 5")


@identity(
    "ch10.performance_difference",
    chapter=10,
    title="J(theta) - J(theta_old) = E_{s~d_theta, a~pi_theta}[A_old(s, a)] / (1 - gamma)",
)
def performance_difference() -> Measure:
    rng = np.random.default_rng(13)
    errs = []
    for old in [book_old()] + random_olds():
        for _ in range(4):
            th = old.theta + rng.normal(size=old.theta.size)
            pi = softmax_policy(th.reshape(old.mdp.n_states, old.mdp.n_actions))
            rhs = discounted_state_distribution(old.mdp, pi) @ (pi * old.adv).sum(axis=1)
            errs.append(abs(objective(old.mdp, pi) - old.J - rhs / (1 - old.mdp.gamma)))
    return Measure(float(max(errs)), DETAIL + ", 4 random new policies each")


@identity(
    "ch10.surrogate_value_at_old", chapter=10, kind="sanity", title="L(theta_old) = J(theta_old)"
)
def surrogate_value_at_old() -> Measure:
    errs = []
    for old in [book_old()] + random_olds():
        th = torch.tensor(old.theta, dtype=DTYPE)
        errs.append(abs(float(surrogate_torch(old, th)) - float(objective_torch(old.mdp, th))))
    return Measure(float(max(errs)), DETAIL)


@identity(
    "ch10.surrogate_gradient_at_old",
    chapter=10,
    title="grad L(theta_old) = grad J(theta_old) (autograd of both)",
)
def surrogate_gradient_at_old() -> Measure:
    errs = []
    with torch_threads(1):
        for old in [book_old()] + random_olds():
            gL = autograd_gradient(lambda th, old=old: surrogate_torch(old, th), old.theta)
            gJ = exact_gradient(old.mdp, old.theta.reshape(old.mdp.n_states, old.mdp.n_actions))
            errs.append(np.abs(gL - gJ).max())
    return Measure(float(max(errs)), DETAIL)


@identity(
    "ch10.gradients_part_away",
    chapter=10,
    kind="bound",
    tol=1e-3,
    at_least=True,
    statistic="min over 4 directions of ||grad J - grad L|| at step 1",
    title="away from theta_old the gradients of J and L differ",
)
def gradients_part_away() -> Measure:
    gaps = gradient_gaps(steps=(1.0,))
    worst = min(float(v["grad_gap"][0]) for v in gaps.values())
    rel = max(float(v["grad_gap"][0]) for v in gaps.values())
    return Measure(
        worst,
        f"corridor; largest gap {rel:.3f}, ||grad J(theta_old)|| = "
        f"{np.linalg.norm(exact_gradient(corridor(GAMMA), THETA)):.3f}",
    )


@identity(
    "ch10.second_order_contact",
    chapter=10,
    kind="bound",
    tol=0.05,
    statistic="max over 4 directions of |slope - 2|",
    title="J - L = O(t^2): log-log slope of |J - L| against the step t is 2",
)
def second_order_contact() -> Measure:
    old = book_old()
    ts = np.geomspace(1e-3, 1e-2, 5)
    slopes = []
    for u in policy_directions(old, 3).values():
        prof = line_profile(old, u, ts)
        slopes.append(loglog_slope(ts, np.abs(prof["J"] - prof["L"]))[0])
    return Measure(
        float(max(abs(s - 2) for s in slopes)),
        f"corridor, t in [0.001, 0.01]; slopes {', '.join(f'{s:.3f}' for s in slopes)}",
    )


@identity(
    "ch10.chi2_is_twice_kl",
    chapter=10,
    kind="bound",
    tol=0.1,
    statistic="max over 4 directions of |slope - 3|",
    title="chi^2(pi_theta || pi_old) = 2 KL(pi_old || pi_theta) + O(t^3): log-log slope of the gap is 3",
)
def chi2_is_twice_kl() -> Measure:
    old = book_old()
    S, A = old.mdp.n_states, old.mdp.n_actions
    ts = np.geomspace(1e-4, 1e-3, 5)
    slopes, ratios = [], []
    for u in policy_directions(old, 3).values():
        gaps = []
        for t in ts:
            new = softmax_policy((old.theta + t * u).reshape(S, A))
            chi2 = float(old.d @ ((new - old.pi) ** 2 / old.pi).sum(axis=1))
            kl = float(old.d @ kl_rows(old.pi, new))
            gaps.append(abs(chi2 - 2 * kl))
            ratios.append(chi2 / (2 * kl))
        slopes.append(loglog_slope(ts, gaps)[0])
    return Measure(
        float(max(abs(s - 3) for s in slopes)),
        f"corridor, d_old-weighted, t in [0.0001, 0.001]; slopes "
        f"{', '.join(f'{s:.2f}' for s in slopes)}; chi^2 / 2 KL within "
        f"{max(abs(r - 1) for r in ratios):.0e} of 1",
    )


@identity(
    "ch10.ratio_estimator_mc",
    chapter=10,
    kind="statistical",
    tol=4.0,
    title="ratio-weighted old-policy samples: mean = L - J_old, variances = exact formulas",
)
def ratio_estimator_mc() -> Measure:
    v = variance_study()
    z = np.concatenate(
        [
            np.abs(v["mc_mean_x"] - v["mean_x"]) / v["se_mean_x"],
            (np.abs(v["mc_var_x"] - v["var_x"]) / v["se_var_x"]),
            (
                np.abs(v["mc_var_rho"] - v["var_rho"])
                / np.where(v["se_var_rho"] > 0, v["se_var_rho"], 1.0)
            ),
        ]
    )
    return Measure(
        float(z.max()),
        f"corridor, {len(v['t'])} steps along the gradient, {MC_N} samples each, seed 12",
    )
