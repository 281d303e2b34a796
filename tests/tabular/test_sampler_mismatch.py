"""rlviz.tabular.sampler_mismatch: exact moments of the off-policy corrections on the answer
tree, against brute force and the closed forms (float64, 1e-10)."""

import math

import numpy as np
import pytest
import torch

from rlviz.tabular.answer_tree import answer_probs, enumerate_answers, exact_gradient
from rlviz.tabular.sampler_mismatch import (
    estimator_gradients,
    estimator_moments,
    max_weights,
    sampler_baseline,
    sequence_truncation_bias,
)


def _setting(seed=0, delta=0.7):
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(3, 3)
    theta = rng.normal(size=(2, ans.n_prefix, 3))
    r = rng.integers(0, 2, size=(2, ans.n)).astype(float)
    return ans, theta, theta + delta * rng.normal(size=theta.shape), r


def test_sequence_is_is_unbiased_and_naive_is_not():
    ans, theta, mu, r = _setting()
    g = exact_gradient(theta, ans, r)
    m = estimator_moments(theta, mu, ans, r, "is", "sequence")
    np.testing.assert_allclose(m["mean"], g, rtol=0, atol=1e-10)
    assert estimator_moments(theta, mu, ans, r, "none", "token")["rel_bias"] > 0.1


def test_one_token_answers_token_equals_sequence():
    rng = np.random.default_rng(4)
    ans = enumerate_answers(5, 1)
    theta = rng.normal(size=(3, 1, 5))
    mu, r = theta + rng.normal(size=theta.shape), rng.normal(size=(3, 5))
    for c in ("is", "tis", "mis"):
        a = estimator_gradients(theta, mu, ans, r, c, "token", 1.3)
        b = estimator_gradients(theta, mu, ans, r, c, "sequence", 1.3)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("correction", ["tis", "mis"])
@pytest.mark.parametrize("cap", [0.8, 1.5, 3.0])
def test_truncation_bias_closed_form(correction, cap):
    ans, theta, mu, r = _setting(1)
    m = estimator_moments(theta, mu, ans, r, correction, "sequence", cap)
    b = sequence_truncation_bias(theta, mu, ans, r, correction, cap)
    np.testing.assert_allclose(m["bias"], b, rtol=0, atol=1e-10)


def test_variance_matches_brute_force():
    ans, theta, mu, r = _setting(2)
    g = estimator_gradients(theta, mu, ans, r, "tis", "token", 2.0)  # (P, n, D)
    p = answer_probs(torch.tensor(mu), ans).numpy()
    # enumerate every batch (one answer per prompt) and its probability
    mean, second = 0.0, 0.0
    for i in range(ans.n):
        for j in range(ans.n):
            est = g[0, i] + g[1, j]
            mean = mean + p[0, i] * p[1, j] * est
            second = second + p[0, i] * p[1, j] * est @ est
    m = estimator_moments(theta, mu, ans, r, "tis", "token", 2.0)
    np.testing.assert_allclose(m["mean"], mean, rtol=0, atol=1e-12)
    assert abs(m["var"] - (second - mean @ mean)) < 1e-10


def test_baseline_and_max_weights():
    ans, theta, mu, r = _setting(3)
    b = sampler_baseline(mu, ans, r)
    p = answer_probs(torch.tensor(mu), ans).numpy()
    np.testing.assert_allclose(b, (p * r).sum(-1), rtol=0, atol=1e-14)
    w = max_weights(theta, mu, ans)
    m_cap = estimator_moments(theta, mu, ans, r, "tis", "sequence", w["sequence"])
    m_is = estimator_moments(theta, mu, ans, r, "is", "sequence")
    np.testing.assert_allclose(m_cap["mean"], m_is["mean"], rtol=0, atol=1e-12)
    assert max_weights(theta, theta, ans) == {"sequence": 1.0, "token": 1.0}


def test_bad_inputs_raise():
    ans, theta, mu, r = _setting()
    with pytest.raises(ValueError, match="theta_mu must have the shape"):
        estimator_moments(theta, mu[:1], ans, r)
    with pytest.raises(ValueError, match="r must have shape"):
        estimator_moments(theta, mu, ans, r[:, :3])
    with pytest.raises(ValueError, match="theta must have shape"):
        estimator_moments(theta[:, :2], mu[:, :2], ans, r)
    with pytest.raises(ValueError, match="baseline must have shape"):
        estimator_moments(theta, mu, ans, r, baseline=[0.0])
    with pytest.raises(ValueError, match="correction must be 'tis' or 'mis'"):
        sequence_truncation_bias(theta, mu, ans, r, "is", math.inf)
