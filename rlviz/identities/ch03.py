"""Chapter 3: the policy gradient and the log-derivative trick.

Setting: the corridor (:func:`rlviz.tabular.episodic.corridor`) with softmax logits
:data:`rlviz.experiments.corridor_settings.THETA`, episodes cut at
:data:`~rlviz.experiments.corridor_settings.HORIZON` steps; the true gradient is autograd of the
exact :math:`J_H(\\theta)`.
"""

from __future__ import annotations

import numpy as np

from rlviz.experiments.ch03 import mc_error_curve, mc_estimates
from rlviz.experiments.corridor_settings import (
    SETTINGS_DETAIL,
    book_setting,
    enumerated_settings,
    settings,
)
from rlviz.fn.stats import sample_mean_se, z_scores
from rlviz.tabular.pg_estimators import (
    expectation,
    past_reward_estimates,
    reward_to_go_estimates,
    total_return_estimates,
)
from rlviz.tabular.policy_gradient import exact_gradient, score_table, score_table_autograd
from rlviz.verify import Measure, identity


def _max_err_vs_gradient(estimator) -> float:
    errs = [
        np.abs(expectation(tr, estimator(tr, pi, mdp.gamma)) - g).max()
        for mdp, _, pi, _, tr, g in enumerated_settings()
    ]
    return float(max(errs))


@identity(
    "ch3.score_closed_form",
    chapter=3,
    title="softmax score grad log pi(a|s) = onehot(a) - pi(.|s): closed form = autograd",
)
def score_closed_form() -> Measure:
    errs = [
        np.abs(score_table(pi) - score_table_autograd(theta)).max()
        for _, theta, pi, _ in settings()
    ]
    return Measure(float(max(errs)), "corridor + 5 random logit tables")


@identity(
    "ch3.score_mean_zero",
    chapter=3,
    kind="sanity",
    title="E_a~pi[grad log pi(a|s)] = 0 in every state",
)
def score_mean_zero() -> Measure:
    errs = [
        np.abs(np.einsum("sa,sak->sk", pi, score_table(pi))).max() for _, _, pi, _ in settings()
    ]
    return Measure(float(max(errs)), "corridor + 5 random policies")


@identity(
    "ch3.total_return_exact",
    chapter=3,
    title="E[G_0 sum_t grad log pi] (enumeration) = autograd grad J_H",
)
def total_return_exact() -> Measure:
    return Measure(_max_err_vs_gradient(total_return_estimates), SETTINGS_DETAIL)


@identity(
    "ch3.past_rewards_zero",
    chapter=3,
    title="causality: E[(sum_{k<t} gamma^k r_k) grad log pi(a_t|s_t)] = 0",
)
def past_rewards_zero() -> Measure:
    errs = [
        np.abs(expectation(tr, past_reward_estimates(tr, pi, mdp.gamma))).max()
        for mdp, _, pi, _, tr, _ in enumerated_settings()
    ]
    return Measure(float(max(errs)), SETTINGS_DETAIL)


@identity(
    "ch3.reward_to_go_exact",
    chapter=3,
    title="E[sum_t gamma^t G_t grad log pi] (enumeration) = autograd grad J_H",
)
def reward_to_go_exact() -> Measure:
    return Measure(_max_err_vs_gradient(reward_to_go_estimates), SETTINGS_DETAIL)


@identity(
    "ch3.monte_carlo_gradient",
    chapter=3,
    kind="statistical",
    tol=4.0,
    title="Monte-Carlo REINFORCE and reward-to-go within 4 s.e. of grad J_H (every component)",
)
def monte_carlo_gradient() -> Measure:
    mdp, theta, _, H = book_setting()
    g = exact_gradient(mdp, theta, H)
    z = [z_scores(*sample_mean_se(est), g).max() for est in mc_estimates().values()]
    return Measure(float(max(z)), "corridor, gamma=0.9, H=6, N=4000 episodes, seed 0")


@identity(
    "ch3.reward_to_go_variance",
    chapter=3,
    kind="bound",
    tol=1.0,
    statistic="tr Cov(reward-to-go) / tr Cov(total return)",
    title="reward-to-go has the smaller variance (measured on samples)",
)
def reward_to_go_variance() -> Measure:
    est = mc_estimates()
    tr = {k: float(np.trace(np.cov(v, rowvar=False))) for k, v in est.items()}
    return Measure(
        tr["reward-to-go"] / tr["total return"], "corridor, gamma=0.9, H=6, N=4000 episodes, seed 0"
    )


@identity(
    "ch3.monte_carlo_rate",
    chapter=3,
    kind="statistical",
    tol=0.1,
    statistic="max |fitted slope + 1/2|",
    title="Monte-Carlo gradient error shrinks like N^-1/2 (log-log slope, both estimators)",
)
def monte_carlo_rate() -> Measure:
    from rlviz.fn.stats import loglog_slope

    curve = mc_error_curve()
    slopes = {k: loglog_slope(curve["ns"], v)[0] for k, v in curve.items() if k != "ns"}
    dev = max(abs(s + 0.5) for s in slopes.values())
    shown = ", ".join(f"{k} {s:.2f}" for k, s in slopes.items())
    return Measure(dev, f"slopes: {shown}; N = 10..10000, 20 replicates, seed 1")
