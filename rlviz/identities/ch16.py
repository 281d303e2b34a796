r"""Chapter 16: clipping, entropy and the ratio, exactly.

The settings are :mod:`rlviz.experiments.ch16`'s (and ch14's random trees); the formulas are
:mod:`rlviz.fn.ratios`' and :mod:`rlviz.tabular.entropy_dynamics`'.
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz.experiments.answer_trees import tree_setting
from rlviz.experiments.ch16 import (
    EPS_HIGHS,
    clip_batch,
    clip_cov_entropy_rates,
    clip_entropy_rates,
    entropy_directions,
    expected_ratio_gradient,
    length_weighted_gradient,
    off_policy_theta,
    ratio_variances,
)
from rlviz.fn.ratios import (
    asymmetric_clipped_surrogate,
    clip_stops_gradient,
    dual_clipped_surrogate,
)
from rlviz.fn.stats import angle_and_norm_ratio, loglog_slope
from rlviz.tabular.answer_tree import exact_gradient
from rlviz.tabular.entropy_dynamics import (
    entropy_covariance,
    entropy_derivative,
    first_order_errors,
    policy_gradient_logits,
    raises_entropy,
)
from rlviz.verify import Measure, identity

__all__ = ["CLIP_WIDTHS", "OFF_POLICY_STEPS", "SLOPE_STEPS", "clip_gain", "entropy_slopes"]

CLIP_WIDTHS = ((0.2, 0.2), (0.2, 0.28), (0.1, 0.4))  # (eps_low, eps_high)
OFF_POLICY_STEPS = (0.1, 0.3, 1.0)
SLOPE_STEPS = tuple(np.geomspace(1e-4, 1e-2, 6))


# ---------------------------------------------------------------- clip-higher
@identity(
    "ch16.clip_stops_exactly",
    chapter=16,
    statistic="number of (A, rho) where the predicted and the autograd zero-gradient sets differ",
    title="the asymmetric clip stops exactly A > 0 with rho > 1 + eps_high and A < 0 with "
    "rho < 1 - eps_low",
)
def clip_stops_exactly() -> Measure:
    rho0 = np.linspace(0.5, 1.6, 221)
    wrong = 0
    for lo, hi in CLIP_WIDTHS:
        rho0 = rho0[(np.abs(rho0 - (1 - lo)) > 1e-9) & (np.abs(rho0 - (1 + hi)) > 1e-9)]
        for a in (-1.0, 0.0, 1.0):
            rho = torch.tensor(rho0, requires_grad=True)
            adv = torch.full_like(rho, a)
            asymmetric_clipped_surrogate(rho, adv, lo, hi).sum().backward()
            predicted = clip_stops_gradient(rho.detach(), adv, lo, hi).numpy()
            wrong += int(np.sum(predicted != (rho.grad.numpy() == 0)))
    return Measure(float(wrong), f"rho on a grid in [0.5, 1.6], A in {{-1, 0, 1}}, {CLIP_WIDTHS}")


@identity(
    "ch16.entropy_rule_one_token",
    chapter=16,
    statistic="number of (softmax, token) pairs where the sign of dH/deta (autograd) differs "
    "from the rule pi(a) < e^{-H}",
    title="pushing up one token's logit raises the entropy iff pi(a) < e^{-H} (first order, one "
    "softmax)",
)
def entropy_rule_one_token() -> Measure:
    rng = np.random.default_rng(16)
    wrong = pairs = 0
    for _ in range(200):
        z0 = rng.normal(size=int(rng.integers(2, 9))) * rng.uniform(0.2, 3.0)
        z = torch.tensor(z0, requires_grad=True)
        logp = torch.log_softmax(z, 0)
        (-(logp.exp() * logp).sum()).backward()  # dH/dz_a = dH/deta for dz = e_a
        grad = z.grad.numpy()
        rises = raises_entropy(z0)
        keep = np.abs(grad) > 1e-12  # the token at exactly e^{-H} moves nothing
        wrong += int(np.sum((grad > 0)[keep] != rises[keep]))
        pairs += int(keep.sum())
    return Measure(
        float(wrong), f"{pairs} (softmax, token) pairs, 200 random softmaxes of 2-8 tokens"
    )


DUAL_CLIP_C = 3.0  # verl's default clip_ratio_c


def dual_clip_stopped(c: float = DUAL_CLIP_C) -> tuple[int, int]:
    """On a grid of ratios in [0.5, 4.5] and A in {-1, 0, 1}, widths (0.2, 0.28): how many
    (rho, A) points have a zero gradient in rho under the dual clip at ``c`` but not under the
    plain clip, and how many of those the rule A < 0 and rho > c predicts."""
    rho0 = np.linspace(0.5, 4.5, 801)
    rho0 = rho0[np.abs(rho0 - c) > 1e-9]
    extra = predicted = 0
    for a in (-1.0, 1.0, 0.0):
        grads = []
        for f in (asymmetric_clipped_surrogate, None):
            rho = torch.tensor(rho0, requires_grad=True)
            adv = torch.full_like(rho, a)
            if f is None:
                dual_clipped_surrogate(rho, adv, 0.2, 0.28, c).sum().backward()
            else:
                f(rho, adv, 0.2, 0.28).sum().backward()
            grads.append(rho.grad.numpy() == 0)
        plain, dual = grads
        extra += int(np.sum(dual & ~plain))
        predicted += int(np.sum((a < 0) & (rho0 > c)))
    return extra, predicted


@identity(
    "ch16.dual_clip_stops_exactly",
    chapter=16,
    statistic="|#(points the dual clip stops, the plain clip does not) - #(A < 0, rho > c)| "
    "+ #(stopped points outside that set)",
    title="verl's dual clip (clip_ratio_c = c) also stops exactly the tokens with A < 0 and "
    "rho > c, which the plain clip lets through",
)
def dual_clip_stops_exactly() -> Measure:
    extra, predicted = dual_clip_stopped()
    rho0 = np.linspace(0.5, 4.5, 801)
    rho0 = rho0[np.abs(rho0 - DUAL_CLIP_C) > 1e-9]
    outside = 0
    for a in (1.0, 0.0):  # no A >= 0 point may lose its gradient to the dual clip
        rho = torch.tensor(rho0, requires_grad=True)
        adv = torch.full_like(rho, a)
        dual_clipped_surrogate(rho, adv, 0.2, 0.28, DUAL_CLIP_C).sum().backward()
        r2 = torch.tensor(rho0, requires_grad=True)
        asymmetric_clipped_surrogate(r2, adv, 0.2, 0.28).sum().backward()
        outside += int(np.sum((rho.grad.numpy() == 0) & (r2.grad.numpy() != 0)))
    return Measure(
        float(abs(extra - predicted) + outside),
        f"rho on a grid in [0.5, 4.5], A in {{-1, 0, 1}}, widths (0.2, 0.28), c = {DUAL_CLIP_C:g}: "
        f"{extra} points stopped by the dual clip alone, {predicted} predicted",
    )


def clip_gain(good: str, steps=(1, 2, 3)) -> float:
    r"""The largest change of :math:`dH/d\eta` from :math:`\epsilon_\text{high} = 0.2` to the
    widest :math:`\epsilon_\text{high}` of :data:`rlviz.experiments.ch16.EPS_HIGHS`, over the
    inner ``steps`` (positive: clip-higher raises the entropy), for the batch ``good``."""
    i = list(EPS_HIGHS).index(0.2)
    batch = clip_batch(good)
    gains = [clip_entropy_rates(batch, m)["dH"] for m in steps]
    return float(
        max(d[-1] - d[i] for d in gains) if good == "rare" else min(d[-1] - d[i] for d in gains)
    )


@identity(
    "ch16.clip_higher_entropy_sign",
    chapter=16,
    kind="bound",
    tol=0.005,
    at_least=True,
    statistic="min(gain of dH/deta when rare tokens are good, loss when common ones are)",
    title="clip-higher raises the entropy when the tokens it releases are rare, lowers it when "
    "they are common (first order, exact)",
)
def clip_higher_entropy_sign() -> Measure:
    rare, common = clip_gain("rare"), clip_gain("common")
    return Measure(
        min(rare, -common),
        f"one group of 16, 12 tokens, eps_high 0.2 -> {EPS_HIGHS[-1]}: rare {rare:+.4f}, "
        f"common {common:+.4f}",
    )


@identity(
    "ch16.clip_cov_raises_entropy",
    chapter=16,
    kind="bound",
    tol=0.001,
    at_least=True,
    statistic="min over the two groups of dH/deta(k=2) - dH/deta(k=0)",
    title="Clip-Cov: detaching the tokens of largest covariance score raises the entropy change "
    "(first order, exact)",
)
def clip_cov_raises_entropy() -> Measure:
    gains = {}
    for good in ("rare", "common"):
        d = clip_cov_entropy_rates(clip_batch(good), 0, (0, 2))["dH"]
        gains[good] = float(d[1] - d[0])
    shown = ", ".join(f"{g} {v:+.4f}" for g, v in gains.items())
    return Measure(min(gains.values()), f"one group of 16 at theta_old, 2 tokens detached: {shown}")


# ---------------------------------------------------------------- entropy dynamics
def _entropy_cases():
    for seed in (0, 1):
        ans, theta, dirs = entropy_directions(seed)
        for name, d in dirs.items():
            yield seed, theta, name, d


@identity(
    "ch16.entropy_covariance_exact",
    chapter=16,
    title="dH_h/deta = -Cov_pi(log pi, dz) for every prefix (Cui et al. 2025), against autograd",
)
def entropy_covariance_exact() -> Measure:
    errs = [
        np.abs(entropy_covariance(theta, d) - entropy_derivative(theta, d)).max()
        for _, theta, _, d in _entropy_cases()
    ]
    return Measure(
        float(max(errs)), "2 random trees (L=3) x {vanilla PG, natural PG, random} steps"
    )


def entropy_slopes() -> dict:
    """Log-log slope of the first-order error against the step size, per (tree, direction)."""
    return {
        (seed, name): loglog_slope(SLOPE_STEPS, first_order_errors(theta, d, SLOPE_STEPS))[0]
        for seed, theta, name, d in _entropy_cases()
    }


@identity(
    "ch16.entropy_first_order_slope",
    chapter=16,
    kind="bound",
    tol=0.05,
    statistic="max |slope - 2|",
    title="the error of the covariance prediction of H(z + eta dz) - H(z) is O(eta^2): "
    "log-log slope 2",
)
def entropy_first_order_slope() -> Measure:
    s = entropy_slopes()
    lo, hi = min(s.values()), max(s.values())
    return Measure(
        float(max(abs(v - 2) for v in s.values())),
        f"eta in [1e-4, 1e-2], 2 trees x 3 directions; slopes {lo:.3f} to {hi:.3f}",
    )


@identity(
    "ch16.softmax_pg_closed_form",
    chapter=16,
    title="tabular softmax: dJ/dz(h, a) = P_pi(h) pi(a|h) A(h, a) (the vanilla PG logit change)",
)
def softmax_pg_closed_form() -> Measure:
    errs = []
    for seed in (0, 1):
        ans, theta, r = tree_setting(seed)
        errs.append(
            np.abs(
                policy_gradient_logits(theta, ans, r).ravel() - exact_gradient(theta, ans, r)
            ).max()
        )
    return Measure(float(max(errs)), "2 random trees (L=3), against autograd")


# ---------------------------------------------------------------- ratio granularity
@identity(
    "ch16.ratios_unbiased_at_old",
    chapter=16,
    title="at theta = theta_old: E[grad] of token ratios, the sequence ratio and CISPO = grad J",
)
def ratios_unbiased_at_old() -> Measure:
    errs = []
    for seed in (0, 1):
        ans, theta, r = tree_setting(seed)
        g = exact_gradient(theta, ans, r)
        for kind in ("token", "sequence", "CISPO"):
            errs.append(np.abs(expected_ratio_gradient(kind, theta, theta, ans, r) - g).max())
    return Measure(float(max(errs)), "2 random trees (L=3), exact advantages r - J_old")


@identity(
    "ch16.gspo_length_weighted",
    chapter=16,
    title="at theta = theta_old GSPO's E[grad] = E[(A / |y|) grad log pi(y)] (each answer over "
    "its length)",
)
def gspo_length_weighted() -> Measure:
    errs = []
    for seed in (0, 1):
        ans, theta, r = tree_setting(seed)
        e = expected_ratio_gradient("GSPO", theta, theta, ans, r)
        errs.append(np.abs(e - length_weighted_gradient(theta, ans, r)).max())
    return Measure(float(max(errs)), "2 random trees (L=3)")


@identity(
    "ch16.gspo_not_grad_j",
    chapter=16,
    kind="bound",
    tol=1.0,
    at_least=True,
    statistic="min over 2 trees of angle(E[grad GSPO], grad J) in degrees",
    title="with answers of different lengths GSPO's expected gradient is not along grad J",
)
def gspo_not_grad_j() -> Measure:
    angles = []
    for seed in (0, 1):
        ans, theta, r = tree_setting(seed)
        e = expected_ratio_gradient("GSPO", theta, theta, ans, r)
        angles.append(angle_and_norm_ratio(e, exact_gradient(theta, ans, r))[0])
    return Measure(float(min(angles)), "2 random trees (L=3), theta = theta_old")


@identity(
    "ch16.sequence_is_unbiased_off_policy",
    chapter=16,
    title="away from theta_old the unclipped sequence ratio still gives E[grad] = grad J(theta)",
)
def sequence_is_unbiased_off_policy() -> Measure:
    errs = []
    for seed in (0, 1):
        ans, theta_old, r = tree_setting(seed)
        for t in OFF_POLICY_STEPS:
            theta = off_policy_theta(theta_old, t, seed)
            e = expected_ratio_gradient("sequence (unclipped)", theta, theta_old, ans, r)
            errs.append(np.abs(e - exact_gradient(theta, ans, r)).max())
    return Measure(
        float(max(errs)), f"2 random trees, theta = theta_old + t d, t in {OFF_POLICY_STEPS}"
    )


@identity(
    "ch16.clipped_ratios_biased_off_policy",
    chapter=16,
    kind="bound",
    tol=0.01,
    at_least=True,
    statistic="min over token, sequence, GSPO, CISPO of ||E[grad] - grad J|| / ||grad J|| at t = 0.1",
    title="away from theta_old the token, clipped sequence, GSPO and CISPO gradients are biased",
)
def clipped_ratios_biased_off_policy() -> Measure:
    ans, theta_old, r = tree_setting(0)
    theta = off_policy_theta(theta_old, OFF_POLICY_STEPS[0], 0)
    g = exact_gradient(theta, ans, r)
    gaps = {
        k: float(
            np.linalg.norm(expected_ratio_gradient(k, theta, theta_old, ans, r) - g)
            / np.linalg.norm(g)
        )
        for k in ("token", "sequence", "GSPO", "CISPO")
    }
    shown = ", ".join(f"{k} {v:.3f}" for k, v in gaps.items())
    return Measure(min(gaps.values()), f"random tree, eps 0.2: {shown}")


@identity(
    "ch16.sequence_ratio_mean_one",
    chapter=16,
    title="E_{y ~ pi_old}[pi(y) / pi_old(y)] = 1 for every maximum length L and distance delta",
)
def sequence_ratio_mean_one() -> Measure:
    errs = [
        abs(ratio_variances(L, d)["sequence"][0] - 1.0) for L in (1, 3, 5, 7) for d in (0.1, 0.5)
    ]
    return Measure(
        float(max(errs)), "answers over a, b, EOS; L in {1, 3, 5, 7}, delta in {0.1, 0.5}"
    )


@identity(
    "ch16.sequence_ratio_variance_grows",
    chapter=16,
    kind="bound",
    tol=2.0,
    at_least=True,
    statistic="min(Var rho(L=7) / Var rho(L=1), Var s(L=1) / Var s(L=7))",
    title="the variance of the sequence ratio grows with the answer length, GSPO's shrinks",
)
def sequence_ratio_variance_grows() -> Measure:
    v1, v7 = ratio_variances(1, 0.2), ratio_variances(7, 0.2)
    seq = v7["sequence"][1] / v1["sequence"][1]
    gspo = v1["GSPO"][1] / v7["GSPO"][1]
    return Measure(min(seq, gspo), f"delta 0.2: sequence x{seq:.2f}, GSPO /{gspo:.2f}")
