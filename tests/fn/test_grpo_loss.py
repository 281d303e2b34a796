"""rlviz.fn.grpo_loss: group advantages, ratios, KL estimators, length normalisation and the
GRPO objective, against hand-computed values and reference loops."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlviz.fn import grpo_loss as grpo
from rlviz.fn.ppo_loss import k3


def tensors(B=2, G=3, L=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, G, L, generator=g, dtype=torch.float64) * 2
    old = -torch.rand(B, G, L, generator=g, dtype=torch.float64) * 2
    mask = torch.ones(B, G, L, dtype=torch.bool)
    mask[0, 0, 2:] = False
    mask[1, 2, 1:] = False
    return logp, old, mask


# ---------------------------------------------------------------- advantages
def test_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 5.0]], dtype=torch.float64)
    np.testing.assert_allclose(
        grpo.group_advantages(r, "mean"), [[0.5, -0.5, -0.5, 0.5], [-0.75, -0.75, -0.75, 2.25]]
    )
    np.testing.assert_allclose(
        grpo.group_advantages(r, "loo"), [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [-1, -1, -1, 3]]
    )
    std = r.std(dim=1, keepdim=True)
    np.testing.assert_allclose(
        grpo.group_advantages(r, "std", std_eps=1e-4), (r - r.mean(1, keepdim=True)) / (std + 1e-4)
    )


def test_loo_is_reference_loop():
    r = torch.randn(5, 4, dtype=torch.float64)
    ref = torch.stack(
        [
            torch.stack([r[b, i] - torch.cat([r[b, :i], r[b, i + 1 :]]).mean() for i in range(4)])
            for b in range(5)
        ]
    )
    torch.testing.assert_close(grpo.group_advantages(r, "loo"), ref)


@pytest.mark.parametrize(
    "bad,msg",
    [
        (torch.tensor([[1.0, float("nan")]]), "finite"),
        (torch.tensor([1.0, 2.0]), "shape"),
        (torch.tensor([[1.0]]), "G >= 2"),
    ],
)
def test_advantages_bad_inputs(bad, msg):
    with pytest.raises(ValueError, match=msg):
        grpo.group_advantages(bad, "loo")


def test_advantages_bad_kind():
    with pytest.raises(ValueError, match="kind"):
        grpo.group_advantages(torch.zeros(2, 3), "median")


# ---------------------------------------------------------------- ratios and KL estimators
def test_sequence_ratio_is_product_of_token_ratios():
    logp, old, mask = tensors()
    tok = grpo.token_ratios(logp, old, mask)
    torch.testing.assert_close(grpo.sequence_ratios(logp, old, mask), tok.prod(-1))
    assert torch.all(tok[~mask] == 1)


def test_shape_mismatch_raises():
    logp, old, mask = tensors()
    with pytest.raises(ValueError, match="shape of mask_t"):
        grpo.token_ratios(logp, old[:, :, :2], mask)
    empty = mask.clone()
    empty[0, 1] = False
    with pytest.raises(ValueError, match="at least one token"):
        grpo.sequence_log_prob(logp, empty)


def test_kl_estimators_by_hand():
    lp, lr = torch.tensor([np.log(0.5)]), torch.tensor([np.log(0.25)])
    rho = 0.5
    assert float(grpo.kl_k1(lp, lr)) == pytest.approx(-np.log(rho))
    assert float(grpo.kl_k2(lp, lr)) == pytest.approx(0.5 * np.log(rho) ** 2)
    assert float(grpo.kl_k3(lp, lr)) == pytest.approx(rho - 1 - np.log(rho))


def test_kl_k3_is_the_one_k3():
    lp = torch.tensor([-0.1, -2.0, -0.7], dtype=torch.float64)
    lr = torch.tensor([-0.3, -0.5, -0.7], dtype=torch.float64)
    torch.testing.assert_close(grpo.kl_k3(lp, lr), k3(lr - lp), rtol=0, atol=0)
    assert float(grpo.kl_k3(lp, lr)[2]) == 0.0


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 7), st.integers(0, 10_000), st.floats(0.05, 3.0))
def test_kl_estimators_are_unbiased_and_k3_nonnegative(n, seed, scale):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, n)) * scale
    logp = torch.log_softmax(torch.tensor(a), 0)
    logp_ref = torch.log_softmax(torch.tensor(b), 0)
    p = logp.exp()
    kl = float((p * (logp - logp_ref)).sum())
    for name in ("k1", "k3"):
        assert abs(float((p * grpo.kl_estimate(name, logp, logp_ref)).sum()) - kl) < 1e-10
    assert float(grpo.kl_k3(logp, logp_ref).min()) >= 0
    with pytest.raises(ValueError, match="kl"):
        grpo.kl_estimate("k4", logp, logp_ref)


# ---------------------------------------------------------------- length normalisation, objective
def test_length_normalised_by_hand():
    x = torch.ones(1, 2, 3, dtype=torch.float64)
    mask = torch.tensor([[[True, False, False], [True, True, True]]])
    assert float(grpo.length_normalised(x, mask, "sequence")) == pytest.approx(1.0)
    assert float(grpo.length_normalised(x, mask, "group")) == pytest.approx(1.0)
    assert float(grpo.length_normalised(x, mask, "constant")) == pytest.approx(4 / 6)


def test_objective_at_old_policy_is_mean_advantage():
    logp, _, mask = tensors()
    adv = torch.randn(2, 3, dtype=torch.float64)
    seq = grpo.grpo_objective(logp, logp, adv, mask, epsilon=0.2)
    torch.testing.assert_close(seq, adv.mean(1))
    tok = grpo.grpo_objective(logp, logp, adv, mask, epsilon=0.2, ratio="token")
    torch.testing.assert_close(tok, adv.mean(1))


def test_objective_kl_term_and_checks():
    logp, old, mask = tensors()
    adv = torch.zeros(2, 3, dtype=torch.float64)
    ref = logp - 0.3
    out = grpo.grpo_objective(
        logp, old, adv, mask, epsilon=0.2, ratio="token", beta=0.5, logp_ref_t=ref, kl="k1"
    )
    torch.testing.assert_close(out, torch.full((2,), -0.5 * 0.3, dtype=torch.float64))
    with pytest.raises(ValueError, match="beta"):
        grpo.grpo_objective(logp, old, adv, mask, epsilon=0.2, beta=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        grpo.grpo_objective(logp, old, adv, mask, epsilon=0.0)
    with pytest.raises(ValueError, match="logp_ref_t"):
        grpo.grpo_objective(logp, old, adv, mask, epsilon=0.2, beta=0.1)
    with pytest.raises(ValueError, match="length_norm"):
        grpo.grpo_objective(logp, old, adv, mask, epsilon=0.2, length_norm="group")
    with pytest.raises(ValueError, match="adv"):
        grpo.grpo_objective(logp, old, adv[:, :2], mask, epsilon=0.2)


def test_clip_blocks_gradient_beyond_epsilon():
    logp, _, mask = tensors()
    logp = logp.clone().requires_grad_(True)
    old = (logp - 0.5).detach()  # every ratio e^0.5 > 1.2
    adv = torch.ones(2, 3, dtype=torch.float64)
    grpo.grpo_objective(logp, old, adv, mask, epsilon=0.2, ratio="token").sum().backward()
    assert torch.all(logp.grad == 0)


def test_padding_never_reaches_the_objective():
    logp, old, mask = tensors()
    adv = torch.randn(2, 3, dtype=torch.float64)
    ref = logp - 0.2
    poisoned = [torch.where(mask, x, torch.full_like(x, float("nan"))) for x in (logp, old, ref)]
    for ratio, norm in (
        ("sequence", None),
        ("token", "sequence"),
        ("token", "group"),
        ("token", "constant"),
    ):
        clean = grpo.grpo_objective(
            logp,
            old,
            adv,
            mask,
            epsilon=0.2,
            ratio=ratio,
            length_norm=norm,
            beta=0.1,
            logp_ref_t=ref,
        )
        dirty = grpo.grpo_objective(
            *poisoned[:2],
            adv,
            mask,
            epsilon=0.2,
            ratio=ratio,
            length_norm=norm,
            beta=0.1,
            logp_ref_t=poisoned[2],
        )
        torch.testing.assert_close(dirty, clean, rtol=0, atol=0)


def test_sequence_objective_kl_sums_over_tokens():
    logp, _, mask = tensors()
    adv = torch.zeros(2, 3, dtype=torch.float64)
    out = grpo.grpo_objective(
        logp, logp, adv, mask, epsilon=0.2, beta=0.5, logp_ref_t=logp - 0.3, kl="k1"
    )
    lengths = mask.sum(-1).to(torch.float64)  # k1 = 0.3 on each token
    torch.testing.assert_close(out, (-0.5 * 0.3 * lengths).mean(1))
