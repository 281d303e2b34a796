"""rlviz.tabular.advantage_moments: exact moments against enumeration and closed forms."""

import numpy as np
import pytest

from rlviz.tabular.advantage_moments import (
    gae_moments,
    kstep_moments,
    kstep_moments_by_enumeration,
    value_error,
)
from rlviz.tabular.examples import random_mdp, random_policy
from rlviz.tabular.mdp import state_values


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kstep_moments_match_enumeration_random_mdp(seed):
    rng = np.random.default_rng(seed)
    mdp = random_mdp(rng, 3, 2, 0.8)
    pi = random_policy(rng, 3, 2)
    v_hat = state_values(mdp, pi) + rng.normal(size=3)
    for k in (1, 2, 4):
        mom = kstep_moments(mdp, pi, v_hat, k)
        mean, var = kstep_moments_by_enumeration(mdp, pi, v_hat, k)
        np.testing.assert_allclose(mom.mean, mean, atol=1e-10)
        np.testing.assert_allclose(mom.var, var, atol=1e-10)


def test_gae_lambda_one_bias_is_minus_value_error():
    rng = np.random.default_rng(4)
    mdp = random_mdp(rng, 4, 2, 0.9)
    pi = random_policy(rng, 4, 2)
    e = value_error(mdp, 0.5, seed=1)
    mom = gae_moments(mdp, pi, state_values(mdp, pi) + e, 1.0)
    np.testing.assert_allclose(mom.bias, -np.repeat(e[:, None], 2, 1), atol=1e-10)
    # lambda = 0: bias gamma P e - e
    mom0 = gae_moments(mdp, pi, state_values(mdp, pi) + e, 0.0)
    np.testing.assert_allclose(mom0.bias, mdp.gamma * mdp.P @ e - e[:, None], atol=1e-10)


def test_v_hat_must_vanish_on_terminal_states():
    from rlviz.tabular.examples import gridworld

    grid = gridworld()
    pi = np.full((grid.n_states, 4), 0.25)
    with pytest.raises(ValueError, match="v_hat must be 0 on terminal"):
        kstep_moments(grid, pi, np.ones(grid.n_states), 2)
