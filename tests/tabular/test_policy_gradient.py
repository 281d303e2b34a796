"""Tests of rlviz.tabular.policy_gradient: the exact objective, its gradient, and the chapter 3-6 identities
on random small MDPs (S <= 5, A <= 3, H <= 4) and random policies."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import mdp_draws

from rlviz.fn.stats import angle_and_norm_ratio
from rlviz.tabular.episodic import corridor, random_episodic_mdp
from rlviz.tabular.examples import random_mdp
from rlviz.tabular.mdp import discounted_state_distribution, finite_horizon_objective, objective
from rlviz.tabular.pg_estimators import (
    advantage_estimates,
    expectation,
    past_reward_estimates,
    reward_to_go_estimates,
    total_return_estimates,
)
from rlviz.tabular.policy_gradient import (
    exact_gradient,
    exact_hessian,
    finite_horizon_values,
    jacobian_asymmetry,
    notes_direction,
    notes_direction_torch,
    objective_torch,
    policy_gradient_theorem,
    score_table,
    score_table_autograd,
    softmax_policy,
)
from rlviz.tabular.trajectories import enumerate_trajectories

TOL = 1e-10
THETA = np.array([[0.3, -0.2], [-0.4, 0.5], [0.2, 0.1], [0.0, 0.0]])


@st.composite
def small_problem(draw, episodic: bool = False):
    """A random MDP (S <= 5, A <= 3), random logits and a horizon H <= 4."""
    gammas = (0.0, 0.5, 0.9, 1.0) if episodic else (0.0, 0.5, 0.9)
    rng, S, A, H, gamma = draw(mdp_draws(S=(2, 5), A=(2, 3), H=(1, 4), gammas=gammas))
    mdp = random_episodic_mdp(rng, S, A, gamma) if episodic else random_mdp(rng, S, A, gamma)
    theta = rng.normal(scale=1.5, size=(S, A))
    return mdp, theta, H


def test_softmax_policy_rows_sum_to_one_and_are_shift_invariant():
    theta = np.array([[1000.0, 1001.0], [0.0, 0.0]])
    pi = softmax_policy(theta)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-15)
    np.testing.assert_allclose(pi[0], softmax_policy(theta - 1000)[0], atol=1e-15)


def test_objective_torch_matches_numpy_objectives():
    mdp = corridor(0.9)
    pi = softmax_policy(THETA)
    th = torch.tensor(THETA.ravel(), dtype=torch.float64)
    assert abs(objective_torch(mdp, th, 6).item() - finite_horizon_objective(mdp, pi, 6)) < TOL
    assert abs(objective_torch(mdp, th).item() - objective(mdp, pi)) < TOL


def test_exact_gradient_matches_finite_differences():
    mdp = corridor(0.8)
    g = exact_gradient(mdp, THETA, 5)
    eps = 1e-6
    fd = np.zeros(THETA.size)
    for k in range(THETA.size):
        e = np.zeros(THETA.size)
        e[k] = eps
        plus = finite_horizon_objective(mdp, softmax_policy(THETA + e.reshape(THETA.shape)), 5)
        minus = finite_horizon_objective(mdp, softmax_policy(THETA - e.reshape(THETA.shape)), 5)
        fd[k] = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(g, fd, atol=1e-8)


def test_reward_to_go_needs_gamma_t():
    """The unbiased estimator of grad J_H must weight step t by gamma^t; dropping it is biased."""
    mdp = corridor(0.5)
    pi = softmax_policy(THETA)
    tr = enumerate_trajectories(mdp, pi, 5)
    g = exact_gradient(mdp, THETA, 5)
    est = expectation(tr, reward_to_go_estimates(tr, pi, mdp.gamma))
    assert np.abs(est - g).max() < TOL
    dropped = expectation(tr, reward_to_go_estimates(tr, pi, mdp.gamma, discount_t=False))
    assert np.abs(dropped - g).max() > 1e-3


def test_notes_direction_is_not_a_gradient_but_pg_theorem_is():
    mdp = corridor(0.5)
    asym, _ = jacobian_asymmetry(lambda th: notes_direction_torch(mdp, th), THETA)
    assert asym > 0.1
    hess = exact_hessian(mdp, THETA)
    assert np.linalg.norm(hess - hess.T) <= TOL * np.linalg.norm(hess)
    angle, ratio = angle_and_norm_ratio(notes_direction(mdp, THETA), exact_gradient(mdp, THETA))
    assert angle > 10 and ratio > 1


def test_notes_direction_equals_gradient_when_gamma_is_one():
    mdp = corridor(1.0)
    np.testing.assert_allclose(notes_direction(mdp, THETA), exact_gradient(mdp, THETA), atol=TOL)


def test_validation_errors_name_the_argument():
    mdp = corridor(0.9)
    with pytest.raises(ValueError, match="theta"):
        exact_gradient(mdp, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="horizon"):
        exact_gradient(mdp, THETA, 0)
    with pytest.raises(ValueError, match="episodic"):
        notes_direction(random_mdp(np.random.default_rng(0), 3, 2, 0.9), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="non-zero"):
        angle_and_norm_ratio(np.zeros(2), np.ones(2))


@settings(max_examples=40, deadline=None)
@given(small_problem())
def test_score_closed_form_and_mean_zero(problem):
    _, theta, _ = problem
    pi = softmax_policy(theta)
    table = score_table(pi)
    assert np.abs(table - score_table_autograd(theta)).max() < TOL
    assert np.abs(np.einsum("sa,sak->sk", pi, table)).max() < TOL


@settings(max_examples=40, deadline=None)
@given(small_problem())
def test_estimator_expectations_equal_autograd_gradient(problem):
    mdp, theta, H = problem
    pi = softmax_policy(theta)
    tr = enumerate_trajectories(mdp, pi, H)
    g = exact_gradient(mdp, theta, H)
    V, Q = finite_horizon_values(mdp, pi, H)
    for est in (
        total_return_estimates(tr, pi, mdp.gamma),
        reward_to_go_estimates(tr, pi, mdp.gamma),
        reward_to_go_estimates(tr, pi, mdp.gamma, baseline=V),
        advantage_estimates(tr, pi, mdp.gamma, Q - V[..., None]),
    ):
        assert np.abs(expectation(tr, est) - g).max() < TOL
    assert np.abs(expectation(tr, past_reward_estimates(tr, pi, mdp.gamma))).max() < TOL


@settings(max_examples=30, deadline=None)
@given(small_problem(episodic=True))
def test_finite_horizon_values_match_objective(problem):
    mdp, theta, H = problem
    pi = softmax_policy(theta)
    V, _ = finite_horizon_values(mdp, pi, H)
    assert abs(mdp.rho0 @ V[0] - finite_horizon_objective(mdp, pi, H)) < TOL


@settings(max_examples=30, deadline=None)
@given(small_problem(episodic=True))
def test_policy_gradient_theorem_on_random_episodic_mdps(problem):
    mdp, theta, _ = problem
    if mdp.gamma == 1.0:
        mdp = mdp.with_gamma(0.95)
    pi = softmax_policy(theta)
    d = discounted_state_distribution(mdp, pi)
    assert abs(d.sum() - 1) < TOL
    g = exact_gradient(mdp, theta)
    assert np.abs(policy_gradient_theorem(mdp, theta) - g).max() < TOL
