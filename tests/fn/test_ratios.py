"""rlviz.fn.ratios: asymmetric clip, the set it stops, the dual clip, GSPO's and CISPO's ratios,
and the registered policy terms."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlviz.fn.grpo_loss import sequence_ratios, token_ratios
from rlviz.fn.ppo_loss import clipped_surrogate
from rlviz.fn.ratios import (
    POLICY_TERMS,
    asymmetric_clipped_surrogate,
    cispo_surrogate,
    clip_cov_mask,
    clip_stops_gradient,
    covariance_scores,
    dual_clipped_surrogate,
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


# ---------------------------------------------------------------- the dual clip
C = 3.0


def _grid():
    """Ratios on both sides of 1 - eps, 1 + eps and c, each with A < 0, A = 0 and A > 0."""
    rho = torch.tensor([0.3, 0.7, 0.95, 1.1, 1.5, 2.9, 3.1, 5.0, 40.0], dtype=torch.float64)
    adv = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0], dtype=torch.float64)
    return torch.meshgrid(rho, adv, indexing="ij")


@pytest.mark.parametrize("lo, hi", [(0.2, 0.2), (0.2, 0.28), (0.1, 2.5)])
def test_dual_clip_is_the_plain_clip_except_bad_tokens_above_c(lo, hi):
    rho, adv = _grid()
    dual = dual_clipped_surrogate(rho, adv, lo, hi, C)
    plain = asymmetric_clipped_surrogate(rho, adv, lo, hi)
    capped = (adv < 0) & (rho > C)
    assert capped.any() and (~capped).any()
    assert torch.equal(dual[~capped], plain[~capped])  # A >= 0, or rho <= c
    assert torch.equal(dual[capped], C * adv[capped])  # A < 0 and rho > c: the constant cA
    assert (dual[capped] > plain[capped]).all()  # the plain clip's rho A is lower there


def test_dual_clip_drops_the_gradient_the_plain_clip_keeps():
    rho0, adv = _grid()
    grads = {}
    for name, f in (
        ("plain", lambda r: asymmetric_clipped_surrogate(r, adv, 0.2, 0.28)),
        ("dual", lambda r: dual_clipped_surrogate(r, adv, 0.2, 0.28, C)),
    ):
        rho = rho0.clone().requires_grad_(True)
        f(rho).sum().backward()
        grads[name] = rho.grad
    capped = (adv < 0) & (rho0 > C)
    # a bad token whose ratio ran above c: the plain clip's min picks rho A, gradient A ...
    assert torch.equal(grads["plain"][capped], adv[capped])
    # ... the dual clip's max picks the constant c A, gradient 0
    assert torch.equal(grads["dual"][capped], torch.zeros_like(adv[capped]))
    assert torch.equal(grads["dual"][~capped], grads["plain"][~capped])


@pytest.mark.parametrize("c", [1.0, 0.5, 0.0, -2.0, float("nan"), float("inf"), "x", None])
def test_dual_clip_needs_c_above_one(c):
    rho = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="clip_c must be"):
        dual_clipped_surrogate(rho, -rho, 0.2, 0.2, c)


# ---------------------------------------------------------------- the registered policy terms
def _term_args(seed=5):
    logp, logp_old, mask = _tokens(seed)
    g = torch.Generator().manual_seed(seed)
    adv_t = torch.randn(logp.shape[:2], generator=g, dtype=torch.float64)[..., None].expand_as(logp)
    return logp, logp_old, adv_t, mask


def test_policy_terms_are_registered_with_the_dual_clip_reading_clip_c():
    assert POLICY_TERMS.names() == ("token", "sequence", "gspo", "cispo", "dual-clip")
    assert {n for n in POLICY_TERMS if "clip_c" in POLICY_TERMS[n].params} == {"dual-clip"}


def test_each_policy_term_is_its_surrogate_of_its_ratio():
    logp, logp_old, adv_t, mask = _term_args()
    lo, hi = 0.2, 0.28
    rho_t = token_ratios(logp, logp_old, mask)
    seq = sequence_ratios(logp, logp_old, mask)[..., None].expand_as(logp)
    gspo = gspo_ratios(logp, logp_old, mask)[..., None].expand_as(logp)
    want = {
        "token": asymmetric_clipped_surrogate(rho_t, adv_t, lo, hi),
        "sequence": asymmetric_clipped_surrogate(seq, adv_t, lo, hi),
        "gspo": asymmetric_clipped_surrogate(gspo, adv_t, lo, hi),
        "cispo": cispo_surrogate(logp, logp_old, adv_t, lo, hi),
        "dual-clip": dual_clipped_surrogate(rho_t, adv_t, lo, hi, C),
    }
    for name, w in want.items():
        clip_c = C if name == "dual-clip" else None
        got = POLICY_TERMS[name].fn(logp, logp_old, adv_t, mask, lo, hi, clip_c)
        assert torch.equal(got, w), name


def test_the_dual_clip_term_acts_on_bad_tokens_far_above_one():
    logp, logp_old, adv_t, mask = _term_args(6)
    far = logp_old + 2.0  # every answer token's ratio is e^2 > c = 3 (padding's is 1)
    dual = POLICY_TERMS["dual-clip"].fn(far, logp_old, adv_t, mask, 0.2, 0.2, C)
    token = POLICY_TERMS["token"].fn(far, logp_old, adv_t, mask, 0.2, 0.2)
    bad = (adv_t < 0) & mask
    assert bad.any()
    assert torch.equal(dual[bad], C * adv_t[bad]) and (token[bad] < dual[bad]).all()
    assert torch.equal(dual[~bad], token[~bad])


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
