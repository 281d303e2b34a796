"""Tests of the sample surrogate's expected gradient (rlviz.tabular.surrogate, chapter 12):
undiscounted_visitation, step_average_gradient, sample_surrogate_gradients, against
enumeration of every trajectory of a time-unrolled corridor (exact, 1e-10) and against the
independent implementations of chapters 4 and 7."""

from __future__ import annotations

import numpy as np
import pytest

from rlviz.fn.returns import Transitions, gae
from rlviz.tabular.advantage_moments import value_error
from rlviz.tabular.episodic import corridor
from rlviz.tabular.examples import random_mdp
from rlviz.tabular.mdp import state_values, time_unrolled, unrolled_policy
from rlviz.tabular.policy_gradient import notes_direction, score_table
from rlviz.tabular.surrogate import (
    old_policy,
    sample_surrogate_gradients,
    step_average_gradient,
    undiscounted_visitation,
)
from rlviz.tabular.trajectories import enumerate_trajectories

THETA = np.array([[0.3, -0.2], [-0.4, 0.5], [0.2, 0.1], [0.0, 0.0]])
H = 5


def _unrolled():
    """The corridor unrolled to H steps: every episode ends, so enumeration is exact."""
    base = corridor(0.9)
    mdp = time_unrolled(base, H)
    pi = unrolled_policy(old_policy(base, THETA).pi, H)
    old = old_policy(mdp, np.log(pi))
    v_hat = state_values(mdp, old.pi) + value_error(mdp, 0.3, seed=1)
    return old, v_hat


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_expected_gradient_mean_and_std_match_enumeration(lam):
    old, v_hat = _unrolled()
    mdp, pi = old.mdp, old.pi
    got = sample_surrogate_gradients(old, v_hat, lam)
    tr = enumerate_trajectories(mdp, pi, H)
    assert mdp.terminal[tr.states[:, -1]].all()
    term = (~tr.alive.T) | mdp.terminal[tr.states[:, 1:]].T
    rollout = Transitions(
        r_t=tr.rewards.T,
        v_t=v_hat[tr.states[:, :-1]].T,
        v_T=v_hat[tr.states[:, -1]],
        terminated_t=term,
        truncated_t=np.zeros_like(term),
    )
    adv_t = gae(rollout, gamma=mdp.gamma, lam=lam).T  # (M, H)
    adv_t = np.where(tr.alive, adv_t, 0.0)
    psi = score_table(pi)[tr.states[:, :-1], tr.actions]  # (M, H, SA)
    grad = tr.prob @ np.einsum("mt,mtk->mk", adv_t, psi)
    steps = tr.prob @ tr.alive.sum(1)
    mu = tr.prob @ adv_t.sum(1) / steps
    sigma = np.sqrt(tr.prob @ (adv_t**2).sum(1) / steps - mu**2)
    assert got["steps"] == pytest.approx(steps, abs=1e-10)
    assert got["mu"] == pytest.approx(mu, abs=1e-10)
    assert got["sigma"] == pytest.approx(sigma, abs=1e-10)
    np.testing.assert_allclose(got["gae"], grad, rtol=0, atol=1e-10)
    normalised = tr.prob @ np.einsum("mt,mtk->mk", np.where(tr.alive, (adv_t - mu) / sigma, 0), psi)
    np.testing.assert_allclose(got["normalised"], normalised, rtol=0, atol=1e-10)


def test_exact_is_grad_j_and_undiscounted_is_the_notes_direction():
    for g in (0.5, 0.9, 0.99):
        old = old_policy(corridor(g), THETA)
        got = sample_surrogate_gradients(old, state_values(old.mdp, old.pi), 0.95)
        np.testing.assert_allclose(got["exact"], got["grad_J"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(
            got["undiscounted"], notes_direction(old.mdp, THETA), rtol=0, atol=1e-10
        )
        # with the true V, GAE is unbiased for every lambda: the same expected gradient
        np.testing.assert_allclose(got["gae"], got["undiscounted"], rtol=0, atol=1e-10)


def test_step_average_gradient_with_discounted_weights_is_grad_j():
    old = old_policy(corridor(0.9), THETA)
    eta_gamma = old.d / (1 - old.mdp.gamma)
    got = sample_surrogate_gradients(old, state_values(old.mdp, old.pi), 1.0)
    np.testing.assert_allclose(
        step_average_gradient(old.pi, eta_gamma, old.adv), got["grad_J"], rtol=0, atol=1e-10
    )


def test_bad_input():
    old = old_policy(corridor(0.9), THETA)
    with pytest.raises(ValueError, match="weights"):
        step_average_gradient(old.pi, np.ones(3), old.adv)
    with pytest.raises(ValueError, match="adv"):
        step_average_gradient(old.pi, np.ones(4), np.ones((4, 3)))
    cont = random_mdp(np.random.default_rng(0), 3, 2, 0.9)
    with pytest.raises(ValueError, match="episodic"):
        undiscounted_visitation(cont, np.full((3, 2), 0.5))
