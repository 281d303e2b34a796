"""Tests of rlviz.tabular.pg_estimators: baselines, the optimal baseline, action-dependent bias, moments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import mdp_draws

from rlviz.fn.stats import sample_mean_se
from rlviz.tabular.episodic import corridor, random_episodic_mdp
from rlviz.tabular.pg_estimators import (
    action_baseline_bias,
    action_baseline_estimates,
    advantage_estimate_moments,
    covariance,
    expectation,
    optimal_baseline,
    per_parameter_baseline_estimates,
    reward_to_go_estimates,
    score_terms,
    total_return_estimates,
    total_variance,
)
from rlviz.tabular.policy_gradient import exact_gradient, finite_horizon_values, softmax_policy
from rlviz.tabular.trajectories import enumerate_trajectories, sample_trajectories

TOL = 1e-10


@st.composite
def enumerated(draw):
    rng, S, A, H, gamma = draw(mdp_draws(S=(2, 5), A=(2, 3), H=(1, 4), gammas=(0.5, 0.9, 1.0)))
    mdp = random_episodic_mdp(rng, S, A, gamma)
    theta = rng.normal(size=(S, A))
    pi = softmax_policy(theta)
    return mdp, theta, pi, H, enumerate_trajectories(mdp, pi, H), rng


def _reference_reward_to_go(tr, pi, gamma):
    """The obvious loop over trajectories and steps (oracle of the vectorised version)."""
    from rlviz.tabular.policy_gradient import score_table

    table = score_table(pi)
    out = np.zeros((tr.n, table.shape[2]))
    for m in range(tr.n):
        for t in range(tr.horizon):
            if tr.alive[m, t]:
                G = sum(gamma**l * tr.rewards[m, t + l] for l in range(tr.horizon - t))
                out[m] += gamma**t * G * table[tr.states[m, t], tr.actions[m, t]]
    return out


def test_vectorised_reward_to_go_matches_loop():
    mdp = corridor(0.9)
    pi = softmax_policy(np.zeros((4, 2)))
    tr = sample_trajectories(mdp, pi, 50, 5, seed=3)
    np.testing.assert_allclose(
        reward_to_go_estimates(tr, pi, 0.9), _reference_reward_to_go(tr, pi, 0.9), atol=1e-13
    )


def test_score_terms_zero_after_termination():
    mdp = corridor(0.9, n_cells=1)  # every episode ends after one step
    pi = softmax_policy(np.zeros((2, 2)))
    tr = enumerate_trajectories(mdp, pi, 3)
    assert np.all(score_terms(tr, pi)[:, 1:] == 0)


def test_exact_moments_need_probabilities_and_shapes_are_checked():
    mdp = corridor(0.9)
    pi = softmax_policy(np.zeros((4, 2)))
    tr = sample_trajectories(mdp, pi, 10, 3, seed=0)
    with pytest.raises(ValueError, match="enumerated"):
        expectation(tr, total_return_estimates(tr, pi, 0.9))
    with pytest.raises(ValueError, match="baseline"):
        reward_to_go_estimates(tr, pi, 0.9, baseline=np.zeros((2, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        sample_mean_se(np.zeros((1, 3)))


@settings(max_examples=30, deadline=None)
@given(enumerated())
def test_any_state_baseline_is_unbiased(problem):
    mdp, theta, pi, H, tr, rng = problem
    g = exact_gradient(mdp, theta, H)
    b = rng.normal(scale=3.0, size=(H, mdp.n_states))
    assert (
        np.abs(expectation(tr, reward_to_go_estimates(tr, pi, mdp.gamma, baseline=b)) - g).max()
        < TOL
    )


@settings(max_examples=30, deadline=None)
@given(enumerated())
def test_optimal_baseline_is_unbiased_and_minimal(problem):
    mdp, theta, pi, H, tr, rng = problem
    g = exact_gradient(mdp, theta, H)
    b = optimal_baseline(tr, pi, mdp.gamma)
    best = per_parameter_baseline_estimates(tr, pi, mdp.gamma, b)
    assert np.abs(expectation(tr, best) - g).max() < TOL
    V, _ = finite_horizon_values(mdp, pi, H)
    v_best = np.diag(covariance(tr, best))
    for other in (
        reward_to_go_estimates(tr, pi, mdp.gamma),
        reward_to_go_estimates(tr, pi, mdp.gamma, baseline=V),
        per_parameter_baseline_estimates(tr, pi, mdp.gamma, b + rng.normal(size=b.shape)),
    ):
        assert np.all(v_best <= np.diag(covariance(tr, other)) + TOL)


@settings(max_examples=30, deadline=None)
@given(enumerated())
def test_action_baseline_bias_closed_form(problem):
    mdp, theta, pi, H, tr, rng = problem
    g = exact_gradient(mdp, theta, H)
    b = rng.normal(size=(H, mdp.n_states, mdp.n_actions))
    bias = expectation(tr, action_baseline_estimates(tr, pi, mdp.gamma, b)) - g
    assert np.abs(bias - action_baseline_bias(mdp, pi, H, b)).max() < TOL
    # an action-independent b(s, a) = c(s) has no bias
    c = np.repeat(rng.normal(size=(mdp.n_states, 1)), mdp.n_actions, axis=1)
    assert np.abs(action_baseline_bias(mdp, pi, H, c)).max() < TOL


@settings(max_examples=30, deadline=None)
@given(enumerated())
def test_advantage_estimate_is_unbiased(problem):
    mdp, _, pi, H, tr, _ = problem
    V, Q = finite_horizon_values(mdp, pi, H)
    prob, mean, var = advantage_estimate_moments(tr, mdp.gamma, V, mdp.n_actions)
    seen = prob > 0
    assert np.abs(mean[seen] - (Q - V[..., None])[seen]).max() < TOL
    assert np.all(var[seen] >= 0)
    assert abs(prob[0].sum() - 1) < TOL  # at t = 0 every episode is alive


def test_total_variance_is_trace_of_covariance():
    mdp = corridor(0.9)
    pi = softmax_policy(np.zeros((4, 2)))
    tr = enumerate_trajectories(mdp, pi, 4)
    est = total_return_estimates(tr, pi, 0.9)
    assert abs(total_variance(tr, est) - np.trace(covariance(tr, est))) < TOL
