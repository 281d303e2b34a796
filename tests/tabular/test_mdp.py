"""Unit tests of rlviz.tabular.mdp against exact answers: the hand-solved chain and random MDPs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import mdp_draws

from rlviz.tabular import mdp as M
from rlviz.tabular.examples import (
    gridworld,
    random_mdp,
    random_policy,
    two_state_chain,
    two_state_values_by_hand,
)

TOL = 1e-10


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.9, 0.999])
@pytest.mark.parametrize("a,b", [(0.0, 0.0), (0.2, 0.7), (1.0, 1.0), (0.5, 0.0)])
def test_two_state_chain_matches_hand_solution(gamma, a, b):
    pi = np.array([[1 - a, a], [1 - b, b]])
    v = M.state_values(two_state_chain(gamma), pi)
    np.testing.assert_allclose(v, two_state_values_by_hand(gamma, a, b), rtol=0, atol=1e-9)


def test_two_state_chain_special_cases_by_hand():
    # always stay: V(s0) = 1/(1-gamma), V(s1) = 0; always move: V(s0) = 1/(1-gamma^2)
    g = 0.9
    v_stay = M.state_values(two_state_chain(g), [[1, 0], [1, 0]])
    v_move = M.state_values(two_state_chain(g), [[0, 1], [0, 1]])
    np.testing.assert_allclose(v_stay, [10.0, 0.0], atol=TOL)
    np.testing.assert_allclose(v_move, [1 / (1 - g**2), g / (1 - g**2)], atol=TOL)


small_mdps = mdp_draws(S=(1, 5), A=(1, 3), gammas=(0.0, 0.5, 0.9, 0.99))


@settings(max_examples=50, deadline=None)
@given(small_mdps)
def test_bellman_identities_on_random_mdps(case):
    rng, S, A, _, gamma = case
    mdp = random_mdp(rng, S, A, gamma, sparsity=0.3)
    pi = random_policy(rng, S, A)
    v, q, adv = M.state_values(mdp, pi), M.action_values(mdp, pi), M.advantages(mdp, pi)
    res_v, res_q = M.bellman_residuals(mdp, pi)
    assert np.abs(res_v).max() < TOL and np.abs(res_q).max() < TOL
    assert np.abs((pi * adv).sum(1)).max() < TOL
    np.testing.assert_allclose(adv, q - v[:, None], atol=TOL)
    assert abs(M.objective(mdp, pi) - mdp.rho0 @ v) < TOL
    if gamma < 1:
        d = M.discounted_state_distribution(mdp, pi)
        assert abs(d.sum() - 1) < TOL and d.min() > -TOL
        # J = E_{s~d}[r_pi(s)] / (1 - gamma)
        assert abs(M.objective(mdp, pi) - d @ M.policy_reward(mdp, pi) / (1 - gamma)) < 1e-9


@settings(max_examples=30, deadline=None)
@given(small_mdps, st.integers(1, 6))
def test_finite_horizon_objective_equals_unrolled_solve(case, H):
    rng, S, A, _, gamma = case
    mdp = random_mdp(rng, S, A, gamma)
    pi = random_policy(rng, S, A)
    j_rec = M.finite_horizon_objective(mdp, pi, H)
    j_solve = M.objective(M.time_unrolled(mdp, H), M.unrolled_policy(pi, H))
    assert abs(j_rec - j_solve) < TOL


def test_gridworld_is_episodic_and_gamma_one_solves():
    grid = gridworld(1.0)
    pi = M.uniform_policy(grid)
    v = M.state_values(grid, pi)
    assert v[grid.terminal].tolist() == [0.0]
    eta = M.state_visitation(grid, pi)
    # expected episode length = expected number of visits to non-terminal states
    assert eta.sum() > 1 and np.all(eta[~grid.terminal] >= 0)
    res_v, res_q = M.bellman_residuals(grid, pi)
    assert np.abs(res_v).max() < TOL and np.abs(res_q).max() < TOL


def test_value_iteration_is_greedy_fixed_point():
    grid = gridworld(0.9)
    v_star, q_star = M.value_iteration(grid)
    greedy = M.epsilon_greedy(q_star, 0.0)
    np.testing.assert_allclose(M.state_values(grid, greedy), v_star, atol=1e-9)


# --------------------------------------------------------------------- bad input
def _P():
    return np.full((2, 2, 2), 0.5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(gamma=1.3), r"gamma must be in \[0, 1\], got 1.3"),
        (dict(gamma=-0.1), r"gamma must be in \[0, 1\]"),
        (dict(gamma=float("nan")), r"gamma must be in \[0, 1\]"),
        (dict(gamma="high"), r"gamma must be a number"),
        (dict(gamma=1.0), r"gamma = 1 needs terminal states"),
        (dict(P=np.full((2, 2, 2), 0.4)), r"P must sum to 1 over its last axis, got sum 0.8"),
        (dict(P=np.full((2, 2, 3), 1 / 3)), r"P must have shape \(S, A, S\)"),
        (dict(P=np.full((2, 2), 0.5)), r"P must have 3 dimension"),
        (dict(P=np.array([[[1.5, -0.5]] * 2] * 2)), r"P must be non-negative probabilities"),
        (dict(r=np.zeros((2, 3))), r"r must have shape \(2, 2\), got \(2, 3\)"),
        (dict(r=np.array([[0.0, np.nan], [0, 0]])), r"r must be finite \(no NaN or inf\), got nan"),
        (dict(rho0=[0.5, 0.6]), r"rho0 must sum to 1"),
        (dict(rho0=[1.0]), r"rho0 must have shape \(2\), got \(1,\)"),
        (dict(terminal=np.array([1, 0])), r"terminal must be a boolean array"),
        (dict(terminal=np.array([True, False])), r"terminal state 0 must be absorbing"),
    ],
)
def test_bad_mdp_input_raises_clear_error(kwargs, match):
    args = dict(P=_P(), r=np.zeros((2, 2)), rho0=[1.0, 0.0], gamma=0.9)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        M.TabularMDP(**args)


def test_terminal_state_with_reward_rejected():
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = P[1, 0, 1] = 1
    with pytest.raises(ValueError, match=r"terminal state 1 must have zero reward"):
        M.TabularMDP(P, np.array([[0.0], [1.0]]), [1, 0], 0.9, np.array([False, True]))


@pytest.mark.parametrize(
    "pi,match",
    [
        (np.full((2, 3), 1 / 3), r"pi must have shape \(2, 2\), got \(2, 3\)"),
        (np.array([[0.5, 0.6], [0.5, 0.5]]), r"pi must sum to 1"),
        (np.array([[np.nan, 1], [0.5, 0.5]]), r"pi must be finite"),
        (np.full((2,), 0.5), r"pi must have shape \(2, 2\), got \(2,\)"),
    ],
)
def test_bad_policy_raises_clear_error(pi, match):
    with pytest.raises(ValueError, match=match):
        M.state_values(two_state_chain(0.9), pi)


def test_non_terminating_policy_with_gamma_one_is_refused():
    # a 2-state MDP with a terminal state that the policy never reaches
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = 1  # action 0 stays
    P[0, 1, 1] = 1  # action 1 terminates
    P[1, :, 1] = 1
    mdp = M.TabularMDP(P, np.array([[1.0, 0.0], [0.0, 0.0]]), [1, 0], 1.0, np.array([False, True]))
    with pytest.raises(ValueError, match="singular"):
        M.state_values(mdp, [[1, 0], [1, 0]])
    assert M.state_values(mdp, [[0.5, 0.5], [1, 0]])[0] == pytest.approx(1.0)  # 1 + 1/2 + 1/4...


def test_discounted_distribution_needs_gamma_below_one():
    with pytest.raises(ValueError, match=r"needs gamma in \[0, 1\), got 1.0"):
        M.discounted_state_distribution(gridworld(1.0), M.uniform_policy(gridworld(1.0)))


def test_mdp_arrays_are_read_only():
    chain = two_state_chain(0.9)
    with pytest.raises(ValueError):
        chain.P[0, 0, 0] = 0.5
