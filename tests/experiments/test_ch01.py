"""rlviz.experiments.ch01: the numbers chapter 1's prose quotes."""

import pytest

from rlviz.experiments import ch01


def test_trajectory_counts():
    counts = ch01.trajectory_counts()
    assert counts["chain"] == 2**10  # deterministic moves: each step branches on the action only
    assert counts["gridworld"] < 12**4  # episodes that end stop branching


@pytest.mark.parametrize(
    ("gamma", "r_max", "eps"), [(0.9, 1.0, 1e-6), (0.5, 2.0, 1e-3), (0.99, 1, 1)]
)
def test_horizon_for_error_is_the_smallest_horizon_within_eps(gamma, r_max, eps):
    h = ch01.horizon_for_error(gamma, r_max, eps)
    assert gamma**h * r_max / (1 - gamma) <= eps
    assert h == 0 or gamma ** (h - 1) * r_max / (1 - gamma) > eps


def test_horizon_for_error_exercise_value():
    assert ch01.horizon_for_error(0.9, 1.0, 1e-6) == 153


@pytest.mark.parametrize("gamma", [0.0, 1.0, 1.5])
def test_horizon_for_error_needs_gamma_in_the_open_interval(gamma):
    with pytest.raises(ValueError, match="gamma"):
        ch01.horizon_for_error(gamma, 1.0, 1e-6)
