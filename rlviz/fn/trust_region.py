r"""The trust-region machinery of TRPO (chapter 11): conjugate gradient, Fisher-vector products,
the step size that puts a quadratic KL model on the boundary, and the backtracking line search.

TRPO (Schulman et al., 2015) maximises the surrogate :math:`L(\theta)` subject to a KL limit,

.. math:: \max_\theta\ g^\top (\theta - \theta_{\text{old}})
          \quad \text{s.t.} \quad \tfrac12 (\theta - \theta_{\text{old}})^\top F
          (\theta - \theta_{\text{old}}) \le \delta,

with :math:`g = \nabla_\theta L(\theta_{\text{old}})` and :math:`F` the Fisher information
matrix (the Hessian of the mean KL at :math:`\theta_{\text{old}}`). The solution is
:math:`\theta - \theta_{\text{old}} = \sqrt{2\delta / g^\top F^{-1} g}\; F^{-1} g`.
:math:`F` is never formed: :func:`fisher_vector_product` gives :math:`F v` by double
back-propagation and :func:`conjugate_gradient` solves :math:`F x = g` with those products
only. :func:`backtracking_line_search` then shrinks the step until the *exact* KL is at most
:math:`\delta` and the surrogate improved.

All vectors are 1-d ``torch`` tensors (any floating dtype; the book uses float64).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from rlviz import _validate as validate

__all__ = [
    "conjugate_gradient",
    "fisher_vector_product",
    "trpo_step_size",
    "backtracking_line_search",
]


def _vector(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a 1-d torch.Tensor, got {type(x).__name__}")
    if x.ndim != 1:
        raise ValueError(f"{name} must be a 1-d torch.Tensor, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must have a floating dtype, got {x.dtype}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} must be finite (no NaN or inf)")
    return x


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    *,
    iters: int = 10,
    tol: float = 1e-10,
) -> tuple[torch.Tensor, list[float]]:
    r"""Solve :math:`F x = b` for a symmetric positive-definite :math:`F` given only :math:`v \mapsto F v`.

    Conjugate gradient from :math:`x_0 = 0`, :math:`r_0 = p_0 = b`:

    .. math:: \alpha_k = \frac{r_k^\top r_k}{p_k^\top F p_k},\quad
              x_{k+1} = x_k + \alpha_k p_k,\quad r_{k+1} = r_k - \alpha_k F p_k,\quad
              p_{k+1} = r_{k+1} + \frac{r_{k+1}^\top r_{k+1}}{r_k^\top r_k} p_k.

    In exact arithmetic it ends after at most :math:`n` steps (:math:`n` = length of ``b``);
    it stops early once :math:`\|r_k\| \le` ``tol``. On a singular positive *semi*-definite
    :math:`F` with :math:`b` in its range it converges to the minimum-norm solution
    (:math:`x_k` stays in the Krylov space of :math:`b`, inside the range of :math:`F`).

    Parameters
    ----------
    matvec : callable
        ``matvec(v)`` returns :math:`F v`, a 1-d tensor shaped like ``v``.
    b : torch.Tensor, shape (n,)
        Right-hand side.
    iters : int > 0
        Maximum number of iterations.
    tol : float >= 0
        Stop when the recursive residual norm :math:`\|r_k\|` is at most ``tol``.

    Returns
    -------
    x : torch.Tensor, shape (n,)
    residual_norms : list of float
        :math:`\|b - F x_k\|` after each iteration :math:`k = 1, 2, \dots`, computed explicitly
        (one extra product per iteration) so it is the true residual, not the recursive one.
    """
    b = _vector("b", b)
    iters = validate.positive("iters", iters, integer=True)
    tol = validate.non_negative("tol", tol)
    if not callable(matvec):
        raise ValueError(f"matvec must be callable (Tensor -> Tensor), got {type(matvec).__name__}")
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = torch.dot(r, r)
    residuals: list[float] = []
    if math.sqrt(float(rr)) <= tol:
        return x, residuals
    for _ in range(iters):
        Fp = matvec(p)
        if not isinstance(Fp, torch.Tensor) or Fp.shape != b.shape:
            raise ValueError(
                f"matvec must return a tensor of shape {tuple(b.shape)}, got "
                f"{getattr(Fp, 'shape', type(Fp).__name__)}"
            )
        pFp = torch.dot(p, Fp)
        if not float(pFp) > 0:
            raise ValueError(
                f"matvec is not positive definite along the search direction "
                f"(p^T F p = {float(pFp):.3g}); add damping or restrict to the range"
            )
        alpha = rr / pFp
        x = x + alpha * p
        r = r - alpha * Fp
        rr_new = torch.dot(r, r)
        residuals.append(float(torch.linalg.vector_norm(b - matvec(x))))
        if math.sqrt(float(rr_new)) <= tol:
            break
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, residuals


def _flat_grad(
    outputs: torch.Tensor, params: Sequence[torch.Tensor], *, create_graph: bool
) -> torch.Tensor:
    grads = torch.autograd.grad(outputs, list(params), create_graph=create_graph, allow_unused=True)
    return torch.cat(
        [(torch.zeros_like(p) if g is None else g).reshape(-1) for g, p in zip(grads, params)]
    )


def _params(params) -> list[torch.Tensor]:
    if isinstance(params, torch.Tensor):
        params = [params]
    params = list(params)
    if not params:
        raise ValueError("params must be a non-empty list of tensors requiring grad, got []")
    for i, p in enumerate(params):
        if not isinstance(p, torch.Tensor) or not p.requires_grad:
            raise ValueError(
                f"params[{i}] must be a torch.Tensor with requires_grad=True, got "
                f"{type(p).__name__}" + ("" if not isinstance(p, torch.Tensor) else " without grad")
            )
    return params


def fisher_vector_product(
    kl_fn: Callable[[], torch.Tensor], params, v: torch.Tensor, *, damping: float = 0.0
) -> torch.Tensor:
    r"""The Fisher-vector product :math:`(F + \lambda I) v` by double back-propagation.

    With :math:`\bar D(\theta) = \mathbb E_{s}[\mathrm{KL}(\pi_{\text{old}}(\cdot|s) \,\|\,
    \pi_\theta(\cdot|s))]` (``kl_fn()``, a scalar computed from the current ``params``),

    .. math:: g(\theta) = \nabla_\theta \bar D(\theta), \qquad
              F v = \nabla_\theta \big( g(\theta)^\top v \big) = \nabla^2_\theta \bar D(\theta)\, v,

    evaluated at the current parameters (at :math:`\theta = \theta_{\text{old}}` the Hessian of
    the mean KL is the Fisher matrix :math:`\mathbb E[\nabla \log\pi \nabla \log\pi^\top]`), plus
    ``damping`` :math:`\lambda` times :math:`v`. :math:`v` is held constant (detached).

    Parameters
    ----------
    kl_fn : callable
        ``kl_fn()`` returns the scalar mean KL as a differentiable function of ``params``.
    params : list of torch.Tensor
        Parameters with ``requires_grad=True``; flattened and concatenated in this order.
    v : torch.Tensor, shape (n,)
        ``n`` = total number of parameter entries.
    damping : float >= 0

    Returns
    -------
    torch.Tensor, shape (n,), detached.
    """
    params = _params(params)
    v = _vector("v", v)
    damping = validate.non_negative("damping", damping)
    n = sum(p.numel() for p in params)
    if v.shape[0] != n:
        raise ValueError(
            f"v must have length {n} (the number of parameter entries), got {v.shape[0]}"
        )
    kl = kl_fn()
    if not isinstance(kl, torch.Tensor) or kl.numel() != 1:
        raise ValueError(
            f"kl_fn() must return a scalar tensor, got {getattr(kl, 'shape', type(kl).__name__)}"
        )
    g = _flat_grad(kl.reshape(()), params, create_graph=True)
    gv = torch.dot(g, v.detach().to(g.dtype))
    if not gv.requires_grad:  # the KL is locally linear or constant: zero curvature
        Fv = torch.zeros_like(g)
    else:
        Fv = _flat_grad(gv, params, create_graph=False)
    return (Fv + damping * v.to(Fv.dtype)).detach()


def trpo_step_size(g: torch.Tensor, Finv_g: torch.Tensor, delta: float) -> float:
    r"""The step length :math:`\beta = \sqrt{2\delta / g^\top F^{-1} g}` that puts the quadratic KL on the boundary.

    The step :math:`\beta F^{-1} g` satisfies
    :math:`\tfrac12 (\beta F^{-1} g)^\top F (\beta F^{-1} g) = \tfrac12 \beta^2 g^\top F^{-1} g = \delta`.

    Parameters
    ----------
    g : torch.Tensor, shape (n,)
        Surrogate gradient.
    Finv_g : torch.Tensor, shape (n,)
        An (approximate) solution of :math:`F x = g`, e.g. from :func:`conjugate_gradient`.
    delta : float > 0
        The KL limit.
    """
    g = _vector("g", g)
    Finv_g = _vector("Finv_g", Finv_g)
    if Finv_g.shape != g.shape:
        raise ValueError(
            f"Finv_g must have the shape of g {tuple(g.shape)}, got {tuple(Finv_g.shape)}"
        )
    delta = validate.positive("delta", delta)
    quad = float(torch.dot(g, Finv_g))
    if not quad > 0:
        raise ValueError(f"g^T F^-1 g must be > 0 (F positive definite, g != 0), got {quad:.3g}")
    return math.sqrt(2.0 * delta / quad)


def backtracking_line_search(
    step: torch.Tensor,
    objective_fn: Callable,
    kl_fn: Callable,
    delta: float,
    *,
    max_backtracks: int = 10,
    shrink: float = 0.5,
    theta_old: torch.Tensor | None = None,
) -> tuple[float, dict]:
    r"""Shrink a proposed step until the exact KL is within :math:`\delta` and the surrogate improves.

    Tries :math:`x_j = \theta_{\text{old}} + \text{shrink}^j\, \text{step}` for
    :math:`j = 0, 1, \dots, \text{max\_backtracks} - 1` and accepts the first with

    .. math:: \bar D_{\mathrm{KL}}(\theta_{\text{old}}, x_j) \le \delta
              \quad\text{and}\quad L(x_j) - L(\theta_{\text{old}}) > 0 .

    ``objective_fn(x)`` must return the surrogate *improvement*
    :math:`L(x) - L(\theta_{\text{old}})` and ``kl_fn(x)`` the mean KL
    :math:`\bar D_{\mathrm{KL}}(\theta_{\text{old}}, x)`, as floats or 0-d tensors, where
    ``x`` is the flat parameter vector :math:`\theta_{\text{old}} + \text{shrink}^j\,
    \text{step}`. Pass ``theta_old`` (flat, shape ``(n,)``) to receive that vector; if
    ``theta_old`` is omitted, ``x`` is the displacement :math:`\text{shrink}^j\,\text{step}`
    itself (i.e. :math:`\theta_{\text{old}} = 0` from this function's point of view, and the
    caller adds its own old parameters). Both calls run under ``torch.no_grad()``.

    Parameters
    ----------
    step : torch.Tensor, shape (n,)
        The full proposed step, e.g. :math:`\beta F^{-1} g` (see :func:`trpo_step_size`).
    objective_fn, kl_fn : callables of a flat tensor of shape (n,)
    delta : float > 0
        The KL limit.
    max_backtracks : int > 0
        Number of fractions tried: :math:`1, \text{shrink}, \dots, \text{shrink}^{\text{max\_backtracks}-1}`.
    shrink : float in (0, 1)
    theta_old : torch.Tensor, shape (n,), optional
        The old flat parameters (see above).

    Returns
    -------
    accepted_fraction : float
        :math:`\text{shrink}^j` of the first accepted try, 0.0 if none was accepted
        (then the caller keeps :math:`\theta_{\text{old}}`).
    info : dict
        ``fractions``, ``kls``, ``improvements`` (lists over the tries made, floats) and
        ``accepted`` (index of the accepted try, or ``None``).
    """
    step = _vector("step", step)
    delta = validate.positive("delta", delta)
    max_backtracks = validate.positive("max_backtracks", max_backtracks, integer=True)
    shrink = validate.unit_interval("shrink", shrink, open_left=True, open_right=True)
    if theta_old is not None:
        theta_old = _vector("theta_old", theta_old)
        if theta_old.shape != step.shape:
            raise ValueError(
                f"theta_old must have the shape of step {tuple(step.shape)}, got "
                f"{tuple(theta_old.shape)}"
            )
    for name, fn in (("objective_fn", objective_fn), ("kl_fn", kl_fn)):
        if not callable(fn):
            raise ValueError(
                f"{name} must be callable (flat tensor -> float), got {type(fn).__name__}"
            )
    info: dict = {"fractions": [], "kls": [], "improvements": [], "accepted": None}
    with torch.no_grad():
        for j in range(max_backtracks):
            frac = shrink**j
            x = frac * step if theta_old is None else theta_old + frac * step
            kl = float(kl_fn(x))
            imp = float(objective_fn(x))
            info["fractions"].append(frac)
            info["kls"].append(kl)
            info["improvements"].append(imp)
            if kl <= delta and imp > 0:
                info["accepted"] = j
                return frac, info
    return 0.0, info
