"""rlviz.experiments.ch02-ch11 and the settings they share (corridor_settings, old_policies,
random_rollouts): the settings and runs of the tabular chapters.

One test module for the small experiment modules of chapters 2-11 (each a page of settings);
the checks are about what the chapters rely on, and each can fail.
"""

import numpy as np
import pytest

from rlviz.experiments import (
    ch02,
    ch04,
    ch05,
    ch06,
    ch10,
    ch11,
    corridor_settings,
    old_policies,
    random_rollouts,
)
from rlviz.fn import returns
from rlviz.tabular.policy_gradient import exact_gradient, softmax_policy


def test_ch02_monte_carlo_error_shrinks_like_one_over_root_n():
    ns, err = ch02.mc_error_curve()
    assert list(ns) == list(ch02.MC_NS)
    assert err[-1] < err[0] / 5  # 300x the samples: about 17x smaller error expected


def test_corridor_book_setting_and_enumerated_settings():
    mdp, theta, pi, H = corridor_settings.book_setting(0.5)
    assert mdp.gamma == 0.5 and H == corridor_settings.HORIZON
    np.testing.assert_allclose(pi, softmax_policy(corridor_settings.THETA))
    rows = list(corridor_settings.enumerated_settings())
    assert len(rows) == len(corridor_settings.GAMMAS) + 5
    for mdp, theta, _pi, H, tr, grad in rows[:2]:
        np.testing.assert_allclose(tr.prob.sum(), 1.0, atol=1e-12)
        np.testing.assert_allclose(grad, exact_gradient(mdp, theta, H), atol=0)


def test_ch04_notes_direction_differs_most_at_small_gamma():
    rows = ch04.notes_comparison()
    assert [r["gamma"] for r in rows] == list(ch04.GAMMAS)
    angles = [r["angle"] for r in rows]
    assert angles[0] > 10 and angles[-1] < 5


def test_ch05_every_baseline_reduces_the_variance():
    table = ch05.variance_table()
    assert list(table) == list(ch05.BASELINES)
    none = table["none"]
    assert all(v < none for k, v in table.items() if k != "none")
    assert table["optimal b*_{t,i}"] <= min(table["constant b = J_H"], table["V_t(s)"])


def test_ch06_advantage_has_the_smallest_variance():
    v = ch06.estimator_variances()
    assert v["A_t(s_t, a_t)"] < v["G_t - V_t(s_t)"] < v["G_t"]


def test_direct_sum_of_td_errors_is_gae():
    ro = random_rollouts.random_rollout(3)
    ends = random_rollouts.episode_ends(ro)
    for gamma, lam in random_rollouts.SETTINGS:
        delta = returns.td_errors(**{k: v for k, v in ro.items()}, gamma=gamma)
        direct = random_rollouts.discounted_td_sum(delta, ends, gamma * lam)
        np.testing.assert_allclose(
            direct, returns.gae(returns.Transitions(**ro), gamma=gamma, lam=lam), atol=1e-12
        )
        # a mutation: the wrong factor (gamma instead of gamma * lam) differs unless lam = 1
        if lam < 1:
            assert (
                np.abs(random_rollouts.discounted_td_sum(delta, ends, gamma) - direct).max() > 1e-3
            )


def test_ch10_gaps_grow_from_zero_along_the_gradient():
    gaps = ch10.gradient_gaps(n_random=1)
    g = gaps["gradient"]
    assert np.all(np.diff(g["grad_gap"]) > 0) and np.all(np.diff(g["value_gap"]) > 0)
    # second-order contact: the value gap shrinks faster than the step
    assert g["value_gap"][0] / g["value_gap"][-1] < g["t"][0] / g["t"][-1]


def test_ch11_conjugate_gradient_solves_the_fisher_system():
    rep = ch11.cg_report(old_policies.book_old())
    np.testing.assert_allclose(rep["F"] @ rep["x"], rep["g"], atol=1e-8)
    np.testing.assert_allclose(rep["x"], rep["x_pinv"], atol=1e-8)


@pytest.mark.parametrize("n", [0, 2])
def test_random_olds_are_seeded(n):
    a = old_policies.random_olds(n=n)
    b = old_policies.random_olds(n=n)
    assert len(a) == n
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.theta, y.theta)
