"""Tests of rlviz.fn.trust_region: conjugate gradient, Fisher-vector products, the TRPO step size and
the backtracking line search."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import seeds

from rlviz.fn.trust_region import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    trpo_step_size,
)

D = torch.float64


def spd(seed: int, n: int, cond: float = 10.0) -> torch.Tensor:
    """A random symmetric positive-definite matrix with eigenvalues in [1, cond]."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    ev = np.linspace(1.0, cond, n)
    return torch.tensor(q @ np.diag(ev) @ q.T, dtype=D)


@settings(max_examples=40, deadline=None)
@given(seed=seeds, n=st.integers(1, 8))
def test_cg_solves_spd_systems_in_n_steps(seed, n):
    F = spd(seed, n)
    b = torch.tensor(np.random.default_rng(seed + 1).normal(size=n), dtype=D)
    x, res = conjugate_gradient(lambda v: F @ v, b, iters=n + 2, tol=1e-12)
    assert torch.allclose(x, torch.linalg.solve(F, b), atol=1e-9)
    assert 1 <= len(res) <= n + 2
    assert res[-1] <= 1e-9
    assert res[-1] == pytest.approx(float(torch.linalg.vector_norm(b - F @ x)), abs=1e-12)


def test_cg_residuals_are_reported_per_iteration_and_respect_iters():
    F = spd(0, 20, cond=1000.0)
    b = torch.ones(20, dtype=D)
    x, res = conjugate_gradient(lambda v: F @ v, b, iters=3)
    assert len(res) == 3
    assert res[-1] > 1e-6  # three steps cannot solve a 20-dim ill-conditioned system


def test_cg_on_singular_psd_with_b_in_range_gives_min_norm_solution():
    rng = np.random.default_rng(3)
    Bm = rng.normal(size=(6, 3))
    F = torch.tensor(Bm @ Bm.T, dtype=D)  # rank 3
    b = F @ torch.tensor(rng.normal(size=6), dtype=D)
    x, res = conjugate_gradient(lambda v: F @ v, b, iters=10, tol=1e-12)
    assert torch.allclose(x, torch.linalg.pinv(F) @ b, atol=1e-8)


def test_cg_zero_rhs_returns_zero_without_iterating():
    x, res = conjugate_gradient(lambda v: v, torch.zeros(3, dtype=D))
    assert torch.equal(x, torch.zeros(3, dtype=D)) and res == []


def test_cg_rejects_bad_inputs():
    b = torch.ones(3, dtype=D)
    with pytest.raises(ValueError, match="b must be a 1-d"):
        conjugate_gradient(lambda v: v, np.ones(3))
    with pytest.raises(ValueError, match="iters"):
        conjugate_gradient(lambda v: v, b, iters=0)
    with pytest.raises(ValueError, match="tol"):
        conjugate_gradient(lambda v: v, b, tol=-1.0)
    with pytest.raises(ValueError, match="positive definite"):
        conjugate_gradient(lambda v: -v, b)
    with pytest.raises(ValueError, match="shape"):
        conjugate_gradient(lambda v: v[:2], b)


def _softmax_kl_setup(seed: int, S: int = 3, A: int = 3):
    rng = np.random.default_rng(seed)
    theta_old = torch.tensor(rng.normal(size=S * A), dtype=D)
    w = torch.tensor(rng.dirichlet(np.ones(S)), dtype=D)
    logp_old = torch.log_softmax(theta_old.reshape(S, A), dim=1)

    def mean_kl(theta):
        logp = torch.log_softmax(theta.reshape(S, A), dim=1)
        return (w * (logp_old.exp() * (logp_old - logp)).sum(dim=1)).sum()

    return theta_old, w, mean_kl


@settings(max_examples=30, deadline=None)
@given(seed=seeds, damping=st.sampled_from([0.0, 0.1]))
def test_fvp_equals_hessian_of_mean_kl_times_v(seed, damping):
    theta_old, _, mean_kl = _softmax_kl_setup(seed)
    H = torch.autograd.functional.hessian(mean_kl, theta_old)
    v = torch.tensor(np.random.default_rng(seed + 7).normal(size=theta_old.numel()), dtype=D)
    p = theta_old.clone().requires_grad_(True)
    Fv = fisher_vector_product(lambda: mean_kl(p), [p], v, damping=damping)
    assert torch.allclose(Fv, H @ v + damping * v, atol=1e-12)
    assert not Fv.requires_grad


def test_fvp_at_old_params_is_the_score_outer_product_fisher():
    theta_old, w, mean_kl = _softmax_kl_setup(5)
    S, A = 3, 3
    pi = torch.softmax(theta_old.reshape(S, A), dim=1)
    F = torch.zeros(S * A, S * A, dtype=D)
    for s in range(S):
        for a in range(A):
            score = torch.zeros(S * A, dtype=D)
            score[s * A : (s + 1) * A] = -pi[s]
            score[s * A + a] += 1.0
            F += w[s] * pi[s, a] * torch.outer(score, score)
    p = theta_old.clone().requires_grad_(True)
    cols = [fisher_vector_product(lambda: mean_kl(p), [p], e) for e in torch.eye(S * A, dtype=D)]
    assert torch.allclose(torch.stack(cols, dim=1), F, atol=1e-12)


def test_fvp_handles_several_parameter_tensors_and_unused_ones():
    a = torch.tensor([0.5, -0.3], dtype=D, requires_grad=True)
    b = torch.tensor([1.0], dtype=D, requires_grad=True)
    unused = torch.zeros(2, dtype=D, requires_grad=True)

    def kl():
        return (a**2).sum() * 1.5 + 2.0 * b[0] ** 2

    v = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=D)
    Fv = fisher_vector_product(kl, [a, b, unused], v, damping=0.5)
    assert torch.allclose(Fv, torch.tensor([3.0, 6.0, 12.0, 0.0, 0.0], dtype=D) + 0.5 * v)


def test_fvp_rejects_bad_inputs():
    p = torch.zeros(2, dtype=D, requires_grad=True)

    def kl():
        return (p**2).sum()

    with pytest.raises(ValueError, match="length 2"):
        fisher_vector_product(kl, [p], torch.ones(3, dtype=D))
    with pytest.raises(ValueError, match="requires_grad"):
        fisher_vector_product(kl, [torch.zeros(2, dtype=D)], torch.ones(2, dtype=D))
    with pytest.raises(ValueError, match="damping"):
        fisher_vector_product(kl, [p], torch.ones(2, dtype=D), damping=-1)
    with pytest.raises(ValueError, match="scalar"):
        fisher_vector_product(lambda: p**2, [p], torch.ones(2, dtype=D))


def test_trpo_step_puts_quadratic_kl_on_the_boundary():
    F = spd(1, 5)
    g = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=D)
    x = torch.linalg.solve(F, g)
    for delta in (1e-3, 0.01, 0.5):
        beta = trpo_step_size(g, x, delta)
        step = beta * x
        assert float(0.5 * step @ F @ step) == pytest.approx(delta, rel=1e-12)
    with pytest.raises(ValueError, match="delta"):
        trpo_step_size(g, x, 0.0)
    with pytest.raises(ValueError, match="g\\^T F\\^-1 g"):
        trpo_step_size(g, -x, 0.01)
    with pytest.raises(ValueError, match="shape"):
        trpo_step_size(g, x[:3], 0.01)


def test_line_search_accepts_first_fraction_within_kl_and_improving():
    step = torch.tensor([4.0, 0.0], dtype=D)

    def kl(x):
        return 0.5 * float(x @ x)  # 8, 2, 0.5, 0.125, ...

    def improvement(x):
        return float(x[0]) - 0.25 * float(x @ x)  # > 0 iff x0 < 4

    frac, info = backtracking_line_search(step, improvement, kl, 0.6)
    assert frac == 0.25 and info["accepted"] == 2
    assert info["fractions"] == [1.0, 0.5, 0.25]
    assert info["kls"] == [8.0, 2.0, 0.5]
    assert info["kls"][info["accepted"]] <= 0.6


def test_line_search_uses_theta_old_when_given_and_rejects_non_improving_steps():
    theta_old = torch.tensor([1.0, 1.0], dtype=D)
    seen = []

    def kl(x):
        return (seen.append(x.clone()), 0.0)[1]

    frac, info = backtracking_line_search(
        torch.tensor([1.0, 0.0], dtype=D),
        lambda x: -1.0,
        kl,
        0.1,
        max_backtracks=3,
        theta_old=theta_old,
    )
    assert frac == 0.0 and info["accepted"] is None and len(info["fractions"]) == 3
    assert torch.allclose(seen[0], torch.tensor([2.0, 1.0], dtype=D))
    assert torch.allclose(seen[2], torch.tensor([1.25, 1.0], dtype=D))


def test_line_search_rejects_bad_inputs():
    step = torch.ones(2, dtype=D)

    def f(x):
        return 1.0

    with pytest.raises(ValueError, match="delta"):
        backtracking_line_search(step, f, f, -0.1)
    with pytest.raises(ValueError, match="shrink"):
        backtracking_line_search(step, f, f, 0.1, shrink=1.0)
    with pytest.raises(ValueError, match="max_backtracks"):
        backtracking_line_search(step, f, f, 0.1, max_backtracks=0)
    with pytest.raises(ValueError, match="theta_old"):
        backtracking_line_search(step, f, f, 0.1, theta_old=torch.ones(3, dtype=D))
    with pytest.raises(ValueError, match="objective_fn"):
        backtracking_line_search(step, None, f, 0.1)


def test_full_trpo_step_on_a_quadratic_model_respects_delta():
    F = spd(2, 4, cond=50.0)
    g = torch.tensor([1.0, 0.5, -0.5, 2.0], dtype=D)
    x, _ = conjugate_gradient(lambda v: F @ v, g, iters=10, tol=1e-12)
    step = trpo_step_size(g, x, 0.01) * x
    frac, info = backtracking_line_search(
        step, lambda d: float(g @ d), lambda d: 0.5 * float(d @ F @ d), 0.01 * (1 + 1e-9)
    )  # the full step sits on the boundary
    assert frac == 1.0
    assert info["kls"][0] == pytest.approx(0.01, rel=1e-9)
    assert math.isclose(info["improvements"][0], math.sqrt(2 * 0.01 * float(g @ x)), rel_tol=1e-9)
