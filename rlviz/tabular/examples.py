r"""Example MDPs shipped with rlviz.

* :func:`two_state_chain`: two states, "stay" or "move"; its values have a closed form that
  the tests use as an oracle.
* :func:`gridworld`: a small slippery grid with a goal and a pit, for the figures.
* :func:`random_mdp`: random dense MDPs for property tests.
"""

from __future__ import annotations

import numpy as np

from rlviz import _validate as validate
from rlviz.tabular.mdp import TabularMDP, epsilon_greedy, value_iteration

__all__ = [
    "two_state_chain",
    "two_state_values_by_hand",
    "gridworld",
    "GRID_ACTIONS",
    "book_grid_policy",
    "random_mdp",
    "random_policy",
]


def two_state_chain(gamma: float = 0.9, reward=(1.0, 0.0), rho0=(1.0, 0.0)) -> TabularMDP:
    r"""Two states 0 and 1; action 0 ("stay") keeps the state, action 1 ("move") switches it.

    The reward depends on the state only: :math:`r(s, a) = \text{reward}[s]`.
    Under a policy with :math:`a = \pi(\text{move} \mid 0)` and :math:`b = \pi(\text{move} \mid 1)`
    the chain is :math:`P_\pi = \begin{pmatrix} 1-a & a \\ b & 1-b \end{pmatrix}`.
    """
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[1, 0, 1] = 1.0  # stay
    P[0, 1, 1] = P[1, 1, 0] = 1.0  # move
    rew = validate.array("reward", reward, shape=(2,))
    r = np.repeat(rew[:, None], 2, axis=1)
    return TabularMDP(
        P,
        r,
        np.asarray(rho0, dtype=float),
        gamma,
        state_names=("s0", "s1"),
        action_names=("stay", "move"),
        name="two-state chain",
    )


def two_state_values_by_hand(gamma: float, a: float, b: float, reward=(1.0, 0.0)) -> np.ndarray:
    r"""The two-state chain's :math:`V^\pi`, solved by hand (Cramer's rule on the 2x2 system).

    With :math:`x = \text{reward}[0]`, :math:`y = \text{reward}[1]`, the Bellman equations
    :math:`V_0 = x + \gamma((1-a)V_0 + aV_1)`, :math:`V_1 = y + \gamma(bV_0 + (1-b)V_1)` give

    .. math::
        V_0 = \frac{x(1-\gamma(1-b)) + \gamma a y}{D},\quad
        V_1 = \frac{y(1-\gamma(1-a)) + \gamma b x}{D},\quad
        D = (1-\gamma(1-a))(1-\gamma(1-b)) - \gamma^2 a b.
    """
    x, y = map(float, reward)
    D = (1 - gamma * (1 - a)) * (1 - gamma * (1 - b)) - gamma**2 * a * b
    return np.array(
        [
            (x * (1 - gamma * (1 - b)) + gamma * a * y) / D,
            (y * (1 - gamma * (1 - a)) + gamma * b * x) / D,
        ]
    )


GRID_ACTIONS = ("up", "right", "down", "left")
_MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))


def gridworld(
    gamma: float = 0.9,
    *,
    rows: int = 4,
    cols: int = 5,
    slip: float = 0.1,
    goal=(0, 4),
    pit=(1, 4),
    walls=((1, 1), (2, 3)),
    start=(3, 0),
    step_reward: float = -0.04,
    goal_reward: float = 1.0,
    pit_reward: float = -1.0,
) -> TabularMDP:
    r"""A slippery gridworld (Russell and Norvig's, enlarged) with a goal and a pit.

    Cells are states numbered row-major; walls are not states you can enter (bumping into a
    wall or the edge keeps you in place). Each move goes in the chosen direction with
    probability ``1 - slip`` and in each perpendicular direction with ``slip / 2``. Entering
    the goal pays ``goal_reward``, the pit ``pit_reward``; every other step pays
    ``step_reward``. Goal and pit lead to an absorbing terminal state (the last state index),
    so ``gamma = 1`` is allowed.
    """
    validate.unit_interval("slip", slip)
    cells = [(i, j) for i in range(rows) for j in range(cols) if (i, j) not in set(walls)]
    index = {c: k for k, c in enumerate(cells)}
    S, A = len(cells) + 1, 4
    end = S - 1
    P = np.zeros((S, A, S))
    r = np.zeros((S, A))
    for (i, j), s in index.items():
        if (i, j) in (goal, pit):  # exits: any action leads to the terminal state
            P[s, :, end] = 1.0
            continue
        for a in range(A):
            perp = ((a + 1) % 4, (a + 3) % 4)
            for d, p in ((a, 1 - slip), (perp[0], slip / 2), (perp[1], slip / 2)):
                ni, nj = i + _MOVES[d][0], j + _MOVES[d][1]
                dest = (ni, nj) if (ni, nj) in index else (i, j)
                reward = goal_reward if dest == goal else pit_reward if dest == pit else step_reward
                P[s, a, index[dest]] += p
                r[s, a] += p * reward
    P[end, :, end] = 1.0
    rho0 = np.zeros(S)
    rho0[index[start]] = 1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[end] = True
    names = tuple(f"({i},{j})" for i, j in cells) + ("end",)
    layout = {
        "rows": rows,
        "cols": cols,
        "cells": tuple(cells),
        "goal": goal,
        "pit": pit,
        "walls": tuple(walls),
        "start": start,
    }
    return TabularMDP(
        P, r, rho0, gamma, terminal, names, GRID_ACTIONS, name="gridworld", layout=layout
    )


def book_grid_policy(gamma: float = 0.9, epsilon: float = 0.3) -> tuple[TabularMDP, np.ndarray]:
    """The gridworld and the policy the chapters use: epsilon-greedy w.r.t. the optimal Q."""
    grid = gridworld(gamma)
    _, q_star = value_iteration(grid)
    return grid, epsilon_greedy(q_star, epsilon)


def random_mdp(
    rng: np.random.Generator, n_states: int, n_actions: int, gamma: float, *, sparsity: float = 0.0
) -> TabularMDP:
    """A random MDP with Dirichlet transition rows and normal rewards (for property tests).

    ``sparsity`` is the probability that a transition entry is zeroed (each row keeps at least one).
    """
    P = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions))
    if sparsity > 0:
        mask = rng.random(P.shape) < sparsity
        mask[..., 0] &= ~np.all(mask, axis=-1)
        P = np.where(mask, 0.0, P)
        P /= P.sum(-1, keepdims=True)
    r = rng.normal(size=(n_states, n_actions))
    rho0 = rng.dirichlet(np.ones(n_states))
    return TabularMDP(P, r, rho0, gamma, name="random")


def random_policy(rng: np.random.Generator, n_states: int, n_actions: int) -> np.ndarray:
    """A random stochastic policy table with full support."""
    return rng.dirichlet(np.ones(n_actions), size=n_states)
