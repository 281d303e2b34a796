"""rlviz.fn.grpo_loss (pure functions), rlviz.tabular.answer_tree (the chapter 14 identities) and a GRPO smoke test."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from rlviz.fn import grpo_loss as grpo
from rlviz.tabular.answer_tree import (enumerate_answers, exact_gradient, expected_group_gradient,
                              group_gradient_fn, k3_loss_gradient, kl_moments, reverse_kl_gradient)


def tensors(B=2, K=3, L=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, K, L, generator=g, dtype=torch.float64) * 2
    old = -torch.rand(B, K, L, generator=g, dtype=torch.float64) * 2
    mask = torch.ones(B, K, L, dtype=torch.bool)
    mask[0, 0, 2:] = False
    mask[1, 2, 1:] = False
    return logp, old, mask


# ---------------------------------------------------------------- advantages
def test_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 5.0]], dtype=torch.float64)
    np.testing.assert_allclose(grpo.group_advantages(r, "mean"),
                               [[0.5, -0.5, -0.5, 0.5], [-0.75, -0.75, -0.75, 2.25]])
    np.testing.assert_allclose(grpo.group_advantages(r, "loo"),
                               [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [-1, -1, -1, 3]])
    std = r.std(dim=1, keepdim=True)
    np.testing.assert_allclose(grpo.group_advantages(r, "std", std_eps=1e-4),
                               (r - r.mean(1, keepdim=True)) / (std + 1e-4))


def test_loo_is_reference_loop():
    r = torch.randn(5, 4, dtype=torch.float64)
    ref = torch.stack([torch.stack([r[b, i] - torch.cat([r[b, :i], r[b, i + 1:]]).mean()
                                    for i in range(4)]) for b in range(5)])
    torch.testing.assert_close(grpo.group_advantages(r, "loo"), ref)


@pytest.mark.parametrize("bad,msg", [
    (torch.tensor([[1.0, float("nan")]]), "finite"),
    (torch.tensor([1.0, 2.0]), "shape"),
    (torch.tensor([[1.0]]), "K >= 2"),
])
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


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 7), st.integers(0, 10_000), st.floats(0.05, 3.0))
def test_kl_estimator_moments(n, seed, scale):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, n)) * scale
    p, q = np.exp(a) / np.exp(a).sum(), np.exp(b) / np.exp(b).sum()
    m = kl_moments(p, q)
    assert abs(m["mean_k1"] - m["kl"]) < 1e-10
    assert abs(m["mean_k3"] - m["kl"]) < 1e-10
    assert m["min_k3"] >= 0


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
    out = grpo.grpo_objective(logp, old, adv, mask, epsilon=0.2, ratio="token", beta=0.5,
                              logp_ref_t=ref, kl="k1")
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


# ---------------------------------------------------------------- the identities, random settings
@settings(max_examples=30, deadline=None)
@given(st.integers(2, 4), st.integers(2, 3), st.integers(0, 10_000), st.booleans())
def test_group_mean_scale_and_loo(n, K, seed, tree):
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(3, 2) if tree else enumerate_answers(n, 1)
    theta = rng.normal(size=(2, ans.n_prefix, ans.vocab))
    r = rng.normal(size=(2, ans.n))
    g = exact_gradient(theta, ans, r)
    mean = expected_group_gradient(theta, ans, r, K, group_gradient_fn("mean"))
    loo = expected_group_gradient(theta, ans, r, K, group_gradient_fn("loo"))
    np.testing.assert_allclose(mean, (K - 1) / K * g, atol=1e-10)
    np.testing.assert_allclose(loo, g, atol=1e-10)
    const = expected_group_gradient(theta, ans, r, K, group_gradient_fn("mean", "token", "constant"))
    np.testing.assert_allclose(const, (K - 1) / (K * ans.max_len) * g, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10_000))
def test_k3_loss_gradient_is_reverse_kl(n, seed):
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(n, 1)
    theta, ref = rng.normal(size=(2, 2, 1, n))
    np.testing.assert_allclose(k3_loss_gradient(theta, ref, ans),
                               reverse_kl_gradient(theta, ref, ans), atol=1e-10)


def test_enumerated_answers_sum_to_one():
    from rlviz.tabular.answer_tree import answer_probs
    ans = enumerate_answers(3, 3)
    assert ans.n == 15 and ans.n_prefix == 7
    p = answer_probs(torch.randn(2, ans.n_prefix, 3, dtype=torch.float64), ans)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, dtype=torch.float64))


def test_chapter_identities_pass():
    from rlviz.identities import ch14
    for fn in (ch14.mean_baseline_scale, ch14.loo_unbiased, ch14.drgrpo_constant_norm,
               ch14.kl_estimators_unbiased, ch14.k3_gradient_reverse_kl):
        assert fn().value <= 1e-10, fn.__name__
    assert ch14.length_norm_bias().value >= 5
    assert ch14.std_norm_bias().value >= 1.1
    assert ch14.k3_nonnegative().value >= 0
    assert ch14.k3_low_variance().value <= 0.1
    assert ch14.k3_gradient_not_kl().value >= 0.1


# ---------------------------------------------------------------- training smoke test
def test_grpo_training_smoke():
    from rlviz.agents.grpo import (AdditionTask, GRPOConfig, PPOConfig, greedy_success,
                                  pretrain_reference, success_rates, train_grpo, train_ppo)
    torch.set_num_threads(1)
    task = AdditionTask.make()
    assert len(task.held_out) == 20 and len(np.intersect1d(task.train, task.held_out)) == 0
    ref = pretrain_reference(task, steps=60)
    # the reward checks exact answers
    idx = task.train[:4]
    assert torch.all(task.reward(idx, task.answers[idx], task.answer_mask[idx]) == 1)
    _, log = train_grpo(task, ref, GRPOConfig(max_steps=6, eval_every=3, stop_at_target=False))
    assert log.step == [0, 3, 6] and all(0 <= s <= 1 for s in log.held_out)
    _, log = train_ppo(task, ref, PPOConfig(max_steps=3, eval_every=3, stop_at_target=False))
    assert len(log.held_out) == 2
    assert 0 <= greedy_success(ref, task, task.held_out) <= 1
    assert 0 <= success_rates(ref, task, task.held_out) <= 1
    with pytest.raises(ValueError, match="group_size"):
        GRPOConfig(advantage="loo", group_size=1)
    with pytest.raises(ValueError, match="ratio"):
        GRPOConfig(ratio="word")
