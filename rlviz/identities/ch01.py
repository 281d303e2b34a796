"""Chapter 1: MDPs, trajectories and returns."""

from __future__ import annotations

import numpy as np

from rlviz.tabular.examples import gridworld, two_state_chain
from rlviz.tabular.mdp import (
    finite_horizon_objective,
    objective,
    time_unrolled,
    uniform_policy,
    unrolled_policy,
)
from rlviz.tabular.trajectories import discounted_sum, enumerate_trajectories, rewards_to_go
from rlviz.verify import Measure, identity

CHAIN_POLICY = np.array([[0.7, 0.3], [0.4, 0.6]])


@identity(
    "ch1.trajectory_probabilities",
    chapter=1,
    kind="sanity",
    title="enumerated trajectory probabilities sum to 1",
)
def trajectory_probabilities() -> Measure:
    chain = two_state_chain(0.9)
    grid = gridworld(0.9)
    t1 = enumerate_trajectories(chain, CHAIN_POLICY, 10)
    t2 = enumerate_trajectories(grid, uniform_policy(grid), 4)
    err = max(abs(t1.prob.sum() - 1), abs(t2.prob.sum() - 1))
    return Measure(err, f"{t1.n} chain trajectories (H=10), {t2.n} gridworld trajectories (H=4)")


@identity(
    "ch1.objective_enumeration_vs_recursion",
    chapter=1,
    title="J_H by enumeration = J_H by forward recursion",
)
def objective_enumeration_vs_recursion() -> Measure:
    errs = []
    for gamma in (0.5, 0.9, 1.0):
        grid = gridworld(gamma)
        pi = uniform_policy(grid)
        tr = enumerate_trajectories(grid, pi, 4)
        j_enum = float(tr.prob @ discounted_sum(tr.rewards, gamma))
        errs.append(abs(j_enum - finite_horizon_objective(grid, pi, 4)))
    return Measure(max(errs), "gridworld, H=4, gamma in {0.5, 0.9, 1}")


@identity(
    "ch1.objective_enumeration_vs_solve",
    chapter=1,
    title="J_H by enumeration = J by linear solve on the time-unrolled MDP",
)
def objective_enumeration_vs_solve() -> Measure:
    errs = []
    cases = [(two_state_chain(0.9), CHAIN_POLICY, 8)]
    cases += [(gridworld(gamma), uniform_policy(gridworld(gamma)), 4) for gamma in (0.9, 1.0)]
    for mdp, pi, H in cases:
        tr = enumerate_trajectories(mdp, pi, H)
        j_enum = float(tr.prob @ discounted_sum(tr.rewards, mdp.gamma))
        j_solve = objective(time_unrolled(mdp, H), unrolled_policy(pi, H))
        errs.append(abs(j_enum - j_solve))
    return Measure(max(errs), "chain H=8; gridworld H=4, gamma in {0.9, 1}")


@identity(
    "ch1.horizon_bound",
    chapter=1,
    statistic="max excess over bound",
    title="|J - J_H| <= gamma^H max|r| / (1 - gamma)",
)
def horizon_bound() -> Measure:
    excess = []
    chain = two_state_chain(0.9)
    J = objective(chain, CHAIN_POLICY)
    for H in range(1, 60):
        bound = chain.gamma**H * np.abs(chain.r).max() / (1 - chain.gamma)
        excess.append(max(0.0, abs(J - finite_horizon_objective(chain, CHAIN_POLICY, H)) - bound))
    return Measure(max(excess), "two-state chain, gamma=0.9, H=1..59")


@identity(
    "ch1.return_recursion", chapter=1, title="G_t = r_t + gamma G_{t+1} = sum_l gamma^l r_{t+l}"
)
def return_recursion() -> Measure:
    rng = np.random.default_rng(0)
    rew = rng.normal(size=(50, 12))
    gamma = 0.95
    G = rewards_to_go(rew, gamma)
    direct = np.array(
        [
            [sum(gamma**l * rew[m, t + l] for l in range(12 - t)) for t in range(12)]
            for m in range(50)
        ]
    )
    return Measure(float(np.abs(G - direct).max()), "50 random reward sequences, H=12")
