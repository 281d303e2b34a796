"""Chapter 12: the PPO clip. Exact properties of the clipped objective (float64, autograd)."""

from __future__ import annotations

import numpy as np
import torch

from rlviz.fn.ppo_loss import clipped_surrogate, policy_gradient_surrogate
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
    return Measure(
        max(errs), f"{counted} clipped samples over 5 epsilons; elsewhere the gradient is A"
    )


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
