"""rlviz.tabular.truncation: time limits on a continuing MDP, exact targets and their bias."""

import numpy as np
import pytest

from rlviz.tabular.examples import gridworld, random_mdp, random_policy, two_state_chain
from rlviz.tabular.mdp import state_values
from rlviz.tabular.truncation import (
    expected_targets,
    fitted_fixed_point,
    fitted_values,
    state_occupancy,
    target_bias,
    targets_by_enumeration,
)

CHAIN_PI = np.array([[0.7, 0.3], [0.4, 0.6]])


def settings():
    rng = np.random.default_rng(3)
    yield two_state_chain(0.9), CHAIN_PI
    for _ in range(3):
        mdp = random_mdp(rng, 3, 2, 0.8)
        yield mdp, random_policy(rng, 3, 2)


@pytest.mark.parametrize("wrong", [False, True])
@pytest.mark.parametrize("lam", [0.0, 0.6, 1.0])
def test_expected_targets_equal_enumerated_lambda_returns(wrong, lam):
    """The backward recursion agrees with lambda_returns on every enumerated episode."""
    for mdp, pi in settings():
        v = np.random.default_rng(0).normal(size=mdp.n_states)
        exact = expected_targets(mdp, pi, v, lam, 4, truncation_as_termination=wrong)
        enum = targets_by_enumeration(mdp, pi, v, lam, 4, truncation_as_termination=wrong)
        seen = ~np.isnan(enum)
        np.testing.assert_allclose(exact[seen], enum[seen], rtol=0, atol=1e-12)


def test_right_targets_are_unbiased_with_the_true_values():
    for mdp, pi in settings():
        v = state_values(mdp, pi)
        right = expected_targets(mdp, pi, v, 0.8, 5, truncation_as_termination=False)
        np.testing.assert_allclose(right, np.broadcast_to(v, right.shape), rtol=0, atol=1e-12)


def test_target_bias_closed_form_and_it_is_not_zero():
    for mdp, pi in settings():
        v = state_values(mdp, pi)
        wrong = expected_targets(mdp, pi, v, 0.8, 5, truncation_as_termination=True)
        bias = target_bias(mdp, pi, 0.8, 5)
        np.testing.assert_allclose(wrong - v, bias, rtol=0, atol=1e-12)
    # the chain's rewards are positive: treating the time limit as a termination underestimates
    assert (target_bias(two_state_chain(0.9), CHAIN_PI, 0.8, 5) < -1e-3).all()


def test_occupancy_rows_are_distributions_and_follow_p():
    mdp = two_state_chain(0.9)
    mu = state_occupancy(mdp, CHAIN_PI, 6)
    np.testing.assert_allclose(mu.sum(1), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(mu[0], mdp.rho0)


def test_fitted_values_converge_to_fixed_point_and_only_the_right_one_is_v():
    chain = two_state_chain(0.9)
    v = state_values(chain, CHAIN_PI)
    for wrong in (False, True):
        it = fitted_values(chain, CHAIN_PI, 0.9, 8, 400, truncation_as_termination=wrong)
        fp = fitted_fixed_point(chain, CHAIN_PI, 0.9, 8, truncation_as_termination=wrong)
        np.testing.assert_allclose(it[-1], fp, atol=1e-9)
    right = fitted_fixed_point(chain, CHAIN_PI, 0.9, 8, truncation_as_termination=False)
    wrong = fitted_fixed_point(chain, CHAIN_PI, 0.9, 8, truncation_as_termination=True)
    np.testing.assert_allclose(right, v, atol=1e-10)
    assert np.abs(wrong - v).max() > 0.1


def test_bad_input_is_named():
    chain = two_state_chain(0.9)
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        state_occupancy(chain, CHAIN_PI, 0)
    with pytest.raises(ValueError, match="lam must be in"):
        target_bias(chain, CHAIN_PI, 1.5, 3)
    with pytest.raises(ValueError, match="terminal states"):
        target_bias(gridworld(), np.full((gridworld().n_states, 4), 0.25), 0.5, 3)
    with pytest.raises(ValueError, match="v"):
        expected_targets(chain, CHAIN_PI, np.ones(3), 0.5, 3, truncation_as_termination=False)
