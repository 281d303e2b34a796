"""rlviz.fn.returns: the blocked GAE against the reference loop, special cases, input checks."""

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import coefficients, seeds

from rlviz.experiments.random_rollouts import discounted_td_sum, random_rollout
from rlviz.fn import returns as adv
from rlviz.fn.returns import Transitions


@pytest.mark.parametrize("T", [1, 2, 15, 16, 17, 33, 256, 257, 1000])
@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize(
    "gamma,lam", [(0.0, 0.0), (0.9, 0.95), (0.99, 1.0), (1.0, 1.0), (0.5, 0.3)]
)
def test_fast_matches_reference(T, N, gamma, lam, make_rollout):
    rng = np.random.default_rng(T * 31 + N)
    tr = make_rollout(rng, T, N, 0.03, 0.03)
    tr.terminated_t[0] = True  # an episode ending at the first step
    tr.truncated_t[-1, 0] = True  # and one cut at the last
    fast = adv.gae(tr, gamma=gamma, lam=lam)
    ref = adv.gae_reference(tr, gamma=gamma, lam=lam)
    np.testing.assert_allclose(fast, ref, rtol=0, atol=1e-10)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    T=st.integers(1, 80),
    N=st.integers(1, 4),
    gamma=coefficients,
    lam=coefficients,
    p=st.floats(0, 0.6),
    seed=seeds,
)
def test_fast_matches_reference_property(T, N, gamma, lam, p, seed, make_rollout):
    tr = make_rollout(np.random.default_rng(seed), T, N, p, p)
    np.testing.assert_allclose(
        adv.gae(tr, gamma=gamma, lam=lam),
        adv.gae_reference(tr, gamma=gamma, lam=lam),
        rtol=0,
        atol=1e-10,
    )


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(T=st.integers(1, 40), gamma=coefficients, lam=coefficients, seed=seeds)
def test_closed_form_and_lambda_return(T, gamma, lam, seed, make_rollout):
    tr = make_rollout(np.random.default_rng(seed), T, 3, 0.2, 0.2)
    A = adv.gae(tr, gamma=gamma, lam=lam)
    delta = adv.td_errors(**vars(tr), gamma=gamma)
    ends = tr.terminated_t | tr.truncated_t
    ends[-1] = True
    np.testing.assert_allclose(A, discounted_td_sum(delta, ends, gamma * lam), atol=1e-10)
    np.testing.assert_allclose(
        A + tr.v_t, adv.lambda_returns(**vars(tr), gamma=gamma, lam=lam), atol=1e-10
    )


def test_linear_scan_general_coefficients():
    rng = np.random.default_rng(0)
    x, a = rng.normal(size=(300, 5)), rng.uniform(-1.2, 1.2, size=(300, 5))
    y = adv.linear_scan(x, a)
    want = np.zeros_like(x)
    for t in reversed(range(300)):
        want[t] = x[t] + (a[t] * want[t + 1] if t < 299 else 0)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


def test_float32_stays_float32_and_agrees(make_rollout):
    tr = make_rollout(np.random.default_rng(1), 2048, 8, 0.005, 0.005, np.float32)
    A = adv.gae(tr, gamma=0.99, lam=0.95)
    assert A.dtype == np.float32
    tr64 = Transitions(
        **{k: (v.astype(np.float64) if v.dtype == np.float32 else v) for k, v in vars(tr).items()}
    )
    ref = adv.gae_reference(tr64, gamma=0.99, lam=0.95)
    assert ref.dtype == np.float64
    np.testing.assert_allclose(A, ref, atol=1e-4)


def test_truncation_bootstraps_from_final_value():
    """One env, episode cut by a time limit after step 1, next episode runs to the rollout end."""
    tr = Transitions(
        r_t=np.array([[1.0], [2.0], [3.0]]),
        v_t=np.array([[0.5], [0.25], [4.0]]),
        v_T=np.array([8.0]),
        terminated_t=np.zeros((3, 1), bool),
        truncated_t=np.array([[False], [True], [False]]),
        v_final_t=np.full((3, 1), 10.0),
    )
    g = 0.5
    A = adv.gae(tr, gamma=g, lam=1.0)
    d1 = 2.0 + g * 10.0 - 0.25  # bootstraps from V(final obs) = 10, not 0 and not v[2]
    d0 = 1.0 + g * 0.25 - 0.5
    np.testing.assert_allclose(A[:, 0], [d0 + g * d1, d1, 3.0 + g * 8.0 - 4.0])
    np.testing.assert_allclose(adv.gae_reference(tr, gamma=g, lam=1.0), A, rtol=0, atol=1e-15)
    # treating the truncation as a termination gives a different (wrong) answer
    as_termination = dataclasses.replace(
        tr, terminated_t=tr.truncated_t, truncated_t=np.zeros((3, 1), bool)
    )
    wrong = adv.gae(as_termination, gamma=g, lam=1.0)
    assert abs(wrong[1, 0] - A[1, 0]) > 1.0


def test_truncation_as_termination_is_biased_on_a_time_limit():
    from rlviz.tabular.examples import two_state_chain
    from rlviz.tabular.mdp import state_values
    from rlviz.tabular.truncation import targets_by_enumeration

    chain, pi = two_state_chain(0.9), np.array([[0.7, 0.3], [0.4, 0.6]])
    v = state_values(chain, pi)
    right = targets_by_enumeration(chain, pi, v, 0.95, 5, truncation_as_termination=False)
    wrong = targets_by_enumeration(chain, pi, v, 0.95, 5, truncation_as_termination=True)
    assert np.nanmax(np.abs(right - v)) < 1e-10
    assert np.nanmax(np.abs(wrong - v)) > 1.0


def test_k_step_special_cases(make_rollout):
    ro = random_rollout(3)
    for gamma in (0.0, 0.9, 1.0):
        one = adv.k_step_advantages(**ro, k=1, gamma=gamma)
        delta = adv.td_errors(**ro, gamma=gamma)
        np.testing.assert_allclose(one, delta, atol=1e-12)
        full = adv.k_step_advantages(**ro, k=10**6, gamma=gamma)
        G = adv.discounted_returns(
            ro["r_t"],
            v_T=ro["v_T"],
            terminated_t=ro["terminated_t"],
            truncated_t=ro["truncated_t"],
            v_final_t=ro["v_final_t"],
            gamma=gamma,
        )
        np.testing.assert_allclose(full, G - ro["v_t"], atol=1e-12)


BASE = dict(
    r_t=np.zeros((4, 2)),
    v_t=np.zeros((4, 2)),
    v_T=np.zeros(2),
    terminated_t=np.zeros((4, 2), bool),
    truncated_t=np.zeros((4, 2), bool),
)


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(gamma=1.3), "gamma must be in"),
        (dict(lam=-0.1), "lam must be in"),
        (dict(lam=float("nan")), "lam must be in"),
        (dict(r_t=np.zeros(4)), "time-major"),
        (dict(v_t=np.zeros((4, 1))), r"v_t must have shape \(4, 2\)"),
        (dict(v_T=np.zeros((1, 2))), r"v_T must have shape \(2,\)"),
        (dict(v_t=np.full((4, 2), np.nan)), "v_t must be finite"),
        (dict(terminated_t=np.zeros((4, 2))), "terminated_t must be a boolean array"),
        (dict(truncated_t=np.ones((4, 2), bool)), "v_final_t is None"),
        (dict(r_t=np.zeros((4, 2), bool)), "real numbers"),
    ],
)
def test_input_checks(change, match):
    change = dict(change)
    coefficients = {"gamma": change.pop("gamma", 0.9), "lam": change.pop("lam", 0.9)}
    tr = Transitions(**{**BASE, **change})
    with pytest.raises(ValueError, match=match):
        adv.gae(tr, **coefficients)
    with pytest.raises(ValueError, match=match):
        adv.gae_reference(tr, **coefficients)
    adv.gae(Transitions(**BASE), gamma=0.9, lam=0.9)  # the unchanged record passes


@pytest.mark.parametrize("estimator", [adv.gae, adv.gae_reference])
@pytest.mark.parametrize("tr", [BASE, tuple(BASE.values()), np.zeros((4, 2))])
def test_the_rollout_must_be_a_transitions_record(estimator, tr):
    with pytest.raises(ValueError, match="tr must be a rlviz.fn.returns.Transitions .*, got"):
        estimator(tr, gamma=0.9, lam=0.9)


def test_fields_are_keyword_only():
    """The two flags (and the values) cannot be swapped by position."""
    with pytest.raises(TypeError):
        Transitions(*BASE.values())
    with pytest.raises(TypeError):
        adv.gae(Transitions(**BASE), 0.9, 0.9)


def test_the_old_keyword_form_is_refused(make_rollout):
    """gae(r_t, v_t, v_T=..., ...) (rlviz 0.1) is a clear error naming the record, not a guess."""
    tr = make_rollout(np.random.default_rng(2), 50, 3, 0.1, 0.1)
    with pytest.raises(TypeError):
        adv.gae(**vars(tr), gamma=0.9, lam=0.8)
    with pytest.raises(ValueError, match="tr must be a rlviz.fn.returns.Transitions"):
        adv.gae(tr.r_t, gamma=0.9, lam=0.8)


@pytest.mark.parametrize("block,leaf", [(64, 8), (8, 8), (128, 4), (16, 32)])
@pytest.mark.parametrize("T", [1, 5, 33, 100, 1000])
def test_linear_scan_any_block_and_leaf_size(monkeypatch, block, leaf, T):
    """The blocked scan is exact for every tuning of its block and leaf sizes (and terminates)."""
    import rlviz.fn.returns as adv

    monkeypatch.setattr(adv, "_BLOCK", block)
    monkeypatch.setattr(adv, "_LEAF", leaf)
    rng = np.random.default_rng(T)
    x, a = rng.normal(size=(T, 3)), rng.random((T, 3))
    ref = x.copy()
    for t in range(T - 2, -1, -1):
        ref[t] = x[t] + a[t] * ref[t + 1]
    np.testing.assert_allclose(adv.linear_scan(x, a), ref, rtol=0, atol=1e-10)


def test_per_column_coefficients_equal_one_call_per_column(make_rollout):
    """gamma and lam given per column (a grid of settings in one rollout, as chapter 13's
    PPO runs it) equal separate calls with each column's numbers; the reference loop agrees."""
    tr = make_rollout(np.random.default_rng(5), 40, 4, 0.1, 0.05)
    gammas, lams = np.array([0.9, 0.95, 0.99, 1.0]), np.array([0.0, 0.5, 0.9, 1.0])
    together = adv.gae(tr, gamma=gammas, lam=lams)
    np.testing.assert_allclose(
        together, adv.gae_reference(tr, gamma=gammas, lam=lams), rtol=0, atol=1e-12
    )
    for n in range(4):
        column = Transitions(
            **{k: v[..., [n]] if np.ndim(v) == 2 else v[[n]] for k, v in vars(tr).items()}
        )
        alone = adv.gae(column, gamma=gammas[n], lam=lams[n])[:, 0]
        np.testing.assert_allclose(together[:, n], alone, rtol=0, atol=1e-12)
    # the lambda-return identity of chapter 9 holds column by column too
    np.testing.assert_allclose(
        adv.lambda_returns(**vars(tr), gamma=gammas, lam=lams),
        together + tr.v_t,
        rtol=0,
        atol=1e-12,
    )
    # a mutation: swapping two columns' gammas changes those columns
    swapped = adv.gae(tr, gamma=gammas[[1, 0, 2, 3]], lam=lams)
    assert np.abs(swapped[:, :2] - together[:, :2]).max() > 1e-3


@pytest.mark.parametrize(
    "gamma, match",
    [
        (np.array([0.9, 0.9]), r"gamma must be a number in \[0, 1\] or an array of shape \(3,\)"),
        (np.array([0.9, 1.2, 0.5]), r"gamma must be in \[0, 1\] in every column"),
        (np.array([0.9, np.nan, 0.5]), r"gamma must be in \[0, 1\] in every column"),
        (np.ones((3, 1)), r"array of shape \(3,\)"),
    ],
)
def test_per_column_coefficients_are_checked(make_rollout, gamma, match):
    tr = make_rollout(np.random.default_rng(0), 5, 3)
    with pytest.raises(ValueError, match=match):
        adv.gae(tr, gamma=gamma, lam=0.9)


def test_integer_rewards_are_accepted_as_by_every_front_end():
    """Integer rewards (CartPole's +1) work; there is one GAE front end to accept them."""
    tr = Transitions(
        r_t=np.ones((4, 2), dtype=np.int64),
        v_t=np.zeros((4, 2)),
        v_T=np.zeros(2),
        terminated_t=np.zeros((4, 2), bool),
        truncated_t=np.zeros((4, 2), bool),
    )
    out = adv.gae(tr, gamma=np.array([0.5, 1.0]), lam=1.0)
    np.testing.assert_allclose(out[:, 0], [1.875, 1.75, 1.5, 1.0])
    np.testing.assert_allclose(out[:, 1], [4.0, 3.0, 2.0, 1.0])
