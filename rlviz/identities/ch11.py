r"""Chapter 11: TRPO on a tabular MDP: the Fisher matrix, conjugate gradient, the trust region and
the lower bound of Schulman et al. (2015).

Setting as in chapter 10: the discounted corridor (:math:`\gamma = 0.9`) with the chapter-3
logits, and random dense MDPs (:math:`S = 5`, :math:`A = 3`).
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz.tabular.policy_gradient import DTYPE
from rlviz.tabular.surrogate import (fisher_matrix, kl_hessian, line_profile, mean_kl_torch,
                         policy_directions, surrogate_torch, tabular_natural_gradient,
                         tabular_trpo, tabular_trpo_step)
from rlviz.fn.trust_region import conjugate_gradient, fisher_vector_product, trpo_step_size
from rlviz._threads import torch_threads
from rlviz.verify import Measure, identity
from rlviz.identities.ch03 import THETA
from rlviz.identities.ch10 import DETAIL, _random_olds, book_old

DELTAS = (0.001, 0.003, 0.01, 0.03, 0.1)
TRPO_ITERS = 25
BOUND_STEPS = tuple(np.round(np.linspace(-0.3, 0.3, 25), 6))


def _settings():
    return [book_old()] + _random_olds()


def surrogate_grad(old) -> torch.Tensor:
    r""":math:`g = \nabla L(\theta_{\text{old}})` (= :math:`\nabla J(\theta_{\text{old}})`) by autograd."""
    th = torch.tensor(old.theta, dtype=DTYPE, requires_grad=True)
    (g,) = torch.autograd.grad(surrogate_torch(old, th), th)
    return g


def fvp_operator(old, damping: float = 0.0):
    """v -> (F + damping I) v by double back-propagation of the d_old-weighted mean KL."""
    p = torch.tensor(old.theta, dtype=DTYPE, requires_grad=True)
    return lambda v: fisher_vector_product(lambda: mean_kl_torch(old, p), [p], v, damping=damping)


@identity("ch11.fisher_is_kl_hessian", chapter=11,
          title="E_{d_old, pi_old}[grad log pi grad log pi^T] = Hessian of the mean KL at theta_old")
def fisher_is_kl_hessian() -> Measure:
    with torch_threads(1):
        errs = [np.abs(fisher_matrix(o) - kl_hessian(o)).max() for o in _settings()]
    return Measure(float(max(errs)), DETAIL)


@identity("ch11.fvp_matches_fisher", chapter=11,
          title="Fisher-vector product by double backprop = F v (every basis vector)")
def fvp_matches_fisher() -> Measure:
    errs = []
    with torch_threads(1):
        for o in _settings():
            fvp = fvp_operator(o)
            K = o.theta.size
            cols = torch.stack([fvp(e) for e in torch.eye(K, dtype=DTYPE)], dim=1).numpy()
            errs.append(np.abs(cols - fisher_matrix(o)).max())
    return Measure(float(max(errs)), DETAIL)


def cg_report(old, damping: float = 0.0, iters: int = 30) -> dict:
    """CG on F x = g with Fisher-vector products: residuals, x, and the pinv / lstsq solutions."""
    g = surrogate_grad(old)
    with torch_threads(1):
        x, res = conjugate_gradient(fvp_operator(old, damping), g, iters=iters, tol=1e-12)
    F = fisher_matrix(old) + damping * np.eye(old.theta.size)
    x_pinv = np.linalg.pinv(F) @ g.numpy()
    x_lstsq = torch.linalg.lstsq(torch.tensor(F), g.unsqueeze(1), driver="gelsd").solution[:, 0]
    return {"x": x.numpy(), "residuals": np.asarray(res), "x_pinv": x_pinv,
            "x_lstsq": x_lstsq.numpy(), "g": g.numpy(), "F": F,
            "true_residual": float(np.linalg.norm(g.numpy() - F @ x.numpy()))}


@identity("ch11.cg_solves_fisher_system", chapter=11,
          statistic="max of ||g - F x_cg|| and ||x_cg - pinv(F) g||",
          title="CG with Fisher-vector products (no damping) solves F x = g: the min-norm solution")
def cg_solves_fisher_system() -> Measure:
    errs, iters = [], []
    for o in _settings():
        r = cg_report(o)
        errs += [r["true_residual"], np.abs(r["x"] - r["x_pinv"]).max()]
        iters.append(len(r["residuals"]))
    return Measure(float(max(errs)), DETAIL + f"; CG iterations used: {min(iters)} to {max(iters)}")


@identity("ch11.natural_gradient_is_advantage", chapter=11,
          title="tabular softmax: pinv(F) grad J = (A_old - mean_a A_old) / (1 - gamma) (Kakade 2002)")
def natural_gradient_is_advantage() -> Measure:
    errs = []
    for o in _settings():
        g = surrogate_grad(o).numpy()
        errs.append(np.abs(np.linalg.pinv(fisher_matrix(o)) @ g - tabular_natural_gradient(o)).max())
    return Measure(float(max(errs)), DETAIL)


@identity("ch11.quadratic_kl_on_boundary", chapter=11,
          title="the full step beta x, beta = sqrt(2 delta / g^T x), has 1/2 s^T F s = delta")
def quadratic_kl_on_boundary() -> Measure:
    errs = []
    for o in _settings():
        r = cg_report(o)
        for delta in DELTAS:
            s = trpo_step_size(torch.tensor(r["g"]), torch.tensor(r["x"]), delta) * r["x"]
            errs.append(abs(0.5 * s @ fisher_matrix(o) @ s - delta))
    return Measure(float(max(errs)), DETAIL + f"; delta in {DELTAS}")


def trust_region_steps(deltas=DELTAS) -> list[dict]:
    """One exact TRPO step from every setting, for every delta: the exact KL of the accepted step."""
    rows = []
    for o in _settings():
        for delta in deltas:
            out = tabular_trpo_step(o, delta)
            rows.append({"delta": delta, "kl": out["kl"], "fraction": out["fraction"],
                         "improvement": out["improvement"]})
    return rows


@identity("ch11.step_kl_within_delta", chapter=11, kind="bound", tol=1.0,
          statistic="max over settings and delta of KL(accepted step) / delta",
          title="after the line search the exact mean KL of the step is at most delta")
def step_kl_within_delta() -> Measure:
    with torch_threads(1):
        rows = trust_region_steps()
    worst = max(r["kl"] / r["delta"] for r in rows)
    shrunk = sum(r["fraction"] < 1 for r in rows)
    accepted = sum(r["fraction"] > 0 for r in rows)
    return Measure(float(worst), f"{len(rows)} steps ({DETAIL}; delta in {DELTAS}); "
                                 f"{accepted} accepted, {shrunk} needed backtracking")


def bound_profiles(old=None, n_random: int = 3, steps=BOUND_STEPS) -> dict:
    """:func:`rlviz.tabular.surrogate.line_profile` along the gradient and random directions."""
    old = book_old() if old is None else old
    return {name: line_profile(old, u, steps)
            for name, u in policy_directions(old, n_random).items()}


@identity("ch11.schulman_lower_bound", chapter=11,
          statistic="max over steps and directions of max(0, (L - C KL_max) - J)",
          title="Schulman et al. (2015): J(theta) >= L(theta) - C KL_max(theta_old, theta)")
def schulman_lower_bound() -> Measure:
    violation, margin = [], []
    for i, o in enumerate(_settings()):
        profs = bound_profiles(o, n_random=3 if i == 0 else 2,
                               steps=np.linspace(-2.0, 2.0, 21) if i else BOUND_STEPS)
        for p in profs.values():
            gap = p["J"] - p["bound"]
            violation.append(max(0.0, float(-gap.min())))
            margin.append(float(gap[p["t"] != 0].min()))
    return Measure(float(max(violation)), DETAIL + f"; 3-4 directions each, 21-25 steps; smallest "
                                          f"margin J - bound away from theta_old {min(margin):.2e}")


def trpo_runs(deltas=DELTAS, iters: int = TRPO_ITERS) -> dict:
    """Tabular TRPO on the corridor from the chapter-3 logits, for each delta."""
    old = book_old()
    return {delta: tabular_trpo(old.mdp, THETA, delta, iters) for delta in deltas}


@identity("ch11.trpo_monotone", chapter=11, kind="bound", tol=0.0,
          statistic="steps where J fell by more than 1e-12",
          title="tabular TRPO (exact gradient, CG, line search): J never decreases")
def trpo_monotone() -> Measure:
    runs = trpo_runs()
    falls = sum(int((np.diff(h["J"]) < -1e-12).sum()) for h in runs.values())
    worst = max(float((h["kl"] / d).max()) for d, h in runs.items())
    return Measure(float(falls), f"corridor, {TRPO_ITERS} iterations for each delta in {DELTAS}; "
                                 f"max KL/delta per step {worst:.3f}")
