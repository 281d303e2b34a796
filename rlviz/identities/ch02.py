"""Chapter 2: value functions and the advantage."""

from __future__ import annotations

import numpy as np

from rlviz.experiments.ch02 import mc_error_curve
from rlviz.fn.stats import z_scores
from rlviz.tabular.examples import (
    book_grid_policy,
    random_mdp,
    random_policy,
    two_state_chain,
    two_state_values_by_hand,
)
from rlviz.tabular.mdp import (
    action_values,
    advantages,
    bellman_residuals,
    epsilon_greedy,
    state_values,
    value_iteration,
)
from rlviz.tabular.trajectories import mc_action_values, mc_state_values
from rlviz.verify import Measure, identity


@identity(
    "ch2.two_state_by_hand",
    chapter=2,
    title="V by linear solve = V solved by hand (two-state chain)",
)
def two_state_by_hand() -> Measure:
    errs = []
    for gamma in (0.0, 0.5, 0.9, 0.99):
        for a in (0.0, 0.3, 1.0):
            for b in (0.1, 0.6):
                pi = np.array([[1 - a, a], [1 - b, b]])
                errs.append(
                    np.abs(
                        state_values(two_state_chain(gamma), pi)
                        - two_state_values_by_hand(gamma, a, b)
                    ).max()
                )
    return Measure(float(max(errs)), "24 (gamma, a, b) settings")


@identity("ch2.bellman_equations", chapter=2, title="Bellman: V = sum_a pi Q and Q = r + gamma P V")
def bellman_equations() -> Measure:
    errs = []
    grid, pi = book_grid_policy()
    res_v, res_q = bellman_residuals(grid, pi)
    errs += [np.abs(res_v).max(), np.abs(res_q).max()]
    rng = np.random.default_rng(2)
    for _ in range(20):
        mdp = random_mdp(rng, 5, 3, 0.95)
        res_v, res_q = bellman_residuals(mdp, random_policy(rng, 5, 3))
        errs += [np.abs(res_v).max(), np.abs(res_q).max()]
    return Measure(float(max(errs)), "gridworld + 20 random MDPs (S=5, A=3, gamma=0.95)")


@identity(
    "ch2.value_iteration_optimal",
    chapter=2,
    title="Q* by value iteration = Q of its greedy policy (linear solve): Q* is optimal",
)
def value_iteration_optimal() -> Measure:
    # Q = Q^{greedy(Q)} says Q satisfies the Bellman optimality equation, whose only solution
    # is Q*; the right side is an independent linear solve, so a wrong backup cannot pass.
    grid, _ = book_grid_policy()
    rng = np.random.default_rng(5)
    errs = []
    for mdp in [grid] + [random_mdp(rng, 5, 3, 0.9) for _ in range(10)]:
        _, q_star = value_iteration(mdp, tol=1e-14)
        q_greedy = action_values(mdp, epsilon_greedy(q_star, 0.0))
        live = ~mdp.terminal
        errs.append(np.abs(q_greedy - q_star)[live].max())
    return Measure(float(max(errs)), "gridworld (gamma=0.9) + 10 random MDPs (S=5, A=3, gamma=0.9)")


@identity("ch2.advantage_mean_zero", chapter=2, title="sum_a pi(a|s) A(s, a) = 0 in every state")
def advantage_mean_zero() -> Measure:
    grid, pi = book_grid_policy()
    errs = [np.abs((pi * advantages(grid, pi)).sum(axis=1)).max()]
    rng = np.random.default_rng(3)
    for _ in range(20):
        mdp = random_mdp(rng, 5, 3, 0.9)
        p = random_policy(rng, 5, 3)
        errs.append(np.abs((p * advantages(mdp, p)).sum(axis=1)).max())
    return Measure(float(max(errs)), "gridworld + 20 random MDPs")


@identity(
    "ch2.monte_carlo_V",
    chapter=2,
    kind="statistical",
    tol=4.0,
    title="Monte-Carlo V within 4 standard errors of exact V",
)
def monte_carlo_v() -> Measure:
    grid, pi = book_grid_policy()
    est = mc_state_values(grid, pi, 2000, 200, seed=0)
    z = z_scores(est.mean, est.se, state_values(grid, pi), bias_bound=est.truncation_bias_bound)
    return Measure(float(z.max()), f"{grid.n_states} states x 2000 episodes, seed 0")


@identity(
    "ch2.monte_carlo_Q",
    chapter=2,
    kind="statistical",
    tol=4.0,
    title="Monte-Carlo Q within 4 standard errors of exact Q",
)
def monte_carlo_q() -> Measure:
    grid, pi = book_grid_policy()
    est = mc_action_values(grid, pi, 500, 200, seed=1)
    z = z_scores(est.mean, est.se, action_values(grid, pi), bias_bound=est.truncation_bias_bound)
    return Measure(float(z.max()), f"{grid.n_states * grid.n_actions} pairs x 500 episodes, seed 1")


@identity(
    "ch2.monte_carlo_rate",
    chapter=2,
    kind="statistical",
    tol=0.15,
    statistic="|fitted slope + 1/2|",
    title="Monte-Carlo error of V shrinks like N^-1/2 (log-log slope)",
)
def monte_carlo_rate() -> Measure:
    from rlviz.fn.stats import loglog_slope

    ns, err = mc_error_curve()
    slope, _ = loglog_slope(ns, err)
    return Measure(abs(slope + 0.5), f"slope {slope:.2f} over N = {ns[0]}..{ns[-1]}, seed 4")
