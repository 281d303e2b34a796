"""The settings and runs of chapter 2 that its identities, figures and notebook share."""

from __future__ import annotations

import numpy as np

from rlviz.tabular.examples import book_grid_policy

MC_NS = (10, 30, 100, 300, 1000, 3000)


def mc_error_curve() -> tuple[np.ndarray, np.ndarray]:
    """The chapter's Monte-Carlo error curve: RMS error of V-hat against episodes per state."""
    from rlviz.tabular.trajectories import mc_value_error_curve

    grid, pi = book_grid_policy()
    return np.array(MC_NS), mc_value_error_curve(grid, pi, MC_NS, 200, seed=4)
