"""The numbers of chapter 1 that its prose quotes: trajectory counts and the horizon bound."""

from __future__ import annotations

import math

from rlviz import _validate as validate
from rlviz.tabular.examples import gridworld, two_state_chain
from rlviz.tabular.mdp import uniform_policy
from rlviz.tabular.trajectories import enumerate_trajectories


def trajectory_counts() -> dict:
    """How many trajectories the chapter enumerates: the chain for H = 10, the gridworld for
    H = 4 (both under the uniform policy, which has full support)."""
    chain, grid = two_state_chain(0.9), gridworld(0.9)
    return {
        "chain": enumerate_trajectories(chain, uniform_policy(chain), 10).n,
        "gridworld": enumerate_trajectories(grid, uniform_policy(grid), 4).n,
    }


def horizon_for_error(gamma: float, r_max: float, eps: float) -> int:
    r"""The smallest horizon :math:`H` with :math:`\gamma^H r_{\max} / (1-\gamma) \le \epsilon`:
    cutting a discounted problem there costs at most ``eps`` (chapter 1's horizon bound)."""
    g = validate.unit_interval("gamma", gamma, open_right=True, open_left=True)
    r = validate.positive("r_max", r_max)
    e = validate.positive("eps", eps)
    h = max(0, math.ceil(math.log(e * (1 - g) / r) / math.log(g)))
    while h > 0 and g ** (h - 1) * r / (1 - g) <= e:  # guard against rounding of the logs
        h -= 1
    while g**h * r / (1 - g) > e:
        h += 1
    return h
