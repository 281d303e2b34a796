"""rlviz.tabular.entropy_dynamics: the covariance formula of the entropy change, exactly."""

from __future__ import annotations

import numpy as np
import pytest

from rlviz.fn.stats import loglog_slope
from rlviz.tabular.answer_tree import enumerate_answers, exact_gradient
from rlviz.tabular.entropy_dynamics import (
    entropy_covariance,
    entropy_derivative,
    first_order_errors,
    policy_gradient_logits,
    prefix_advantages,
    prefix_entropy,
)


def _tree(seed=0):
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(3, 3)
    theta = rng.normal(size=(2, ans.n_prefix, 3))
    return ans, theta, rng.integers(0, 2, size=(2, ans.n)).astype(float)


def test_entropy_of_uniform_is_log_vocab():
    assert np.allclose(prefix_entropy(np.zeros((1, 4, 5))), np.log(5), atol=1e-15)


def test_covariance_by_hand_for_two_tokens():
    # two tokens, p = (q, 1-q): dH/dz0 = -q(1-q) log(q/(1-q)) (derivative of the binary entropy)
    q = 0.2
    z = np.array([[[np.log(q), np.log(1 - q)]]])
    d = np.array([[[1.0, 0.0]]])
    assert np.isclose(entropy_covariance(z, d)[0, 0], -q * (1 - q) * np.log(q / (1 - q)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_covariance_equals_autograd_derivative(seed):
    _, theta, _ = _tree(seed)
    d = np.random.default_rng(seed + 5).normal(size=theta.shape)
    assert np.abs(entropy_covariance(theta, d) - entropy_derivative(theta, d)).max() < 1e-12


def test_shift_of_the_logits_changes_nothing():
    _, theta, _ = _tree()
    shift = np.ones_like(theta)
    assert np.abs(entropy_covariance(theta, shift)).max() < 1e-14
    assert np.abs(entropy_covariance(theta, shift, centred=False)).max() > 0.1  # the bug


def test_first_order_error_is_quadratic():
    _, theta, _ = _tree()
    d = np.random.default_rng(9).normal(size=theta.shape)
    steps = np.geomspace(1e-4, 1e-2, 5)
    assert abs(loglog_slope(steps, first_order_errors(theta, d, steps))[0] - 2) < 0.02
    assert (
        abs(loglog_slope(steps, first_order_errors(theta, d, steps, centred=False))[0] - 1) < 0.02
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_policy_gradient_closed_form(seed):
    ans, theta, r = _tree(seed)
    g = policy_gradient_logits(theta, ans, r).ravel()
    assert np.abs(g - exact_gradient(theta, ans, r)).max() < 1e-12


def test_advantages_have_mean_zero_and_root_probability_one():
    ans, theta, r = _tree()
    adv, reach = prefix_advantages(theta, ans, r)
    pi = np.exp(theta) / np.exp(theta).sum(-1, keepdims=True)
    assert np.abs((pi * adv).sum(-1)).max() < 1e-14
    assert np.allclose(reach[:, 0], 1.0)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="theta must have 3 dimension"):
        prefix_entropy(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dtheta must have shape \(1, 2, 3\)"):
        entropy_covariance(np.zeros((1, 2, 3)), np.zeros((1, 2, 4)))


def test_raises_entropy_by_hand():
    """pi = (0.7, 0.2, 0.1): H = 0.8018, e^{-H} = 0.4485, so pushing up the two rare tokens
    raises the entropy and pushing up the common one lowers it."""
    import numpy as np

    from rlviz.tabular.entropy_dynamics import raises_entropy

    z = np.log([0.7, 0.2, 0.1])
    assert raises_entropy(z).tolist() == [False, True, True]
    assert raises_entropy(np.log([0.5, 0.3, 0.2])).tolist() == [False, True, True]
