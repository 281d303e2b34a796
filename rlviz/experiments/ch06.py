"""The settings and runs of chapter 6 that its identities, figures and notebook share."""

from __future__ import annotations

from rlviz.experiments.corridor_settings import book_setting
from rlviz.tabular.pg_estimators import (
    advantage_estimate_moments,
    advantage_estimates,
    reward_to_go_estimates,
    total_variance,
)
from rlviz.tabular.policy_gradient import finite_horizon_values
from rlviz.tabular.trajectories import enumerate_trajectories


def advantage_setting(gamma: float = 0.9) -> dict:
    """The corridor's enumerated trajectories with V_t, Q_t, A_t and the moments of G_t - V_t(s_t)."""
    mdp, theta, pi, H = book_setting(gamma)
    tr = enumerate_trajectories(mdp, pi, H)
    V, Q = finite_horizon_values(mdp, pi, H)
    prob, mean, var = advantage_estimate_moments(tr, mdp.gamma, V, mdp.n_actions)
    return {
        "mdp": mdp,
        "theta": theta,
        "pi": pi,
        "H": H,
        "tr": tr,
        "V": V,
        "Q": Q,
        "A": Q - V[..., None],
        "prob": prob,
        "mean": mean,
        "var": var,
    }


def estimator_variances(gamma: float = 0.9) -> dict:
    """Exact tr Cov of: G_t (no baseline), G_t - V_t(s_t), and the true A_t(s_t, a_t)."""
    s = advantage_setting(gamma)
    tr, pi, g = s["tr"], s["pi"], s["mdp"].gamma
    return {
        "G_t": total_variance(tr, reward_to_go_estimates(tr, pi, g)),
        "G_t - V_t(s_t)": total_variance(tr, reward_to_go_estimates(tr, pi, g, baseline=s["V"])),
        "A_t(s_t, a_t)": total_variance(tr, advantage_estimates(tr, pi, g, s["A"])),
    }
