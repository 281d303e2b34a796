"""Chapter 12: the PPO clip. Exact properties of the clipped objective (float64, autograd), the
gradient of the surrogate as practice computes it against grad J (exact, on the corridor of
chapter 10), and the order of contact of the KL."""

from __future__ import annotations

import numpy as np
import torch

from rlviz.experiments.ch12 import kl_slopes, surrogate_gap_table
from rlviz.experiments.corridor_settings import THETA
from rlviz.fn.ppo_loss import clipped_surrogate, policy_gradient_surrogate
from rlviz.tabular.episodic import corridor
from rlviz.tabular.surrogate import old_policy
from rlviz.verify import Measure, identity

EPSILONS = (0.05, 0.1, 0.2, 0.3, 0.5)


def random_samples(seed: int = 0, n: int = 2000):
    """Ratios spread over (0, 3) (some exactly at 1 +/- eps) and signed advantages, float64."""
    rng = np.random.default_rng(seed)
    ratio = np.exp(rng.normal(0, 0.5, n))
    ratio[: len(EPSILONS)] = [1 + e for e in EPSILONS]
    adv = rng.normal(size=n)
    adv[::7] = 0.0
    return torch.tensor(ratio), torch.tensor(adv)


@identity(
    "ch12.clip_lower_bound",
    chapter=12,
    title="L_CLIP <= L_PG, sample by sample",
    statistic="max(0, l_CLIP - l_PG)",
)
def clip_lower_bound() -> Measure:
    ratio, adv = random_samples(0)
    worst = max(
        float((clipped_surrogate(ratio, adv, e) - policy_gradient_surrogate(ratio, adv)).max())
        for e in EPSILONS
    )
    return Measure(max(worst, 0.0), "2000 samples x 5 epsilons; value = max(0, max(l_CLIP - l_PG))")


@identity(
    "ch12.clip_equal_inside",
    chapter=12,
    title="L_CLIP = L_PG where |r - 1| <= epsilon (and hence at theta_old)",
)
def clip_equal_inside() -> Measure:
    ratio, adv = random_samples(1)
    errs = []
    for e in EPSILONS:
        inside = (ratio - 1).abs() <= e
        errs.append(float((clipped_surrogate(ratio, adv, e) - ratio * adv)[inside].abs().max()))
    return Measure(max(errs), "2000 samples x 5 epsilons")


@identity(
    "ch12.clip_piecewise",
    chapter=12,
    title="min(rA, clip(r)A) = min(r, 1+eps)A for A >= 0, max(r, 1-eps)A for A < 0",
)
def clip_piecewise() -> Measure:
    ratio, adv = random_samples(2)
    r, a = ratio.numpy(), adv.numpy()
    errs = []
    for e in EPSILONS:
        # the paper's Figure 1, case by case: min(r, 1+eps) A for A >= 0, max(r, 1-eps) A for A < 0
        by_cases = np.where(a >= 0, np.minimum(r, 1 + e), np.maximum(r, 1 - e)) * a
        errs.append(np.abs(clipped_surrogate(ratio, adv, e).numpy() - by_cases).max())
    return Measure(float(max(errs)), "2000 samples x 5 epsilons")


@identity(
    "ch12.clip_zero_gradient",
    chapter=12,
    title="autograd: zero gradient where the ratio is clipped in the improving direction",
)
def clip_zero_gradient() -> Measure:
    ratio, adv = random_samples(3)
    errs, counted = [], 0
    for e in EPSILONS:
        r = ratio.clone().requires_grad_()
        (g,) = torch.autograd.grad(clipped_surrogate(r, adv, e).sum(), r)
        # improving direction: pushing r further would raise r*A beyond the clip
        clipped = ((adv > 0) & (r > 1 + e)) | ((adv < 0) & (r < 1 - e))
        expected = torch.where(clipped, torch.zeros_like(adv), adv)
        errs.append(float((g - expected).abs().max()))
        counted += int(clipped.sum())
    zero = len(EPSILONS) * int((adv == 0).sum())
    return Measure(
        max(errs),
        f"{counted} clipped samples and {zero} with A = 0 over 5 epsilons; "
        "elsewhere the gradient is A",
    )


@identity(
    "ch12.clip_equality_case",
    chapter=12,
    statistic="max |1[l_CLIP = r A] - 1[condition]|",
    title="l_CLIP = r A exactly when A = 0, or A > 0 and r <= 1+eps, or A < 0 and r >= 1-eps",
)
def clip_equality_case() -> Measure:
    ratio, adv = random_samples(5)
    wrong, equal = 0, 0
    for e in EPSILONS:
        is_equal = (clipped_surrogate(ratio, adv, e) - ratio * adv).abs() <= 1e-12
        stated = (adv == 0) | ((adv > 0) & (ratio <= 1 + e)) | ((adv < 0) & (ratio >= 1 - e))
        wrong = max(wrong, int((is_equal != stated).any()))
        equal += int(is_equal.sum())
    return Measure(float(wrong), f"2000 samples x 5 epsilons, {equal} of them with equality")


@identity(
    "ch12.clip_gradient_at_old",
    chapter=12,
    title="at theta = theta_old, grad L_CLIP = grad L_PG (softmax policy, autograd)",
)
def clip_gradient_at_old() -> Measure:
    rng = np.random.default_rng(4)
    S, A, n = 5, 3, 400
    theta_old = torch.tensor(rng.normal(size=(S, A)))
    s, a = torch.tensor(rng.integers(0, S, n)), torch.tensor(rng.integers(0, A, n))
    adv = torch.tensor(rng.normal(size=n))
    logp_old = torch.log_softmax(theta_old, -1)[s, a]
    errs = []
    for e in EPSILONS:
        grads = []
        for surrogate in (lambda r, e=e: clipped_surrogate(r, adv, e), lambda r: r * adv):
            theta = theta_old.clone().requires_grad_()
            ratio = torch.exp(torch.log_softmax(theta, -1)[s, a] - logp_old)
            (g,) = torch.autograd.grad(surrogate(ratio).mean(), theta)
            grads.append(g)
        errs.append(float((grads[0] - grads[1]).abs().max()))
    return Measure(max(errs), f"{S} states x {A} actions, {n} samples, 5 epsilons")


# ----------------------------------------------------------------------------- the sample surrogate

GAP_DETAIL = "corridor, gamma 0.9, chapter-3 logits"


def _rows(name: str, rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["name"] == name]


@identity(
    "ch12.exact_surrogate_gradient",
    chapter=12,
    title="exact surrogate (discounted visitation, true A): grad L(theta_old) = grad J(theta_old)",
)
def exact_surrogate_gradient() -> Measure:
    errs = [
        float(
            _rows("exact", surrogate_gap_table(old_policy(corridor(g), THETA)))[0]["max_diff_prev"]
        )
        for g in (0.5, 0.9, 0.99)
    ]
    return Measure(max(errs), "corridor, gamma in {0.5, 0.9, 0.99}, chapter-3 logits")


@identity(
    "ch12.step_average_reweights_states",
    chapter=12,
    kind="bound",
    tol=1.0,
    at_least=True,
    statistic="angle(time-step average with true A, grad J) in degrees",
    title="the time-step average weights states by the undiscounted visitation: not grad J",
)
def step_average_reweights_states() -> Measure:
    row = _rows("undiscounted", surrogate_gap_table())[0]
    return Measure(row["angle"], f"{GAP_DETAIL}; norm ratio {row['norm_ratio']:.3f}")


@identity(
    "ch12.gae_bias_with_wrong_value",
    chapter=12,
    kind="bound",
    tol=0.5,
    at_least=True,
    statistic="min over lambda in {0.95, 0} of the angle GAE(V-hat) vs true A, degrees",
    title="GAE with a wrong V-hat (lambda < 1) turns the expected gradient",
)
def gae_bias_with_wrong_value() -> Measure:
    rows = [r for r in _rows("gae", surrogate_gap_table()) if r["lam"] < 1]
    return Measure(
        min(r["angle_prev"] for r in rows),
        f"{GAP_DETAIL}; V-hat = V + error (scale 0.3, seed 0)",
    )


@identity(
    "ch12.lambda_one_value_is_a_baseline",
    chapter=12,
    title="GAE with lambda = 1 and a wrong V-hat: same expected gradient as the true A",
)
def lambda_one_value_is_a_baseline() -> Measure:
    row = [r for r in _rows("gae", surrogate_gap_table()) if r["lam"] == 1][0]
    return Measure(row["max_diff_prev"], f"{GAP_DETAIL}; V-hat = V + error (scale 0.3, seed 0)")


@identity(
    "ch12.normalisation_keeps_direction",
    chapter=12,
    statistic="max |unit(normalised) - unit(GAE)|",
    title="advantage normalisation (large batch) rescales the expected gradient, same direction",
)
def normalisation_keeps_direction() -> Measure:
    rows = surrogate_gap_table()
    errs = []
    for gae_row, norm_row in zip(_rows("gae", rows), _rows("normalised", rows)):
        u, v = gae_row["grad"], norm_row["grad"]
        errs.append(float(np.abs(u / np.linalg.norm(u) - v / np.linalg.norm(v)).max()))
    sigmas = ", ".join(f"{r['sigma']:.3f}" for r in _rows("normalised", rows))
    return Measure(max(errs), f"{GAP_DETAIL}; lambda 0.95, 0, 1; sigma = {sigmas}")


# ----------------------------------------------------------------------------- KL along a line


@identity(
    "ch12.kl_quadratic_in_alpha",
    chapter=12,
    kind="bound",
    tol=0.01,
    statistic="max over directions |slope - 2|",
    title="mean KL along theta_old + alpha u is quadratic in alpha (log-log slope 2)",
)
def kl_quadratic_in_alpha() -> Measure:
    slopes = kl_slopes()
    return Measure(
        max(abs(s - 2) for s in slopes.values()),
        "corridor, gradient + 3 random directions, alpha in [1e-3, 1e-1]",
    )
