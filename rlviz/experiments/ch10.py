"""The runs of chapter 10 that its identities, figures and notebook share: how the surrogate and
its estimate part from J along a direction, on an old policy of
:mod:`rlviz.experiments.old_policies` (default :func:`~rlviz.experiments.old_policies.book_old`)."""

from __future__ import annotations

import numpy as np
import torch

from rlviz._threads import torch_threads
from rlviz.experiments.old_policies import book_old
from rlviz.fn.stats import sample_variance_se
from rlviz.tabular.policy_gradient import DTYPE, objective_torch
from rlviz.tabular.surrogate import (
    line_profile,
    policy_directions,
    surrogate_estimate_variance,
    surrogate_sample_estimates,
    surrogate_torch,
)

VARIANCE_STEPS = (0.0, 1.0, 2.0, 4.0, 6.0, 8.0)  # steps t along a direction for the variance study


MC_N = 20_000


def autograd_gradient(fn, theta: np.ndarray) -> np.ndarray:
    th = torch.tensor(theta, dtype=DTYPE, requires_grad=True)
    (g,) = torch.autograd.grad(fn(th), th)
    return g.numpy()


def gradient_gaps(old=None, steps=(0.25, 0.5, 1.0, 2.0), n_random: int = 3) -> dict:
    r""":math:`\|\nabla J - \nabla L\|` and :math:`|J - L|` at :math:`\theta_{\text{old}} + t u`, per direction.

    Returns ``{direction: {"t": steps, "grad_gap": ..., "value_gap": ...}}`` (arrays).
    """
    old = book_old() if old is None else old
    out = {}
    with torch_threads(1):
        for name, u in policy_directions(old, n_random).items():
            gg, vg = [], []
            for t in steps:
                th = old.theta + t * u
                gg.append(
                    np.linalg.norm(
                        autograd_gradient(lambda x: objective_torch(old.mdp, x), th)
                        - autograd_gradient(lambda x: surrogate_torch(old, x), th)
                    )
                )
                prof = line_profile(old, u, [t])
                vg.append(abs(prof["J"][0] - prof["L"][0]))
            out[name] = {
                "t": np.asarray(steps),
                "grad_gap": np.asarray(gg),
                "value_gap": np.asarray(vg),
            }
    return out


def variance_study(
    old=None, direction: str = "gradient", steps=VARIANCE_STEPS, n: int = MC_N, seed: int = 12
) -> dict:
    """Exact and measured variances of the ratio and of the surrogate sample along a direction.

    Returns arrays over ``steps``: ``t``, ``kl`` (mean KL(pi_old || pi)), ``var_rho``,
    ``var_x`` (exact), ``mc_var_rho``, ``mc_var_x``, ``se_var_rho``, ``se_var_x`` (measured on
    ``n`` samples each), ``mc_mean_x``, ``se_mean_x`` and ``mean_x`` (= L - J_old, exact).
    """
    old = book_old() if old is None else old
    u = policy_directions(old, 3)[direction]
    rng = np.random.default_rng(seed)
    prof = line_profile(old, u, steps)
    keys = (
        "var_rho",
        "var_x",
        "mc_var_rho",
        "mc_var_x",
        "se_var_rho",
        "se_var_x",
        "mc_mean_x",
        "se_mean_x",
    )
    out = {k: [] for k in keys}
    for t in steps:
        th = old.theta + t * u
        vr, vx = surrogate_estimate_variance(old, th)
        rho, x = surrogate_sample_estimates(rng, old, th, n)
        (mvr, sr), (mvx, sx) = sample_variance_se(rho), sample_variance_se(x)
        for k, v in zip(keys, (vr, vx, mvr, mvx, sr, sx, x.mean(), x.std(ddof=1) / np.sqrt(n))):
            out[k].append(v)
    out = {k: np.asarray(v) for k, v in out.items()}
    out.update(t=np.asarray(steps), kl=prof["kl_mean"], mean_x=prof["L"] - old.J)
    return out
