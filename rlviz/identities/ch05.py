"""Chapter 5: baselines. Same setting as chapter 3 (corridor, episodes cut at H = 6 steps)."""

from __future__ import annotations

import numpy as np

from rlviz.experiments.ch05 import BASELINES, baseline_estimates
from rlviz.experiments.corridor_settings import SETTINGS_DETAIL, enumerated_settings
from rlviz.tabular.pg_estimators import (
    action_baseline_bias,
    action_baseline_estimates,
    expectation,
    optimal_baseline,
    per_parameter_baseline_estimates,
    reward_to_go_estimates,
    score_terms,
)
from rlviz.tabular.policy_gradient import finite_horizon_values
from rlviz.verify import Measure, identity


@identity(
    "ch5.baseline_zero_mean",
    chapter=5,
    title="E[b_t(s_t) grad log pi(a_t|s_t)] = 0 at every t for random b",
)
def baseline_zero_mean() -> Measure:
    rng = np.random.default_rng(6)
    errs = []
    for mdp, _, pi, H, tr, _ in enumerated_settings():
        psi = score_terms(tr, pi)
        for _ in range(3):
            b = rng.normal(scale=5.0, size=(H, mdp.n_states))
            bt = b[np.arange(H)[None, :], tr.states[:, :-1]]
            errs.append(np.abs(expectation(tr, bt[:, :, None] * psi)).max())
    return Measure(float(max(errs)), SETTINGS_DETAIL + "; 3 random b each")


@identity(
    "ch5.baselines_unbiased",
    chapter=5,
    title="E[sum_t gamma^t (G_t - b) grad log pi] = grad J_H for b = 0, J_H, V_t, b*, random",
)
def baselines_unbiased() -> Measure:
    rng = np.random.default_rng(7)
    errs = []
    for mdp, theta, pi, H, tr, g in enumerated_settings():
        ests = [baseline_estimates(tr, mdp, theta, pi, H, name) for name in BASELINES]
        ests.append(
            reward_to_go_estimates(tr, pi, mdp.gamma, baseline=rng.normal(size=(H, mdp.n_states)))
        )
        errs += [np.abs(expectation(tr, e) - g).max() for e in ests]
    return Measure(float(max(errs)), SETTINGS_DETAIL)


@identity(
    "ch5.optimal_baseline_parabola",
    chapter=5,
    title="Var_i(b* + delta) - Var_i(b*) = sum_t delta_{t,i}^2 E[Y_{t,i}^2] >= 0 (b* minimises)",
)
def optimal_baseline_parabola() -> Measure:
    rng = np.random.default_rng(8)
    errs = []
    for mdp, _, pi, H, tr, _ in enumerated_settings():
        b = optimal_baseline(tr, pi, mdp.gamma)
        Y2 = expectation(tr, (mdp.gamma ** np.arange(H)[None, :, None] * score_terms(tr, pi)) ** 2)

        def var(bb, tr=tr, pi=pi, gamma=mdp.gamma):
            e = per_parameter_baseline_estimates(tr, pi, gamma, bb)
            return expectation(tr, (e - expectation(tr, e)) ** 2)

        v0 = var(b)
        for _ in range(3):
            delta = rng.normal(size=b.shape)
            errs.append(np.abs(var(b + delta) - v0 - (delta**2 * Y2).sum(axis=0)).max())
    return Measure(float(max(errs)), SETTINGS_DETAIL + "; 3 random delta each")


@identity(
    "ch5.action_baseline_bias",
    chapter=5,
    title="action-dependent b(s,a): E[estimate] - grad J_H = -E[sum_t gamma^t b grad log pi] (closed form)",
)
def action_baseline_bias_check() -> Measure:
    rng = np.random.default_rng(9)
    errs = []
    for mdp, _theta, pi, H, tr, g in enumerated_settings():
        for b in (
            rng.normal(size=(mdp.n_states, mdp.n_actions)),
            finite_horizon_values(mdp, pi, H)[1],
        ):
            bias = expectation(tr, action_baseline_estimates(tr, pi, mdp.gamma, b)) - g
            errs.append(np.abs(bias - action_baseline_bias(mdp, pi, H, b)).max())
    return Measure(float(max(errs)), SETTINGS_DETAIL + "; b random and b = Q_t")
