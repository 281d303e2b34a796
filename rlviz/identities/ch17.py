r"""Chapter 17: a sampler that is not the learner; importance sampling, truncated (TIS) and
masked (MIS), at token and sequence level, exactly.

The settings are :mod:`rlviz.experiments.ch17`'s (chapter 14's random trees, the sampler's
logits moved by ``delta`` along a random direction); the moments are
:mod:`rlviz.tabular.sampler_mismatch`'s, enumerating every answer (float64). One answer per
prompt, advantage :math:`r - \mathbb E_\mu[r]`; "relative bias" is
:math:`\|\mathbb E_\mu[\hat g] - \nabla J\| / \|\nabla J\|`.
"""

from __future__ import annotations

import math

import numpy as np

from rlviz._threads import torch_threads
from rlviz.experiments.ch17 import mismatch_setting, moments
from rlviz.tabular.sampler_mismatch import (
    estimator_moments,
    max_weights,
    sequence_truncation_bias,
)
from rlviz.verify import Measure, identity

SEEDS = (0, 1)
OFF_DELTAS = (0.25, 0.5, 1.0)
CASES = "2 random trees (P=2, 15 answers) x delta in {0.25, 0.5, 1}"


@identity(
    "ch17.is_unbiased",
    chapter=17,
    title="sequence-level IS, and TIS / MIS with C = inf or C >= max pi/mu: E_mu[g_hat] = grad J",
)
def is_unbiased() -> Measure:
    errs = []
    with torch_threads(1):
        for seed in SEEDS:
            for delta in OFF_DELTAS:
                ans, theta, theta_mu, r = mismatch_setting(delta, seed)
                top = max_weights(theta, theta_mu, ans)["sequence"] * (1 + 1e-9)  # C >= max rho
                runs = [("is", math.inf)] + [
                    (c, cap) for c in ("tis", "mis") for cap in (math.inf, top)
                ]
                for c, cap in runs:
                    m = estimator_moments(theta, theta_mu, ans, r, c, "sequence", cap)
                    errs.append(np.abs(m["bias"]).max())
    return Measure(float(max(errs)), CASES)


@identity(
    "ch17.on_policy_agree",
    chapter=17,
    title="mu = pi: naive, IS, TIS and MIS at token and sequence level (C in {1, 2, inf}) = grad J",
)
def on_policy_agree() -> Measure:
    errs = []
    for seed in SEEDS:
        for c in ("none", "is", "tis", "mis"):
            for lv in ("token", "sequence"):
                for cap in (1.0, 2.0, math.inf):
                    errs.append(np.abs(moments(0.0, c, lv, cap, seed)["bias"]).max())
    return Measure(float(max(errs)), "2 random trees, delta = 0")


@identity(
    "ch17.truncation_bias_formula",
    chapter=17,
    title="sequence level: E_mu[min(rho,C) s] - grad J = -E_pi[(1 - C/rho)+ s]; MIS: -E_pi[1(rho>C) s]",
)
def truncation_bias_formula() -> Measure:
    errs = []
    with torch_threads(1):
        for seed in SEEDS:
            for delta in (0.5, 1.0):
                ans, theta, theta_mu, r = mismatch_setting(delta, seed)
                for c in ("tis", "mis"):
                    for cap in (0.8, 1.5, 3.0):
                        m = estimator_moments(theta, theta_mu, ans, r, c, "sequence", cap)
                        b = sequence_truncation_bias(theta, theta_mu, ans, r, c, cap)
                        errs.append(np.abs(m["bias"] - b).max())
    return Measure(float(max(errs)), "2 random trees x delta in {0.5, 1} x C in {0.8, 1.5, 3}")


@identity(
    "ch17.naive_biased",
    chapter=17,
    kind="bound",
    tol=0.1,
    at_least=True,
    statistic="relative bias of the naive loss",
    title="answers from mu, gradient as if from pi (no correction): biased",
)
def naive_biased() -> Measure:
    return Measure(moments(0.5, "none", "token")["rel_bias"], "tree 0, delta = 0.5")


@identity(
    "ch17.token_is_biased",
    chapter=17,
    kind="bound",
    tol=0.1,
    at_least=True,
    statistic="relative bias of token-level IS, C = inf",
    title="token-level IS without a cap is still biased (prefixes come from mu)",
)
def token_is_biased() -> Measure:
    return Measure(moments(0.5, "is", "token")["rel_bias"], "tree 0, delta = 0.5")


@identity(
    "ch17.finite_cap_biased",
    chapter=17,
    kind="bound",
    tol=0.01,
    at_least=True,
    statistic="min over TIS, MIS of the relative bias at C = 2",
    title="sequence-level TIS and MIS with a cap below max pi/mu are biased",
)
def finite_cap_biased() -> Measure:
    ans, theta, theta_mu, _ = mismatch_setting(0.5)
    top = max_weights(theta, theta_mu, ans)["sequence"]
    bias = min(moments(0.5, c, "sequence", 2.0)["rel_bias"] for c in ("tis", "mis"))
    return Measure(bias, f"tree 0, delta = 0.5, max pi/mu = {top:.2f}")


@identity(
    "ch17.truncation_lowers_variance",
    chapter=17,
    kind="bound",
    tol=1.0,
    statistic="max over C of tr Var[TIS_C] / tr Var[IS]",
    title="sequence-level TIS with a cap below max pi/mu has less variance than untruncated IS",
)
def truncation_lowers_variance() -> Measure:
    ratios = []
    with torch_threads(1):
        for delta in (0.5, 1.0):
            ans, theta, theta_mu, r = mismatch_setting(delta)
            v_is = estimator_moments(theta, theta_mu, ans, r, "is", "sequence")["var"]
            for cap in (0.5, 1.0, 2.0, 3.0):
                v = estimator_moments(theta, theta_mu, ans, r, "tis", "sequence", cap)["var"]
                ratios.append(v / v_is)
    return Measure(
        float(max(ratios)), "tree 0, delta in {0.5, 1}, C in {0.5, 1, 2, 3} (below max pi/mu)"
    )
