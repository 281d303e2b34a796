"""Chapter 9: the backward recursion, its special cases, and time-limit truncation."""

from __future__ import annotations

import numpy as np

from rlviz.experiments.random_rollouts import SETTINGS, random_rollout
from rlviz.fn.returns import (
    Transitions,
    discounted_returns,
    gae,
    gae_reference,
    lambda_returns,
    td_errors,
)
from rlviz.tabular.examples import two_state_chain
from rlviz.tabular.mdp import state_values
from rlviz.tabular.truncation import (
    expected_targets,
    fitted_fixed_point,
    target_bias,
    targets_by_enumeration,
)
from rlviz.verify import Measure, identity

CHAIN_POLICY = np.array([[0.7, 0.3], [0.4, 0.6]])
TIME_LIMIT = 6


def _returns(ro: dict, gamma: float) -> np.ndarray:
    return discounted_returns(
        ro["r_t"],
        v_T=ro["v_T"],
        terminated_t=ro["terminated_t"],
        truncated_t=ro["truncated_t"],
        v_final_t=ro["v_final_t"],
        gamma=gamma,
    )


@identity(
    "ch9.fast_equals_reference",
    chapter=9,
    title="blocked GAE = the plain backward loop (reference)",
)
def fast_equals_reference() -> Measure:
    errs = []
    for seed, (T, N) in enumerate([(1, 4), (7, 4), (40, 5), (333, 4)]):
        for gamma, lam in SETTINGS:
            ro = random_rollout(seed, T=T, N=N, p_end=0.05)
            errs.append(
                np.abs(
                    gae(Transitions(**ro), gamma=gamma, lam=lam)
                    - gae_reference(Transitions(**ro), gamma=gamma, lam=lam)
                ).max()
            )
    return Measure(float(max(errs)), "T in {1, 7, 40, 333}, 4 (gamma, lambda) settings")


@identity("ch9.lambda_zero", chapter=9, title="lambda = 0: GAE_t = delta_t")
def lambda_zero() -> Measure:
    errs = []
    for seed, (gamma, _) in enumerate(SETTINGS):
        ro = random_rollout(30 + seed)
        delta = td_errors(**ro, gamma=gamma)
        errs.append(np.abs(gae(Transitions(**ro), gamma=gamma, lam=0.0) - delta).max())
    return Measure(float(max(errs)), "4 random rollouts")


@identity(
    "ch9.lambda_one", chapter=9, title="lambda = 1: GAE_t = G_t - V(s_t) (bootstrapped return)"
)
def lambda_one() -> Measure:
    errs = []
    for seed, (gamma, _) in enumerate(SETTINGS):
        ro = random_rollout(40 + seed)
        errs.append(
            np.abs(
                gae(Transitions(**ro), gamma=gamma, lam=1.0) - (_returns(ro, gamma) - ro["v_t"])
            ).max()
        )
    return Measure(float(max(errs)), "4 random rollouts")


@identity(
    "ch9.targets_are_lambda_returns",
    chapter=9,
    title="GAE_t + V(s_t) = the lambda-return G^lambda_t",
)
def targets_are_lambda_returns() -> Measure:
    errs = []
    for seed, (gamma, lam) in enumerate(SETTINGS):
        ro = random_rollout(50 + seed)
        errs.append(
            np.abs(
                gae(Transitions(**ro), gamma=gamma, lam=lam)
                + ro["v_t"]
                - lambda_returns(**ro, gamma=gamma, lam=lam)
            ).max()
        )
    return Measure(float(max(errs)), "4 random rollouts")


@identity(
    "ch9.truncation_bootstrap_unbiased",
    chapter=9,
    title="time limit, truncation bootstrapped: E[G^lambda_t | s_t] = V(s_t) at every t",
)
def truncation_bootstrap_unbiased() -> Measure:
    chain = two_state_chain(0.9)
    v = state_values(chain, CHAIN_POLICY)
    errs = []
    for lam in (0.0, 0.5, 0.95, 1.0):
        g = targets_by_enumeration(
            chain, CHAIN_POLICY, v, lam, TIME_LIMIT, truncation_as_termination=False
        )
        errs.append(np.nanmax(np.abs(g - v[None])))
    return Measure(
        float(max(errs)),
        f"two-state chain, gamma=0.9, time limit {TIME_LIMIT}, every episode enumerated",
    )


@identity(
    "ch9.truncation_as_termination_bias",
    chapter=9,
    title="truncation treated as termination: bias = -gamma (gamma lambda)^(H-1-t) P^(H-t) V",
)
def truncation_as_termination_bias() -> Measure:
    chain = two_state_chain(0.9)
    v = state_values(chain, CHAIN_POLICY)
    errs, worst = [], 0.0
    for lam in (0.0, 0.5, 0.95, 1.0):
        g = targets_by_enumeration(
            chain, CHAIN_POLICY, v, lam, TIME_LIMIT, truncation_as_termination=True
        )
        bias = target_bias(chain, CHAIN_POLICY, lam, TIME_LIMIT)
        errs.append(np.nanmax(np.abs(g - v[None] - bias)))
        errs.append(
            np.abs(
                expected_targets(
                    chain, CHAIN_POLICY, v, lam, TIME_LIMIT, truncation_as_termination=True
                )
                - v[None]
                - bias
            ).max()
        )
        worst = max(worst, float(np.abs(bias).max()))
    return Measure(
        float(max(errs)), f"largest bias {worst:.2f} (V ranges {v.min():.2f}..{v.max():.2f})"
    )


@identity(
    "ch9.fitted_values_fixed_point",
    chapter=9,
    title="fitting V on bootstrapped targets converges to V^pi exactly",
)
def fitted_values_fixed_point() -> Measure:
    chain = two_state_chain(0.9)
    v = state_values(chain, CHAIN_POLICY)
    errs, gap = [], 0.0
    for lam in (0.0, 0.95, 1.0):
        errs.append(
            np.abs(
                fitted_fixed_point(chain, CHAIN_POLICY, lam, 10, truncation_as_termination=False)
                - v
            ).max()
        )
        wrong = fitted_fixed_point(chain, CHAIN_POLICY, lam, 10, truncation_as_termination=True)
        gap = max(gap, float(np.abs(wrong - v).max()))
    return Measure(
        float(max(errs)), f"time limit 10; as termination instead: off by up to {gap:.2f}"
    )
