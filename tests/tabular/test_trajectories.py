"""Unit tests of rlviz.tabular.trajectories: enumeration, sampling, returns."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import mdp_draws

from rlviz.fn.stats import z_scores
from rlviz.tabular import mdp as M
from rlviz.tabular.examples import gridworld, random_mdp, random_policy, two_state_chain
from rlviz.tabular.trajectories import (
    discounted_sum,
    enumerate_trajectories,
    mc_action_values,
    mc_state_values,
    rewards_to_go,
    sample_trajectories,
)


def test_chain_enumeration_by_hand():
    chain = two_state_chain(0.5)
    pi = np.array([[0.75, 0.25], [0.5, 0.5]])
    tr = enumerate_trajectories(chain, pi, 2)
    assert tr.n == 4  # start in s0, two binary choices
    got = {tuple(s): p for s, p in zip(tr.states.tolist(), tr.prob)}
    assert got[(0, 0, 0)] == pytest.approx(0.75 * 0.75)
    assert got[(0, 1, 0)] == pytest.approx(0.25 * 0.5)
    # stay, stay: rewards 1, 1 so G_0 = 1 + 0.5; move, move: rewards 1, 0 so G_0 = 1
    g = {tuple(s): x for s, x in zip(tr.states.tolist(), discounted_sum(tr.rewards, 0.5))}
    assert g[(0, 0, 0)] == pytest.approx(1.5) and g[(0, 1, 0)] == pytest.approx(1.0)
    j_enum = tr.prob @ discounted_sum(tr.rewards, 0.5)
    assert np.isclose(j_enum, M.finite_horizon_objective(chain, pi, 2), atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(mdp_draws(S=(1, 4), A=(1, 3), H=(1, 4), gammas=(0.9,)))
def test_enumeration_is_a_distribution_and_gives_J_H(case):
    rng, S, A, H, _ = case
    mdp = random_mdp(rng, S, A, 0.9, sparsity=0.4)
    pi = random_policy(rng, S, A)
    tr = enumerate_trajectories(mdp, pi, H)
    assert abs(tr.prob.sum() - 1) < 1e-12 and tr.prob.min() > 0
    assert (
        abs(tr.prob @ discounted_sum(tr.rewards, 0.9) - M.finite_horizon_objective(mdp, pi, H))
        < 1e-10
    )


def test_episodes_stop_at_terminal_states():
    grid = gridworld(0.9)
    tr = sample_trajectories(grid, M.uniform_policy(grid), 500, 200, seed=0)
    end = np.flatnonzero(grid.terminal)[0]
    for m in range(tr.n):
        steps = np.flatnonzero(~tr.alive[m])
        if len(steps):
            first = steps[0]
            assert tr.states[m, first] == end
            assert np.all(tr.states[m, first:] == end) and np.all(tr.rewards[m, first:] == 0)
            assert np.all(tr.alive[m, :first])


def test_sampling_is_seeded_and_matches_probabilities():
    chain = two_state_chain(0.9)
    pi = np.array([[0.7, 0.3], [0.4, 0.6]])
    a = sample_trajectories(chain, pi, 20000, 3, seed=7)
    b = sample_trajectories(chain, pi, 20000, 3, seed=7)
    assert np.array_equal(a.states, b.states) and np.array_equal(a.actions, b.actions)
    # empirical frequency of each enumerated trajectory within 4 standard errors
    tr = enumerate_trajectories(chain, pi, 3)
    keys = {
        tuple(s) + tuple(x): k
        for k, (s, x) in enumerate(zip(tr.states.tolist(), tr.actions.tolist()))
    }
    counts = np.zeros(tr.n)
    for s, x in zip(a.states.tolist(), a.actions.tolist()):
        counts[keys[tuple(s) + tuple(x)]] += 1
    freq = counts / a.n
    se = np.sqrt(tr.prob * (1 - tr.prob) / a.n)
    assert np.all(np.abs(freq - tr.prob) < 4 * se)


def test_rewards_to_go_recursion():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(3, 5))
    G = rewards_to_go(r, 0.9)
    np.testing.assert_allclose(G[:, :-1], r[:, :-1] + 0.9 * G[:, 1:], atol=1e-12)
    np.testing.assert_allclose(G[:, 0], discounted_sum(r, 0.9), atol=1e-12)


def test_monte_carlo_values_within_standard_errors():
    grid = gridworld(0.9)
    pi = M.uniform_policy(grid)
    est = mc_state_values(grid, pi, 400, 300, seed=3)
    assert (
        z_scores(
            est.mean, est.se, M.state_values(grid, pi), bias_bound=est.truncation_bias_bound
        ).max()
        < 4.5
    )
    q_est = mc_action_values(grid, pi, 200, 300, seed=4)
    assert (
        z_scores(
            q_est.mean, q_est.se, M.action_values(grid, pi), bias_bound=q_est.truncation_bias_bound
        ).max()
        < 4.5
    )
    # and the check can fail: a wrong "exact" value is many standard errors away
    assert (
        z_scores(
            est.mean, est.se, M.state_values(grid, pi) + 0.05, bias_bound=est.truncation_bias_bound
        ).max()
        > 4.5
    )


@pytest.mark.parametrize(
    "call,match",
    [
        (
            lambda c, p: enumerate_trajectories(c, p, 0),
            r"horizon must be a positive integer, got 0",
        ),
        (lambda c, p: enumerate_trajectories(c, p, 2.5), r"horizon must be a positive integer"),
        (lambda c, p: enumerate_trajectories(c, p, 30, max_trajectories=1000), r"max_trajectories"),
        (lambda c, p: sample_trajectories(c, p, 0, 3), r"n must be a positive integer, got 0"),
        (
            lambda c, p: sample_trajectories(c, p, 5, 3, s0=7),
            r"s0 must be state indices in \[0, 1\]",
        ),
        (lambda c, p: sample_trajectories(c, p, 5, 3, a0=-1), r"a0 must be action indices"),
        (lambda c, p: discounted_sum(np.ones(3), 0.9), r"rewards must have 2 dimension"),
        (lambda c, p: rewards_to_go(np.array([[1.0, np.nan]]), 0.9), r"rewards must be finite"),
        (lambda c, p: rewards_to_go(np.ones((1, 2)), 2.0), r"gamma must be in \[0, 1\], got 2.0"),
    ],
)
def test_bad_input_raises_clear_error(call, match):
    chain = two_state_chain(0.9)
    with pytest.raises(ValueError, match=match):
        call(chain, M.uniform_policy(chain))
