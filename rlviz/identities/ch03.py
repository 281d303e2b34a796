"""Chapter 3: the policy gradient and the log-derivative trick.

Setting: the corridor (:func:`rlviz.tabular.episodic.corridor`) with softmax logits
:data:`THETA`, episodes cut at :data:`HORIZON` steps; the true gradient is autograd of the
exact :math:`J_H(\\theta)`.
"""

from __future__ import annotations

import numpy as np

from rlviz.tabular.episodic import corridor, random_episodic_mdp
from rlviz.tabular.pg_estimators import (expectation, past_reward_estimates,
                                         reward_to_go_estimates, total_return_estimates)
from rlviz.fn.stats import sample_mean_se
from rlviz.tabular.policy_gradient import exact_gradient, score_table, score_table_autograd, softmax_policy
from rlviz.tabular.trajectories import enumerate_trajectories, sample_trajectories
from rlviz.fn.stats import z_scores
from rlviz.verify import Measure, identity

THETA = np.array([[0.3, -0.2], [-0.4, 0.5], [0.2, 0.1], [0.0, 0.0]])
HORIZON = 6
GAMMAS = (0.5, 0.9, 1.0)
MC_NS = (10, 30, 100, 300, 1000, 3000, 10000)


def book_setting(gamma: float = 0.9):
    """The chapters' setting: (corridor MDP, logits theta, policy pi, horizon H)."""
    mdp = corridor(gamma)
    return mdp, THETA, softmax_policy(THETA), HORIZON


def random_settings(n: int = 5, seed: int = 0, horizon: int = 3):
    """``n`` random episodic MDPs (S=4, A=3) with random logits, for the identity rows."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        mdp = random_episodic_mdp(rng, 4, 3, float(rng.choice([0.5, 0.9, 1.0])))
        theta = rng.normal(size=(4, 3))
        out.append((mdp, theta, softmax_policy(theta), horizon))
    return out


def _settings():
    return [book_setting(g) for g in GAMMAS] + random_settings()


def enumerated_settings():
    """Each setting of :func:`_settings` with its enumerated trajectories and exact grad J_H:
    yields ``(mdp, theta, pi, H, tr, grad)``."""
    for mdp, theta, pi, H in _settings():
        yield mdp, theta, pi, H, enumerate_trajectories(mdp, pi, H), exact_gradient(mdp, theta, H)


def _max_err_vs_gradient(estimator) -> float:
    errs = [np.abs(expectation(tr, estimator(tr, pi, mdp.gamma)) - g).max()
            for mdp, _, pi, _, tr, g in enumerated_settings()]
    return float(max(errs))


SETTINGS_DETAIL = "corridor H=6, gamma in {0.5, 0.9, 1} + 5 random MDPs (S=4, A=3, H=3)"


@identity("ch3.score_closed_form", chapter=3,
          title="softmax score grad log pi(a|s) = onehot(a) - pi(.|s): closed form = autograd")
def score_closed_form() -> Measure:
    errs = [np.abs(score_table(pi) - score_table_autograd(theta)).max()
            for _, theta, pi, _ in _settings()]
    return Measure(float(max(errs)), "corridor + 5 random logit tables")


@identity("ch3.score_mean_zero", chapter=3, title="E_a~pi[grad log pi(a|s)] = 0 in every state")
def score_mean_zero() -> Measure:
    errs = [np.abs(np.einsum("sa,sak->sk", pi, score_table(pi))).max()
            for _, _, pi, _ in _settings()]
    return Measure(float(max(errs)), "corridor + 5 random policies")


@identity("ch3.total_return_exact", chapter=3,
          title="E[G_0 sum_t grad log pi] (enumeration) = autograd grad J_H")
def total_return_exact() -> Measure:
    return Measure(_max_err_vs_gradient(total_return_estimates), SETTINGS_DETAIL)


@identity("ch3.past_rewards_zero", chapter=3,
          title="causality: E[(sum_{k<t} gamma^k r_k) grad log pi(a_t|s_t)] = 0")
def past_rewards_zero() -> Measure:
    errs = [np.abs(expectation(tr, past_reward_estimates(tr, pi, mdp.gamma))).max()
            for mdp, _, pi, _, tr, _ in enumerated_settings()]
    return Measure(float(max(errs)), SETTINGS_DETAIL)


@identity("ch3.reward_to_go_exact", chapter=3,
          title="E[sum_t gamma^t G_t grad log pi] (enumeration) = autograd grad J_H")
def reward_to_go_exact() -> Measure:
    return Measure(_max_err_vs_gradient(reward_to_go_estimates), SETTINGS_DETAIL)


def mc_estimates(n: int = 4000, seed: int = 0, gamma: float = 0.9) -> dict:
    """Seeded Monte-Carlo estimates of both estimators: name -> (N, K) array."""
    mdp, _, pi, H = book_setting(gamma)
    tr = sample_trajectories(mdp, pi, n, H, seed=seed)
    return {"total return": total_return_estimates(tr, pi, mdp.gamma),
            "reward-to-go": reward_to_go_estimates(tr, pi, mdp.gamma)}



@identity("ch3.monte_carlo_gradient", chapter=3, kind="statistical", tol=4.0,
          title="Monte-Carlo REINFORCE and reward-to-go within 4 s.e. of grad J_H (every component)")
def monte_carlo_gradient() -> Measure:
    mdp, theta, _, H = book_setting()
    g = exact_gradient(mdp, theta, H)
    z = [z_scores(*sample_mean_se(est), g).max() for est in mc_estimates().values()]
    return Measure(float(max(z)), "corridor, gamma=0.9, H=6, N=4000 episodes, seed 0")


@identity("ch3.reward_to_go_variance", chapter=3, kind="bound", tol=1.0,
          statistic="tr Cov(reward-to-go) / tr Cov(total return)",
          title="reward-to-go has the smaller variance (measured on samples)")
def reward_to_go_variance() -> Measure:
    est = mc_estimates()
    tr = {k: float(np.trace(np.cov(v, rowvar=False))) for k, v in est.items()}
    return Measure(tr["reward-to-go"] / tr["total return"],
                   "corridor, gamma=0.9, H=6, N=4000 episodes, seed 0")


def mc_error_curve(ns=MC_NS, replicates: int = 20, seed: int = 1, gamma: float = 0.9) -> dict:
    r"""RMS over replicates of :math:`\|\hat g_N - \nabla J_H\|` for each N, per estimator.

    Each replicate samples ``max(ns)`` episodes once and uses nested prefixes.
    """
    mdp, theta, pi, H = book_setting(gamma)
    g = exact_gradient(mdp, theta, H)
    ns = np.asarray(ns)
    n_max = int(ns.max())
    tr = sample_trajectories(mdp, pi, replicates * n_max, H, seed=seed)
    out = {}
    for name, fn in (("total return", total_return_estimates),
                     ("reward-to-go", reward_to_go_estimates)):
        est = fn(tr, pi, mdp.gamma).reshape(replicates, n_max, -1)
        csum = np.cumsum(est, axis=1)
        err = [np.sqrt(np.mean(np.sum((csum[:, n - 1] / n - g) ** 2, axis=1))) for n in ns]
        out[name] = np.array(err)
    return {"ns": ns, **out}


@identity("ch3.monte_carlo_rate", chapter=3, kind="statistical", tol=0.1,
          statistic="max |fitted slope + 1/2|",
          title="Monte-Carlo gradient error shrinks like N^-1/2 (log-log slope, both estimators)")
def monte_carlo_rate() -> Measure:
    from rlviz.fn.stats import loglog_slope

    curve = mc_error_curve()
    slopes = {k: loglog_slope(curve["ns"], v)[0] for k, v in curve.items() if k != "ns"}
    dev = max(abs(s + 0.5) for s in slopes.values())
    shown = ", ".join(f"{k} {s:.2f}" for k, s in slopes.items())
    return Measure(dev, f"slopes: {shown}; N = 10..10000, 20 replicates, seed 1")
