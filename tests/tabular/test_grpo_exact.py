"""rlviz.tabular.grpo_exact: exact expected gradients of the aggregation modes (with
rlviz.tabular.answer_tree.expected_group_gradient), conditioning, batches, zero-variance fractions
and KL placements on the answer tree."""

import numpy as np
import pytest

from rlviz.experiments.answer_trees import bandit_setting, book_tree, tree_setting
from rlviz.fn.grpo_loss import mixed_groups
from rlviz.tabular import grpo_exact as gx
from rlviz.tabular.answer_tree import (
    exact_gradient,
    expected_group_gradient,
    forward_kl_gradient,
    group_gradient_fn,
    k3_loss_gradient,
)


def test_aggregation_objective_is_answer_tree_s():
    ans, theta, r = tree_setting(0)
    f = gx.aggregation_objective("seq-mean-token-mean")
    mine = expected_group_gradient(theta, ans, r, 2, f)
    theirs = expected_group_gradient(
        theta, ans, r, 2, group_gradient_fn("mean", "token", "sequence")
    )
    np.testing.assert_allclose(mine, theirs, atol=1e-13)


def test_condition_always_true_changes_nothing():
    ans, theta, r = tree_setting(1)
    f = gx.aggregation_objective("token-mean")
    e = expected_group_gradient(theta, ans, r, 2, f)
    np.testing.assert_allclose(
        expected_group_gradient(theta, ans, r, 2, f, condition=lambda rg: rg[:, 0] == rg[:, 0]),
        e,
        atol=1e-14,
    )


def test_zero_variance_groups_carry_no_gradient():
    ans, theta, r = tree_setting(0)
    f = gx.aggregation_objective("seq-mean-token-sum", "std")
    e = expected_group_gradient(theta, ans, r, 2, f, condition=lambda rg: ~mixed_groups(rg))
    np.testing.assert_allclose(e, 0.0, atol=1e-14)


def test_batch_gradient_of_single_prompt_groups_matches_expected_batch():
    ans, theta, r = book_tree()
    e_batch = gx.expected_batch_gradient(theta, ans, r, 2, "seq-mean-token-sum", "mean")
    e = expected_group_gradient(theta, ans, r, 2, gx.aggregation_objective("seq-mean-token-sum"))
    np.testing.assert_allclose(e_batch, e, atol=1e-13)


def test_batch_gradient_accumulated_equal_split_seq_mode():
    ans, theta, r = tree_setting(0, 4)
    groups = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]])
    full = gx.batch_gradient(theta, ans, groups, r, "seq-mean-token-mean")
    acc = gx.batch_gradient(theta, ans, groups, r, "seq-mean-token-mean", (2, 2))
    np.testing.assert_allclose(acc, full, atol=1e-14)


def test_success_probability_and_zero_variance_by_hand():
    ans, theta, r = book_tree()
    np.testing.assert_allclose(gx.success_probability(theta, ans, r), [1 / 3, 1 / 27])
    np.testing.assert_allclose(
        gx.zero_variance_fraction(theta, ans, r, 2),
        [(1 / 3) ** 2 + (2 / 3) ** 2, (1 / 27) ** 2 + (26 / 27) ** 2],
    )


def test_kl_loss_on_policy_is_answer_tree_k3_loss_gradient():
    ans, theta, _ = tree_setting(0)
    ref = np.random.default_rng(5).normal(size=theta.shape)
    np.testing.assert_allclose(
        gx.kl_gradient(theta, ref, ans, "k3", "loss"), k3_loss_gradient(theta, ref, ans), atol=1e-14
    )


def test_kl_reward_k1_is_kl_gradient_on_a_bandit():
    ans, theta, _ = bandit_setting(0)
    ref = np.random.default_rng(6).normal(size=theta.shape)
    np.testing.assert_allclose(
        gx.kl_gradient(theta, ref, ans, "k1", "reward"),
        forward_kl_gradient(theta, ref, ans),
        atol=1e-13,
    )


def test_mean_length_gradient_finite_difference():
    ans, theta, _ = tree_setting(0)
    d = np.random.default_rng(0).normal(size=theta.shape)
    h = 1e-6
    import torch

    from rlviz.tabular.answer_tree import answer_probs

    def mean_len(th):
        p = answer_probs(torch.tensor(th), ans).numpy()
        return float((p * ans.length).sum(-1).mean())

    fd = (mean_len(theta + h * d) - mean_len(theta - h * d)) / (2 * h)
    assert gx.mean_length_gradient(theta, ans) @ d.ravel() == pytest.approx(fd, rel=1e-6)


def test_exact_gradient_direction_of_token_sum():
    ans, theta, r = tree_setting(1)
    e = expected_group_gradient(theta, ans, r, 3, gx.aggregation_objective("seq-mean-token-sum"))
    np.testing.assert_allclose(e, 2 / 3 * exact_gradient(theta, ans, r), atol=1e-13)


def test_exact_gradient_of_token_sum_is_g_times_seq_mean_token_sum():
    """No normaliser: the group's token sum is G times the per-answer mean of token sums, so
    with the group mean baseline E[g] = (G - 1) grad J."""
    ans, theta, r = tree_setting(1)
    for G in (2, 3):
        e = expected_group_gradient(theta, ans, r, G, gx.aggregation_objective("token-sum"))
        np.testing.assert_allclose(e, (G - 1) * exact_gradient(theta, ans, r), atol=1e-12)


def test_expected_batch_gradient_with_one_std_for_the_batch_differs_from_per_group():
    ans, theta, r = book_tree()
    per_group = gx.expected_batch_gradient(theta, ans, r, 2, "seq-mean-token-sum", "std")
    one_std = gx.expected_batch_gradient(theta, ans, r, 2, "seq-mean-token-sum", "batch-std")
    e = expected_group_gradient(
        theta, ans, r, 2, gx.aggregation_objective("seq-mean-token-sum", "std")
    )
    np.testing.assert_allclose(per_group, e, atol=1e-13)
    assert np.abs(one_std - per_group).max() > 1e-3


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: gx.aggregation_objective("mean"), "mode must be one of"),
        (lambda: gx.aggregation_objective("token-mean", "batch-std"), "advantage must be"),
        (lambda: gx.aggregation_objective("token-mean", "none"), "advantage must be"),
        (lambda: gx.kl_gradient(*_kl_args(), "k3", "elsewhere"), "placement must be one of"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def _kl_args():
    ans, theta, _ = bandit_setting(0)
    return theta, theta, ans


def test_kl_forms_are_checked():
    import pytest

    from rlviz.experiments.answer_trees import tree_setting
    from rlviz.tabular.grpo_exact import KL_FORMS, kl_gradient

    assert KL_FORMS == ("reward", "loss", "loss-is", "loss-is-token", "loss-seq")
    ans, theta, _ = tree_setting(0)
    with pytest.raises(ValueError, match="placement must be one of"):
        kl_gradient(theta, theta, ans, "k3", "loss-per-prefix")
    # at pi = pi_ref every form of the KL penalty has zero gradient (the KL is at its minimum)
    for form in KL_FORMS:
        assert np.abs(kl_gradient(theta, theta, ans, "k2", form)).max() < 1e-12
