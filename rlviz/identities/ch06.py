"""Chapter 6: the advantage form. Same setting as chapter 3 (corridor, episodes cut at H = 6).

With a horizon the values depend on the time left: :math:`V_t, Q_t, A_t` from
:func:`rlviz.tabular.policy_gradient.finite_horizon_values`.
"""

from __future__ import annotations

import numpy as np

from rlviz.experiments.corridor_settings import SETTINGS_DETAIL, enumerated_settings
from rlviz.tabular.pg_estimators import advantage_estimate_moments, advantage_estimates, expectation
from rlviz.tabular.policy_gradient import finite_horizon_values
from rlviz.verify import Measure, identity


@identity(
    "ch6.advantage_form",
    chapter=6,
    title="E[sum_t gamma^t A_t(s_t,a_t) grad log pi] (enumeration) = autograd grad J_H",
)
def advantage_form() -> Measure:
    errs = []
    for mdp, _, pi, H, tr, g in enumerated_settings():
        V, Q = finite_horizon_values(mdp, pi, H)
        e = expectation(tr, advantage_estimates(tr, pi, mdp.gamma, Q - V[..., None]))
        errs.append(np.abs(e - g).max())
    return Measure(float(max(errs)), SETTINGS_DETAIL)


@identity(
    "ch6.advantage_estimate_unbiased",
    chapter=6,
    title="E[G_t - V_t(s_t) | s_t, a_t] = A_t(s_t, a_t) for every t, s, a",
)
def advantage_estimate_unbiased() -> Measure:
    errs, n = [], 0
    for mdp, _, pi, H, tr, _ in enumerated_settings():
        V, Q = finite_horizon_values(mdp, pi, H)
        prob, mean, _ = advantage_estimate_moments(tr, mdp.gamma, V, mdp.n_actions)
        seen = prob > 0
        n += int(seen.sum())
        errs.append(np.abs(mean[seen] - (Q - V[..., None])[seen]).max())
    return Measure(float(max(errs)), SETTINGS_DETAIL + f"; {n} (t, s, a) triples")
