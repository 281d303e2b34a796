"""The settings and runs of chapter 5 that its identities, figures and notebook share."""

from __future__ import annotations

import numpy as np

from rlviz.experiments.corridor_settings import book_setting
from rlviz.tabular.mdp import finite_horizon_objective
from rlviz.tabular.pg_estimators import (
    optimal_baseline,
    per_parameter_baseline_estimates,
    reward_to_go_estimates,
    total_variance,
)
from rlviz.tabular.policy_gradient import finite_horizon_values
from rlviz.tabular.trajectories import enumerate_trajectories

BASELINES = ("none", "constant b = J_H", "V_t(s)", "optimal b*_{t,i}")


def baseline_estimates(tr, mdp, theta, pi, H, name: str) -> np.ndarray:
    """Per-trajectory estimates ``(M, S*A)`` of sum_t gamma^t (G_t - b) psi_t for a named baseline.

    ``tr`` may be enumerated or sampled; the baselines themselves are exact.
    """
    g = mdp.gamma
    if name == "none":
        return reward_to_go_estimates(tr, pi, g)
    if name == "constant b = J_H":
        return reward_to_go_estimates(
            tr, pi, g, baseline=np.full(mdp.n_states, finite_horizon_objective(mdp, pi, H))
        )
    if name == "V_t(s)":
        return reward_to_go_estimates(tr, pi, g, baseline=finite_horizon_values(mdp, pi, H)[0])
    if name == "optimal b*_{t,i}":  # b* is exact, from every trajectory; tr may be samples
        b = optimal_baseline(enumerate_trajectories(mdp, pi, H), pi, g)
        return per_parameter_baseline_estimates(tr, pi, g, b)
    raise ValueError(f"baseline must be one of {BASELINES}, got {name!r}")


def variance_table(gamma: float = 0.9) -> dict:
    """Exact total variance tr Cov of the reward-to-go estimator under each baseline (corridor)."""
    mdp, theta, pi, H = book_setting(gamma)
    tr = enumerate_trajectories(mdp, pi, H)
    return {
        name: total_variance(tr, baseline_estimates(tr, mdp, theta, pi, H, name))
        for name in BASELINES
    }
