"""The settings and runs of chapter 3 that its identities, figures and notebook share."""

from __future__ import annotations

import numpy as np

from rlviz.tabular.episodic import corridor, random_episodic_mdp
from rlviz.tabular.pg_estimators import reward_to_go_estimates, total_return_estimates
from rlviz.tabular.policy_gradient import exact_gradient, softmax_policy
from rlviz.tabular.trajectories import enumerate_trajectories, sample_trajectories

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


def settings():
    return [book_setting(g) for g in GAMMAS] + random_settings()


def enumerated_settings():
    """Each setting of :func:`settings` with its enumerated trajectories and exact grad J_H:
    yields ``(mdp, theta, pi, H, tr, grad)``."""
    for mdp, theta, pi, H in settings():
        yield mdp, theta, pi, H, enumerate_trajectories(mdp, pi, H), exact_gradient(mdp, theta, H)


SETTINGS_DETAIL = "corridor H=6, gamma in {0.5, 0.9, 1} + 5 random MDPs (S=4, A=3, H=3)"


def mc_estimates(n: int = 4000, seed: int = 0, gamma: float = 0.9) -> dict:
    """Seeded Monte-Carlo estimates of both estimators: name -> (N, SA) array."""
    mdp, _, pi, H = book_setting(gamma)
    tr = sample_trajectories(mdp, pi, n, H, seed=seed)
    return {
        "total return": total_return_estimates(tr, pi, mdp.gamma),
        "reward-to-go": reward_to_go_estimates(tr, pi, mdp.gamma),
    }


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
    for name, fn in (
        ("total return", total_return_estimates),
        ("reward-to-go", reward_to_go_estimates),
    ):
        est = fn(tr, pi, mdp.gamma).reshape(replicates, n_max, -1)
        csum = np.cumsum(est, axis=1)
        err = [np.sqrt(np.mean(np.sum((csum[:, n - 1] / n - g) ** 2, axis=1))) for n in ns]
        out[name] = np.array(err)
    return {"ns": ns, **out}
