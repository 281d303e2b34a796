"""rlviz.fn.ratios: asymmetric clip, the set it stops, GSPO's and CISPO's ratios."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlviz.fn.grpo_loss import sequence_ratios, token_ratios
from rlviz.fn.ppo_loss import clipped_surrogate
from rlviz.fn.ratios import (
    asymmetric_clipped_surrogate,
    cispo_surrogate,
    clip_cov_mask,
    clip_stops_gradient,
    covariance_scores,
    gspo_ratios,
)


def _tokens(seed=0, shape=(2, 3, 4)):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(shape, generator=g, dtype=torch.float64) * 2
    logp_old = logp + 0.3 * torch.randn(shape, generator=g, dtype=torch.float64)
    mask = torch.ones(shape, dtype=torch.bool)
    mask[0, 0, 2:] = False
    mask[1, 2, 1:] = False
    return logp, logp_old, mask


def test_symmetric_widths_give_ppo_clip():
    rho = torch.linspace(0.3, 2.0, 50, dtype=torch.float64)
    for a in (-1.5, 0.7):
        adv = torch.full_like(rho, a)
        assert torch.equal(
            asymmetric_clipped_surrogate(rho, adv, 0.2, 0.2), clipped_surrogate(rho, adv, 0.2)
        )


def test_asymmetric_clip_by_hand():
    rho = torch.tensor([0.5, 0.9, 1.25, 1.4], dtype=torch.float64)
    pos, neg = torch.ones_like(rho), -torch.ones_like(rho)
    # A > 0: min(rho, clip(rho, 0.8, 1.3)) -> the upper clip at 1.3 only
    assert asymmetric_clipped_surrogate(rho, pos, 0.2, 0.3).tolist() == [0.5, 0.9, 1.25, 1.3]
    # A < 0: min(-rho, -clip(rho)) = -max(rho, clip(rho)) -> the lower clip at 0.8 only
    assert asymmetric_clipped_surrogate(rho, neg, 0.2, 0.3).tolist() == [-0.8, -0.9, -1.25, -1.4]


@pytest.mark.parametrize("lo, hi", [(0.2, 0.2), (0.2, 0.28), (0.1, 0.5)])
def test_clip_stops_gradient_matches_autograd(lo, hi):
    rho0 = torch.linspace(0.4, 1.7, 131, dtype=torch.float64)
    rho0 = rho0[((rho0 - (1 - lo)).abs() > 1e-9) & ((rho0 - (1 + hi)).abs() > 1e-9)]
    for a in (-2.0, 0.0, 0.5):
        rho = rho0.clone().requires_grad_(True)
        adv = torch.full_like(rho, a)
        asymmetric_clipped_surrogate(rho, adv, lo, hi).sum().backward()
        assert torch.equal(clip_stops_gradient(rho.detach(), adv, lo, hi), rho.grad == 0)


def test_gspo_ratio_is_geometric_mean_of_token_ratios():
    logp, logp_old, mask = _tokens()
    s = gspo_ratios(logp, logp_old, mask)
    length = mask.sum(-1).to(torch.float64)
    rho_t = token_ratios(logp, logp_old, mask)
    geo = torch.exp((torch.log(rho_t) * mask).sum(-1) / length)
    assert torch.allclose(s, geo, atol=1e-14, rtol=0)
    assert torch.allclose(s**length, sequence_ratios(logp, logp_old, mask), atol=1e-12, rtol=0)


def test_cispo_gradient_is_clipped_weight_times_score():
    logp, logp_old, mask = _tokens(1)
    logp = logp.clone().requires_grad_(True)
    adv = torch.randn(logp.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    cispo_surrogate(logp, logp_old, adv, 0.2, 0.28).sum().backward()
    w = torch.clamp(torch.exp(logp.detach() - logp_old), 0.8, 1.28)
    assert torch.allclose(logp.grad, w * adv, atol=1e-15, rtol=0)
    # at theta_old the weight is 1: REINFORCE's gradient A * grad log pi
    lp = logp_old.clone().requires_grad_(True)
    cispo_surrogate(lp, logp_old, adv, 0.2, 0.28).sum().backward()
    assert torch.equal(lp.grad, adv)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eps_low": 0.0, "eps_high": 0.2}, "eps_low must be a finite number > 0"),
        ({"eps_low": 1.0, "eps_high": 0.2}, "eps_low must be < 1"),
        ({"eps_low": 0.2, "eps_high": -1}, "eps_high must be a finite number > 0"),
        ({"eps_low": 0.2, "eps_high": "x"}, "eps_high must be a number"),
    ],
)
def test_bad_widths_raise(kwargs, message):
    rho = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        asymmetric_clipped_surrogate(rho, rho, **kwargs)


def test_shapes_are_not_broadcast():
    with pytest.raises(ValueError, match="no silent broadcasting"):
        asymmetric_clipped_surrogate(torch.ones(3, 1), torch.ones(3), 0.2, 0.2)
    with pytest.raises(ValueError, match="ratio must be a torch.Tensor"):
        clip_stops_gradient(np.ones(3), torch.ones(3), 0.2, 0.2)
    with pytest.raises(ValueError, match="adv must be a floating-point tensor"):
        asymmetric_clipped_surrogate(torch.ones(3), torch.ones(3, dtype=torch.long), 0.2, 0.2)


def test_covariance_scores_sum_to_n_times_the_covariance():
    g = torch.Generator().manual_seed(4)
    logp = -torch.rand(9, generator=g, dtype=torch.float64)
    adv = torch.randn(9, generator=g, dtype=torch.float64)
    c = covariance_scores(logp, adv)
    cov = ((logp - logp.mean()) * (adv - adv.mean())).mean()
    assert torch.allclose(c.mean(), cov, atol=1e-15, rtol=0)


def test_clip_cov_mask_takes_the_largest_positive_scores():
    scores = torch.tensor([0.3, -1.0, 2.0, 0.0, 0.3, 1.0], dtype=torch.float64)
    assert clip_cov_mask(scores, 2).tolist() == [False, False, True, False, False, True]
    assert clip_cov_mask(scores, 3).tolist() == [True, False, True, False, False, True]
    assert clip_cov_mask(scores, 6).sum() == 4  # never a token with score <= 0
    with pytest.raises(ValueError, match="k must be an integer >= 0"):
        clip_cov_mask(scores, -1)
    with pytest.raises(ValueError, match=r"logp must have shape \(N,\)"):
        covariance_scores(
            torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2, 3, dtype=torch.float64)
        )
