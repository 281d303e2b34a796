r"""Small episodic MDPs for chapters 3 to 6.

* :func:`corridor`: a slippery corridor with a near and a far exit. Its policy gradient has
  only a handful of components, so every number of those chapters can be printed, and every
  trajectory of a few steps can be enumerated.
* :func:`random_episodic_mdp`: random MDPs with a terminal state, for property tests.
"""

from __future__ import annotations

import numpy as np

from rlviz import _validate as validate
from rlviz.tabular.mdp import TabularMDP

__all__ = ["corridor", "CORRIDOR_ACTIONS", "random_episodic_mdp"]

CORRIDOR_ACTIONS = ("left", "right")


def corridor(
    gamma: float = 0.9,
    *,
    n_cells: int = 3,
    slip: float = 0.2,
    near_reward: float = 0.3,
    far_reward: float = 1.0,
    step_reward: float = -0.05,
) -> TabularMDP:
    r"""Cells ``0 .. n_cells - 1`` in a row with an exit at each end; episodes start in cell 0.

    Action ``left`` (0) or ``right`` (1) moves one cell that way with probability
    :math:`1 - \text{slip}` and the other way with probability :math:`\text{slip}`. Leaving
    cell 0 to the left exits with ``near_reward``; leaving the last cell to the right exits
    with ``far_reward``; a move inside the corridor pays ``step_reward``. Both exits lead to an
    absorbing terminal state (index ``n_cells``), so the MDP is episodic and ``gamma = 1`` is
    allowed. A small :math:`\gamma` favours the near exit, a large one the far exit.

    :math:`r(s, a)` is the expected reward of the move, shape ``(n_cells + 1, 2)``.
    """
    n = validate.positive("n_cells", n_cells, integer=True)
    p = validate.unit_interval("slip", slip)
    S, end = n + 1, n
    P = np.zeros((S, 2, S))
    r = np.zeros((S, 2))
    for s in range(n):
        for a, step in ((0, -1), (1, +1)):
            for d, prob in ((step, 1 - p), (-step, p)):
                dest = s + d
                if dest < 0:
                    P[s, a, end] += prob
                    r[s, a] += prob * near_reward
                elif dest >= n:
                    P[s, a, end] += prob
                    r[s, a] += prob * far_reward
                else:
                    P[s, a, dest] += prob
                    r[s, a] += prob * step_reward
    P[end, :, end] = 1.0
    rho0 = np.zeros(S)
    rho0[0] = 1.0
    terminal = np.zeros(S, dtype=bool)
    terminal[end] = True
    names = tuple(f"cell {s}" for s in range(n)) + ("end",)
    return TabularMDP(P, r, rho0, gamma, terminal, names, CORRIDOR_ACTIONS, name="corridor")


def random_episodic_mdp(
    rng: np.random.Generator, n_states: int, n_actions: int, gamma: float, *, end_prob: float = 0.2
) -> TabularMDP:
    r"""A random MDP whose last state is terminal (for property tests).

    The ``n_states - 1`` live states have Dirichlet transition rows, mixed with probability
    ``end_prob`` of moving to the terminal state from every live state and action, so every
    policy ends its episode with probability one; rewards are standard normal, the start
    distribution Dirichlet over the live states.
    """
    S = validate.positive("n_states", n_states, integer=True)
    A = validate.positive("n_actions", n_actions, integer=True)
    q = validate.unit_interval("end_prob", end_prob, open_left=True)
    if S < 2:
        raise ValueError(f"n_states must be at least 2 (one live, one terminal), got {S}")
    end = S - 1
    P = np.zeros((S, A, S))
    P[:end, :, :end] = (1 - q) * rng.dirichlet(np.ones(end), size=(end, A))
    P[:end, :, end] = q
    P[end, :, end] = 1.0
    r = np.zeros((S, A))
    r[:end] = rng.normal(size=(end, A))
    rho0 = np.zeros(S)
    rho0[:end] = rng.dirichlet(np.ones(end))
    terminal = np.zeros(S, dtype=bool)
    terminal[end] = True
    return TabularMDP(P, r, rho0, gamma, terminal, name="random episodic")
