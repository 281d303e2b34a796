"""The settings and runs of chapter 11 that its identities, figures and notebook share."""

from __future__ import annotations

import numpy as np
import torch

from rlviz._threads import torch_threads
from rlviz.experiments.corridor_settings import THETA
from rlviz.experiments.old_policies import book_old, random_olds
from rlviz.fn.trust_region import conjugate_gradient, fisher_vector_product
from rlviz.tabular.policy_gradient import DTYPE
from rlviz.tabular.surrogate import (
    fisher_matrix,
    line_profile,
    mean_kl_torch,
    policy_directions,
    surrogate_torch,
    tabular_trpo,
    tabular_trpo_step,
)

DELTAS = (0.001, 0.003, 0.01, 0.03, 0.1)


TRPO_ITERS = 25


BOUND_STEPS = tuple(np.round(np.linspace(-0.3, 0.3, 25), 6))


def settings():
    return [book_old()] + random_olds()


def surrogate_grad(old) -> torch.Tensor:
    r""":math:`g = \nabla L(\theta_{\text{old}})` (= :math:`\nabla J(\theta_{\text{old}})`) by autograd."""
    th = torch.tensor(old.theta, dtype=DTYPE, requires_grad=True)
    (g,) = torch.autograd.grad(surrogate_torch(old, th), th)
    return g


def fvp_operator(old, damping: float = 0.0):
    """v -> (F + damping I) v by double back-propagation of the d_old-weighted mean KL."""
    p = torch.tensor(old.theta, dtype=DTYPE, requires_grad=True)
    return lambda v: fisher_vector_product(lambda: mean_kl_torch(old, p), [p], v, damping=damping)


def cg_report(old, damping: float = 0.0, iters: int = 30) -> dict:
    """CG on F x = g with Fisher-vector products: residuals, x, and the pinv / lstsq solutions."""
    g = surrogate_grad(old)
    with torch_threads(1):
        x, res = conjugate_gradient(fvp_operator(old, damping), g, iters=iters, tol=1e-12)
    F = fisher_matrix(old) + damping * np.eye(old.theta.size)
    x_pinv = np.linalg.pinv(F) @ g.numpy()
    x_lstsq = torch.linalg.lstsq(torch.tensor(F), g.unsqueeze(1), driver="gelsd").solution[:, 0]
    return {
        "x": x.numpy(),
        "residuals": np.asarray(res),
        "x_pinv": x_pinv,
        "x_lstsq": x_lstsq.numpy(),
        "g": g.numpy(),
        "F": F,
        "true_residual": float(np.linalg.norm(g.numpy() - F @ x.numpy())),
    }


def trust_region_steps(deltas=DELTAS) -> list[dict]:
    """One exact TRPO step from every setting, for every delta: the exact KL of the accepted step."""
    rows = []
    for o in settings():
        for delta in deltas:
            out = tabular_trpo_step(o, delta)
            rows.append(
                {
                    "delta": delta,
                    "kl": out["kl"],
                    "fraction": out["fraction"],
                    "improvement": out["improvement"],
                }
            )
    return rows


def bound_profiles(old=None, n_random: int = 3, steps=BOUND_STEPS) -> dict:
    """:func:`rlviz.tabular.surrogate.line_profile` along the gradient and random directions."""
    old = book_old() if old is None else old
    return {
        name: line_profile(old, u, steps) for name, u in policy_directions(old, n_random).items()
    }


def smallest_constant(profiles) -> float:
    r"""The smallest :math:`C` with :math:`J \ge L - C\,D^{\max}_{\mathrm{KL}}` at every point of ``profiles``.

    :math:`C_{\min} = \max_i (L_i - J_i) / D^{\max}_{\mathrm{KL},i}` over the points with
    :math:`D^{\max}_{\mathrm{KL},i} > 0` (0 if :math:`L \le J` everywhere): what the data
    supports, to set beside the theorem's constant (:func:`rlviz.tabular.surrogate.schulman_constant`).
    ``profiles``: an iterable of :func:`~rlviz.tabular.surrogate.line_profile` results.
    """
    need = 0.0
    for p in profiles:
        moved = p["kl_max"] > 0
        if moved.any():
            need = max(need, float(((p["L"] - p["J"])[moved] / p["kl_max"][moved]).max()))
    return need


def settings_profiles() -> list[dict]:
    """:func:`bound_profiles` of every setting (the corridor with 3 random directions on
    :data:`BOUND_STEPS`; each random MDP with 2, steps -2..2): one dict of profiles per setting."""
    return [
        bound_profiles(
            o, n_random=3 if i == 0 else 2, steps=np.linspace(-2.0, 2.0, 21) if i else BOUND_STEPS
        )
        for i, o in enumerate(settings())
    ]


def constant_report(profiles=None) -> list[dict]:
    """Per setting: the theorem's C, the smallest C the profiles support, and their ratio
    (``profiles``: :func:`settings_profiles`, computed if not given)."""
    rows = []
    for i, profs in enumerate(settings_profiles() if profiles is None else profiles):
        C = next(iter(profs.values()))["C"]
        c_min = smallest_constant(profs.values())
        rows.append(
            {
                "setting": "corridor" if i == 0 else f"random {i}",
                "C": C,
                "C_min": c_min,
                "ratio": c_min / C,
            }
        )
    return rows


def trpo_runs(deltas=DELTAS, iters: int = TRPO_ITERS) -> dict:
    """Tabular TRPO on the corridor from the chapter-3 logits, for each delta."""
    old = book_old()
    return {delta: tabular_trpo(old.mdp, THETA, delta, iters) for delta in deltas}
