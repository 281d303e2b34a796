"""Tests of rlviz.tabular.surrogate: importance sampling, the surrogate objective, KL and Fisher matrices,
the lower bound of Schulman et al. (2015) and tabular TRPO, on random small MDPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import mdp_draws, seeds

from rlviz.fn.stats import sample_variance_se
from rlviz.tabular.episodic import corridor
from rlviz.tabular.examples import random_mdp, random_policy
from rlviz.tabular.mdp import TabularMDP, discounted_state_distribution, objective
from rlviz.tabular.policy_gradient import DTYPE, exact_gradient, objective_torch, softmax_policy
from rlviz.tabular.surrogate import (
    fisher_matrix,
    importance_weighted_means,
    kl_hessian,
    kl_rows,
    kl_rows_torch,
    line_profile,
    mean_kl_torch,
    old_policy,
    policy_directions,
    ratio_variance,
    schulman_constant,
    surrogate_estimate_variance,
    surrogate_sample_estimates,
    surrogate_torch,
    tabular_natural_gradient,
    tabular_trpo,
    tabular_trpo_step,
)

TOL = 1e-10


@st.composite
def problem(draw):
    """A random dense MDP (S <= 5, A <= 3, gamma < 1) and random old logits."""
    rng, S, A, _, gamma = draw(mdp_draws(S=(1, 5), A=(2, 3), gammas=(0.0, 0.5, 0.9)))
    return old_policy(random_mdp(rng, S, A, gamma), rng.normal(scale=1.5, size=S * A)), rng


def _grad(fn, theta):
    th = torch.tensor(theta, dtype=DTYPE, requires_grad=True)
    (g,) = torch.autograd.grad(fn(th), th)
    return g.numpy()


# ------------------------------------------------------------------ per-state tables


def test_kl_rows_zero_for_equal_positive_otherwise_and_matches_torch():
    rng = np.random.default_rng(0)
    p, q = random_policy(rng, 4, 3), random_policy(rng, 4, 3)
    assert np.allclose(kl_rows(p, p), 0.0, atol=1e-15)
    kl = kl_rows(p, q)
    assert np.all(kl > 0)
    np.testing.assert_allclose(kl, (p * np.log(p / q)).sum(axis=1), atol=1e-15)
    old = old_policy(random_mdp(rng, 4, 3, 0.9), np.log(p).ravel())
    np.testing.assert_allclose(kl_rows_torch(old, np.log(q).ravel()).numpy(), kl, atol=1e-14)


def test_kl_rows_handles_zero_probabilities_and_rejects_missing_support():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    q = np.array([[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_allclose(kl_rows(p, q), [np.log(2), 0.0], atol=1e-15)
    with pytest.raises(ValueError, match="q must be > 0"):
        kl_rows(q, p)
    with pytest.raises(ValueError, match="q must have shape"):
        kl_rows(p, q[:1])


@settings(max_examples=50, deadline=None)
@given(seed=seeds, S=st.integers(1, 5), A=st.integers(1, 5))
def test_importance_sampling_is_exact(seed, S, A):
    rng = np.random.default_rng(seed)
    lhs, rhs = importance_weighted_means(
        random_policy(rng, S, A), random_policy(rng, S, A), rng.normal(size=(S, A))
    )
    np.testing.assert_allclose(lhs, rhs, atol=TOL)


def test_importance_sampling_needs_old_support():
    with pytest.raises(ValueError, match="pi_old must be > 0"):
        importance_weighted_means([[1.0, 0.0]], [[0.5, 0.5]], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="f must have shape"):
        importance_weighted_means([[0.5, 0.5]], [[0.5, 0.5]], [[1.0]])


@settings(max_examples=40, deadline=None)
@given(seed=seeds, A=st.integers(2, 5))
def test_ratio_variance_matches_enumeration_and_chi2(seed, A):
    rng = np.random.default_rng(seed)
    p_old, p_new = random_policy(rng, 1, A), random_policy(rng, 1, A)
    f = rng.normal(size=(1, A))
    x = p_new[0] / p_old[0] * f[0]
    brute = p_old[0] @ x**2 - (p_old[0] @ x) ** 2
    # relative tolerance: with a tiny p_old the variance reaches 1e4 and more
    assert ratio_variance(p_old, p_new, f)[0] == pytest.approx(brute, rel=1e-10, abs=1e-12)
    chi2 = (p_new[0] ** 2 / p_old[0]).sum() - 1
    assert ratio_variance(p_old, p_new, np.ones((1, A)))[0] == pytest.approx(
        chi2, rel=1e-10, abs=1e-12
    )
    # chi^2(new || old) >= exp(KL(new || old)) - 1 (Jensen)
    assert chi2 >= np.expm1(kl_rows(p_new, p_old)[0]) - 1e-12


# ------------------------------------------------------------------ the surrogate


@settings(max_examples=40, deadline=None)
@given(problem())
def test_surrogate_matches_J_in_value_and_gradient_at_theta_old(prob):
    old, _ = prob
    th = torch.tensor(old.theta, dtype=DTYPE)
    assert float(surrogate_torch(old, th)) == pytest.approx(old.J, abs=TOL)
    assert float(objective_torch(old.mdp, th)) == pytest.approx(old.J, abs=TOL)
    gL = _grad(lambda t: surrogate_torch(old, t), old.theta)
    gJ = exact_gradient(old.mdp, old.theta.reshape(old.mdp.n_states, -1))
    np.testing.assert_allclose(gL, gJ, atol=TOL)


@settings(max_examples=40, deadline=None)
@given(problem())
def test_performance_difference_lemma(prob):
    old, rng = prob
    theta = old.theta + rng.normal(size=old.theta.size)
    pi = softmax_policy(theta.reshape(old.mdp.n_states, -1))
    rhs = discounted_state_distribution(old.mdp, pi) @ (pi * old.adv).sum(axis=1)
    assert objective(old.mdp, pi) - old.J == pytest.approx(rhs / (1 - old.mdp.gamma), abs=TOL)


def test_surrogate_and_J_differ_away_from_theta_old():
    old = old_policy(corridor(0.9), [[0.3, -0.2], [-0.4, 0.5], [0.2, 0.1], [0.0, 0.0]])
    u = policy_directions(old, 0)["gradient"]
    th = old.theta + 2.0 * u
    gap = np.linalg.norm(
        _grad(lambda t: objective_torch(old.mdp, t), th)
        - _grad(lambda t: surrogate_torch(old, t), th)
    )
    assert gap > 1e-3
    prof = line_profile(old, u, [0.0, 2.0])
    assert prof["J"][0] == pytest.approx(prof["L"][0], abs=TOL)
    assert abs(prof["J"][1] - prof["L"][1]) > 1e-4
    assert prof["kl_mean"][0] == 0.0 and prof["kl_max"][1] >= prof["kl_mean"][1] > 0


def test_old_policy_validates():
    m = corridor(1.0)
    with pytest.raises(ValueError, match="gamma in \\[0, 1\\)"):
        old_policy(m, np.zeros(8))
    with pytest.raises(ValueError, match="theta_old must have shape"):
        old_policy(corridor(0.9), np.zeros(7))


def test_surrogate_sample_estimates_are_unbiased_with_the_exact_variance():
    rng = np.random.default_rng(3)
    old = old_policy(random_mdp(rng, 4, 3, 0.8), rng.normal(size=12))
    theta = old.theta + rng.normal(size=12)
    var_rho, var_x = surrogate_estimate_variance(old, theta)
    # brute force over all (s, a) pairs
    pi = softmax_policy(theta.reshape(4, 3))
    w = old.d[:, None] * old.pi
    rho = pi / old.pi
    x = rho * old.adv / (1 - old.mdp.gamma)
    assert var_rho == pytest.approx((w * rho**2).sum() - (w * rho).sum() ** 2, abs=1e-12)
    assert var_x == pytest.approx((w * x**2).sum() - (w * x).sum() ** 2, abs=1e-12)
    rho_s, x_s = surrogate_sample_estimates(np.random.default_rng(4), old, theta, 40_000)
    L = float(surrogate_torch(old, theta))
    assert abs(x_s.mean() - (L - old.J)) < 4 * np.sqrt(var_x / x_s.size)
    assert abs(rho_s.mean() - 1.0) < 4 * np.sqrt(var_rho / rho_s.size)
    v, se = sample_variance_se(x_s)
    assert abs(v - var_x) < 4 * se


def test_sample_variance_se_validates_and_is_zero_for_constants():
    assert sample_variance_se(np.ones(10)) == (0.0, 0.0)
    with pytest.raises(ValueError, match="at least 2"):
        sample_variance_se([1.0])


def test_policy_directions_are_unit_and_move_the_policy():
    old = old_policy(corridor(0.9), np.zeros(8))
    dirs = policy_directions(old, 3, seed=1)
    assert list(dirs) == ["gradient", "random 1", "random 2", "random 3"]
    for u in dirs.values():
        assert np.linalg.norm(u) == pytest.approx(1.0)
        table = u.reshape(4, 2)
        np.testing.assert_allclose(table.sum(axis=1), 0.0, atol=1e-12)
        assert np.all(table[3] == 0.0)  # the terminal state


# ------------------------------------------------------------------ Fisher and bound


@settings(max_examples=30, deadline=None)
@given(problem())
def test_fisher_is_kl_hessian_singular_and_natural_gradient_is_advantage(prob):
    old, _ = prob
    F = fisher_matrix(old)
    np.testing.assert_allclose(F, kl_hessian(old), atol=TOL)
    S, A = old.mdp.n_states, old.mdp.n_actions
    assert np.linalg.matrix_rank(F, tol=1e-12) <= S * (A - 1)
    g = exact_gradient(old.mdp, old.theta.reshape(S, A))
    np.testing.assert_allclose(
        np.linalg.pinv(F, rcond=1e-12) @ g, tabular_natural_gradient(old), atol=1e-8
    )
    np.testing.assert_allclose(F @ tabular_natural_gradient(old), g, atol=TOL)


@settings(max_examples=30, deadline=None)
@given(problem(), st.floats(-3, 3))
def test_schulman_lower_bound_holds(prob, t):
    old, rng = prob
    u = rng.normal(size=old.theta.size)
    prof = line_profile(old, u / np.linalg.norm(u), [t])
    assert prof["J"][0] >= prof["bound"][0] - 1e-10


def test_schulman_constant_formula():
    old = old_policy(corridor(0.9), np.zeros(8))
    C, eps = schulman_constant(old)
    assert eps == pytest.approx(np.abs(old.adv).max())
    assert C == pytest.approx(4 * eps * 0.9 / 0.01)


# ------------------------------------------------------------------ tabular TRPO


@settings(max_examples=20, deadline=None)
@given(problem(), st.sampled_from([0.001, 0.01, 0.1]))
def test_trpo_step_respects_delta_exactly(prob, delta):
    old, _ = prob
    out = tabular_trpo_step(old, delta)
    kl = float(mean_kl_torch(old, out["theta"]))
    assert kl <= delta + 1e-15
    assert out["kl"] == pytest.approx(kl, abs=1e-15)
    if out["fraction"] > 0:
        assert out["improvement"] > 0


def test_trpo_on_corridor_increases_J_to_the_optimum():
    m = corridor(0.9)
    h = tabular_trpo(m, np.zeros(8), 0.05, 15)
    assert np.all(np.diff(h["J"]) >= -1e-12)
    assert h["J"][-1] > h["J"][0] + 0.1
    assert np.all(h["kl"] <= 0.05)


def test_trpo_step_at_a_stationary_point_does_nothing():
    P = np.full((2, 2, 2), 0.5)
    m = TabularMDP(P, np.ones((2, 2)), np.array([1.0, 0.0]), 0.9)  # reward independent of actions
    old = old_policy(m, np.zeros(4))
    out = tabular_trpo_step(old, 0.01)
    assert out["fraction"] == 0.0 and np.array_equal(out["theta"], old.theta)
    with pytest.raises(ValueError, match="delta"):
        tabular_trpo_step(old, 0.0)
