"""rlviz.tabular.answer_tree: the enumerated answers, exact expected group gradients and the exact
KL quantities, on random bandits and trees (tolerance 1e-10 in float64)."""

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import seeds

from rlviz.tabular.answer_tree import (
    answer_kl,
    answer_probs,
    enumerate_answers,
    exact_gradient,
    expected_group_gradient,
    forward_kl_gradient,
    group_gradient_fn,
    k3_loss_gradient,
    kl_moments,
    reverse_kl_gradient,
    summed_kl_estimates,
    token_log_probs,
)


def test_enumerated_answers_sum_to_one():
    ans = enumerate_answers(3, 3)
    assert ans.n == 15 and ans.n_prefix == 7
    assert sorted(ans.length.tolist()) == [1] + [2] * 2 + [3] * 12  # E; aE bE; 9 + 3 of length 3
    p = answer_probs(torch.randn(2, ans.n_prefix, 3, dtype=torch.float64), ans)
    torch.testing.assert_close(p.sum(-1), torch.ones(2, dtype=torch.float64))


def test_enumerate_answers_checks_its_arguments():
    with pytest.raises(ValueError, match="vocab must be >= 2, got 1"):
        enumerate_answers(1, 2)
    with pytest.raises(ValueError, match="max_len"):
        enumerate_answers(3, 0)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 4), st.integers(2, 3), seeds, st.booleans())
def test_group_mean_scale_and_loo(n, group_size, seed, tree):
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(3, 2) if tree else enumerate_answers(n, 1)
    theta = rng.normal(size=(2, ans.n_prefix, ans.vocab))
    r = rng.normal(size=(2, ans.n))
    g = exact_gradient(theta, ans, r)
    G = group_size
    mean = expected_group_gradient(theta, ans, r, G, group_gradient_fn("mean"))
    loo = expected_group_gradient(theta, ans, r, G, group_gradient_fn("loo"))
    np.testing.assert_allclose(mean, (G - 1) / G * g, atol=1e-10)
    np.testing.assert_allclose(loo, g, atol=1e-10)
    const = expected_group_gradient(
        theta, ans, r, G, group_gradient_fn("mean", "token", "constant")
    )
    np.testing.assert_allclose(const, (G - 1) / (G * ans.max_len) * g, atol=1e-10)


def test_expected_group_gradient_is_the_weighted_sum_over_groups():
    """The enumeration against a loop over the n^G groups, each differentiated on its own."""
    rng = np.random.default_rng(3)
    ans = enumerate_answers(3, 1)
    theta, r = rng.normal(size=(1, 1, 3)), rng.normal(size=(1, 3))
    f = group_gradient_fn("loo")
    loop = np.zeros(3)
    for group in itertools.product(range(3), repeat=2):
        th = torch.tensor(theta, requires_grad=True)
        logp = token_log_probs(th, ans)[0][list(group)][None]  # (1, G, 1)
        w = float(torch.exp(logp.detach().sum()))
        rg = torch.as_tensor(r[0][list(group)])[None]
        f(logp, logp.detach(), rg, torch.ones_like(logp, dtype=torch.bool)).sum().backward()
        loop += w * th.grad.numpy().ravel()
    np.testing.assert_allclose(expected_group_gradient(theta, ans, r, 2, f), loop, atol=1e-12)
    with pytest.raises(ValueError, match="group_size"):
        expected_group_gradient(theta, ans, r, 0, f)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 7), seeds, st.floats(0.05, 3.0))
def test_kl_moments(n, seed, scale):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, n)) * scale
    p, q = np.exp(a) / np.exp(a).sum(), np.exp(b) / np.exp(b).sum()
    m = kl_moments(p, q)
    assert abs(m["kl"] - float(np.sum(p * np.log(p / q)))) < 1e-12
    assert abs(m["mean_k1"] - m["kl"]) < 1e-10
    assert abs(m["mean_k3"] - m["kl"]) < 1e-10
    assert m["min_k3"] >= 0 and m["var_k1"] > 0


def test_kl_moments_checks_its_arguments():
    with pytest.raises(ValueError, match="p_ref must be > 0"):
        kl_moments([0.5, 0.5], [1.0, 0.0])
    with pytest.raises(ValueError, match="sum to 1"):
        kl_moments([0.5, 0.6], [0.5, 0.5])


def test_answer_kl_and_summed_estimators_on_a_tree():
    """Exact KL of the answer distributions by brute force; the per-token k1 and k3 summed
    along each answer are unbiased for it (the chain rule of the KL)."""
    rng = np.random.default_rng(0)
    ans = enumerate_answers(3, 3)
    logp_t = token_log_probs(torch.tensor(rng.normal(size=(2, 7, 3))), ans)
    logp_ref_t = token_log_probs(torch.tensor(rng.normal(size=(2, 7, 3))), ans)
    p, q = logp_t.sum(-1).exp(), logp_ref_t.sum(-1).exp()
    pn, qn = p.numpy(), q.numpy()
    brute = [sum(pn[x, y] * np.log(pn[x, y] / qn[x, y]) for y in range(ans.n)) for x in range(2)]
    kl = answer_kl(logp_t, logp_ref_t)
    np.testing.assert_allclose(kl.numpy(), brute, atol=1e-12)
    for name in ("k1", "k3"):
        est = summed_kl_estimates(logp_t, logp_ref_t, ans, name)
        np.testing.assert_allclose((p * est).sum(-1).numpy(), kl.numpy(), atol=1e-10)
    assert (summed_kl_estimates(logp_t, logp_ref_t, ans, "k3") >= 0).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 6), seeds)
def test_k3_loss_gradient_is_reverse_kl(n, seed):
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(n, 1)
    theta, ref = rng.normal(size=(2, 2, 1, n))
    np.testing.assert_allclose(
        k3_loss_gradient(theta, ref, ans), reverse_kl_gradient(theta, ref, ans), atol=1e-10
    )


def test_k2_loss_gradient_is_forward_kl_and_kl_gradients_by_finite_differences():
    """The chapter's exercise: k2 in the loss gives grad KL(pi || pi_ref); and the two KL
    gradients against central differences of answer_kl."""
    rng = np.random.default_rng(1)
    ans = enumerate_answers(3, 2)
    theta, ref = rng.normal(size=(2, 2, ans.n_prefix, 3))
    fwd = forward_kl_gradient(theta, ref, ans)
    one = enumerate_answers(4, 1)
    th1, ref1 = rng.normal(size=(2, 2, 1, 4))
    np.testing.assert_allclose(
        k3_loss_gradient(th1, ref1, one, kl="k2"), forward_kl_gradient(th1, ref1, one), atol=1e-10
    )

    def kl(th, forward):
        a, b = token_log_probs(torch.tensor(th), ans), token_log_probs(torch.tensor(ref), ans)
        return float((answer_kl(a, b) if forward else answer_kl(b, a)).mean())

    h = 1e-6
    for forward, grad in ((True, fwd), (False, reverse_kl_gradient(theta, ref, ans))):
        fd = np.zeros(theta.size)
        for i in range(theta.size):
            e = np.zeros(theta.size)
            e[i] = h
            fd[i] = (
                kl(theta + e.reshape(theta.shape), forward)
                - kl(theta - e.reshape(theta.shape), forward)
            ) / (2 * h)
        np.testing.assert_allclose(grad, fd, atol=1e-7)


def test_refill_regimes_differ_and_bad_refill_is_refused():
    """Resampling the same prompt (per-prompt factors) and refilling with fresh prompts (one
    factor) give different expected updates when the prompts' pass rates differ."""
    import pytest

    from rlviz.experiments.answer_trees import tree_setting
    from rlviz.fn.grpo_loss import mixed_groups
    from rlviz.tabular.grpo_exact import aggregation_objective

    ans, theta, r = tree_setting(0)
    f = aggregation_objective("seq-mean-token-sum", "mean")
    same = expected_group_gradient(theta, ans, r, 2, f, condition=mixed_groups, refill="prompt")
    fresh = expected_group_gradient(theta, ans, r, 2, f, condition=mixed_groups, refill="batch")
    assert np.abs(same - fresh).max() > 1e-3
    with pytest.raises(ValueError, match="refill must be"):
        expected_group_gradient(theta, ans, r, 2, f, condition=mixed_groups, refill="both")
