"""The runs of chapter 3 that its identities, figures and notebook share: Monte-Carlo estimates
of the gradient on the corridor (:func:`rlviz.experiments.corridor_settings.book_setting`)."""

from __future__ import annotations

import numpy as np

from rlviz.experiments.corridor_settings import book_setting
from rlviz.tabular.pg_estimators import reward_to_go_estimates, total_return_estimates
from rlviz.tabular.policy_gradient import exact_gradient
from rlviz.tabular.trajectories import sample_trajectories

MC_NS = (10, 30, 100, 300, 1000, 3000, 10000)


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
