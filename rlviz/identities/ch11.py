r"""Chapter 11: TRPO on a tabular MDP: the Fisher matrix, conjugate gradient, the trust region and
the lower bound of Schulman et al. (2015).

Setting as in chapter 10 (:mod:`rlviz.experiments.old_policies`): the discounted corridor
(:math:`\gamma = 0.9`) with the chapter-3 logits, and random dense MDPs (:math:`S = 5`,
:math:`A = 3`).
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz._threads import torch_threads
from rlviz.experiments.ch11 import (
    DELTAS,
    TRPO_ITERS,
    cg_report,
    constant_report,
    fvp_operator,
    settings,
    settings_profiles,
    surrogate_grad,
    trpo_runs,
    trust_region_steps,
)
from rlviz.experiments.old_policies import DETAIL
from rlviz.fn.ppo_loss import categorical_kl
from rlviz.fn.trust_region import trpo_step_size
from rlviz.tabular.policy_gradient import DTYPE
from rlviz.tabular.surrogate import fisher_matrix, kl_hessian, tabular_natural_gradient
from rlviz.verify import Measure, identity


@identity(
    "ch11.fisher_is_kl_hessian",
    chapter=11,
    title="E_{d_old, pi_old}[grad log pi grad log pi^T] = Hessian of the mean KL at theta_old",
)
def fisher_is_kl_hessian() -> Measure:
    with torch_threads(1):
        errs = [np.abs(fisher_matrix(o) - kl_hessian(o)).max() for o in settings()]
    return Measure(float(max(errs)), DETAIL)


@identity(
    "ch11.reverse_kl_hessian_is_fisher",
    chapter=11,
    title="the reverse KL, E_{d_old}[KL(pi_theta || pi_old)], has the same Hessian F at theta_old",
)
def reverse_kl_hessian_is_fisher() -> Measure:
    errs = []
    with torch_threads(1):
        for o in settings():
            S, A = o.mdp.n_states, o.mdp.n_actions
            logp_old = torch.log(torch.tensor(o.pi, dtype=DTYPE))
            d = torch.tensor(o.d, dtype=DTYPE)

            def reverse_kl(th, logp_old=logp_old, d=d, S=S, A=A):
                logp = torch.log_softmax(th.reshape(S, A), dim=1)
                return d @ categorical_kl(logp, logp_old)

            hess = torch.autograd.functional.hessian(reverse_kl, torch.tensor(o.theta, dtype=DTYPE))
            errs.append(np.abs(hess.numpy() - fisher_matrix(o)).max())
    return Measure(float(max(errs)), DETAIL)


@identity(
    "ch11.fvp_matches_fisher",
    chapter=11,
    title="Fisher-vector product by double backprop = F v (every basis vector)",
)
def fvp_matches_fisher() -> Measure:
    errs = []
    with torch_threads(1):
        for o in settings():
            fvp = fvp_operator(o)
            n_params = o.theta.size
            cols = torch.stack([fvp(e) for e in torch.eye(n_params, dtype=DTYPE)], dim=1).numpy()
            errs.append(np.abs(cols - fisher_matrix(o)).max())
    return Measure(float(max(errs)), DETAIL)


@identity(
    "ch11.cg_solves_fisher_system",
    chapter=11,
    statistic="max of ||g - F x_cg|| and ||x_cg - pinv(F) g||",
    title="CG with Fisher-vector products (no damping) solves F x = g: the min-norm solution",
)
def cg_solves_fisher_system() -> Measure:
    errs, iters = [], []
    for o in settings():
        r = cg_report(o)
        errs += [r["true_residual"], np.abs(r["x"] - r["x_pinv"]).max()]
        iters.append(len(r["residuals"]))
    return Measure(float(max(errs)), DETAIL + f"; CG iterations used: {min(iters)} to {max(iters)}")


@identity(
    "ch11.natural_gradient_is_advantage",
    chapter=11,
    title="tabular softmax: pinv(F) grad J = (A_old - mean_a A_old) / (1 - gamma) (Kakade 2002)",
)
def natural_gradient_is_advantage() -> Measure:
    errs = []
    for o in settings():
        g = surrogate_grad(o).numpy()
        errs.append(
            np.abs(np.linalg.pinv(fisher_matrix(o)) @ g - tabular_natural_gradient(o)).max()
        )
    return Measure(float(max(errs)), DETAIL)


@identity(
    "ch11.quadratic_kl_on_boundary",
    chapter=11,
    title="the full step beta x, beta = sqrt(2 delta / g^T x), has 1/2 s^T F s = delta",
)
def quadratic_kl_on_boundary() -> Measure:
    errs = []
    for o in settings():
        r = cg_report(o)
        for delta in DELTAS:
            s = trpo_step_size(torch.tensor(r["g"]), torch.tensor(r["x"]), delta) * r["x"]
            errs.append(abs(0.5 * s @ fisher_matrix(o) @ s - delta))
    return Measure(float(max(errs)), DETAIL + f"; delta in {DELTAS}")


@identity(
    "ch11.step_kl_within_delta",
    chapter=11,
    kind="bound",
    tol=1.0,
    statistic="max over settings and delta of KL(accepted step) / delta",
    title="after the line search the exact mean KL of the step is at most delta",
)
def step_kl_within_delta() -> Measure:
    with torch_threads(1):
        rows = trust_region_steps()
    worst = max(r["kl"] / r["delta"] for r in rows)
    shrunk = sum(r["fraction"] < 1 for r in rows)
    accepted = sum(r["fraction"] > 0 for r in rows)
    return Measure(
        float(worst),
        f"{len(rows)} steps ({DETAIL}; delta in {DELTAS}); "
        f"{accepted} accepted, {shrunk} needed backtracking",
    )


@identity(
    "ch11.schulman_lower_bound",
    chapter=11,
    statistic="max over steps and directions of max(0, (L - C KL_max) - J)",
    title="Schulman et al. (2015): J(theta) >= L(theta) - C KL_max(theta_old, theta)",
)
def schulman_lower_bound() -> Measure:
    profiles = settings_profiles()
    violation = [
        max(0.0, float(-(p["J"] - p["bound"]).min())) for profs in profiles for p in profs.values()
    ]
    ratios = [r["ratio"] for r in constant_report(profiles)]
    smaller = [float(f"{1 / x:.2g}") for x in (max(ratios), min(ratios))]  # 2 significant digits
    return Measure(
        float(max(violation)),
        DETAIL + f"; 3-4 directions each, 21-25 steps; a constant {smaller[0]:.0f} to "
        f"{smaller[1]:.0f} times smaller than C also holds here",
    )


@identity(
    "ch11.kl_penalty_needed",
    chapter=11,
    kind="bound",
    tol=0.0,
    statistic="settings where L <= J at every step (C = 0 would do)",
    title="the KL penalty is needed: without it (C = 0) L exceeds J somewhere in every setting",
)
def kl_penalty_needed() -> Measure:
    rows = constant_report()
    shown = ", ".join(f"{r['setting']} {r['ratio']:.1e}" for r in rows)
    return Measure(
        float(sum(r["C_min"] <= 0 for r in rows)),
        f"smallest C the data supports / the theorem's C: {shown}",
    )


@identity(
    "ch11.trpo_monotone",
    chapter=11,
    kind="bound",
    tol=0.0,
    statistic="steps where J fell by more than 1e-12",
    title="tabular TRPO (exact gradient, CG, line search): J never decreases",
)
def trpo_monotone() -> Measure:
    runs = trpo_runs()
    falls = sum(int((np.diff(h["J"]) < -1e-12).sum()) for h in runs.values())
    worst = max(float((h["kl"] / d).max()) for d, h in runs.items())
    return Measure(
        float(falls),
        f"corridor, {TRPO_ITERS} iterations for each delta in {DELTAS}; "
        f"max KL/delta per step {worst:.3f}",
    )
