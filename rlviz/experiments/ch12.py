r"""The PPO clip under the microscope (chapter 12): what one real CartPole update does to the
surrogates, the ratios and the KL.

* :func:`interpolation_curves` evaluates the surrogates and the KL along the segment from
  :math:`\theta_{\text{old}}` to the parameters one PPO update produced (the paper's Figure 2);
* :func:`ratio_spread` summarises how far the updated policies' ratios went outside
  :math:`[1-\epsilon, 1+\epsilon]` during a training run (the errata of notes section 12).

* :func:`surrogate_gap_table` compares, exactly on the corridor of chapter 10, the gradient
  at :math:`\theta_{\text{old}}` of the surrogate as practice computes it (time-step average,
  GAE advantages from an estimated value, advantage normalisation) with :math:`\nabla J`;
* :func:`kl_slopes` measures the order of contact of the mean KL along straight lines from
  :math:`\theta_{\text{old}}` (log-log slope 2: quadratic in the step :math:`\alpha`).

The clipped objective itself is :func:`rlviz.fn.ppo_loss.clipped_surrogate`; its case-by-case
form (the paper's Figure 1) is checked by the identity ``ch12.clip_piecewise``.
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz._threads import torch_threads
from rlviz.agents.actor_critic import ActorCritic, TrainResult
from rlviz.experiments.old_policies import book_old
from rlviz.fn.ppo_loss import (
    categorical_kl,
    clip_fraction,
    clipped_surrogate,
    normalize_advantages,
    policy_gradient_surrogate,
)
from rlviz.fn.stats import angle_and_norm_ratio, loglog_slope
from rlviz.tabular.advantage_moments import value_error
from rlviz.tabular.mdp import state_values
from rlviz.tabular.policy_gradient import DTYPE
from rlviz.tabular.surrogate import mean_kl_torch, policy_directions, sample_surrogate_gradients

__all__ = [
    "interpolation_curves",
    "ratio_spread",
    "V_ERROR",
    "GAP_LAMBDAS",
    "wrong_values",
    "surrogate_gap_table",
    "KL_ALPHAS",
    "kl_slopes",
]

V_ERROR = 0.3  # scale of the error added to V (value_error, seed 0)
GAP_LAMBDAS = (0.95, 0.0, 1.0)  # GAE's lambda: PPO's default, one-step TD, Monte Carlo
KL_ALPHAS = np.geomspace(1e-3, 1e-1, 9)  # steps along a line for the log-log slope of the KL


def _check(result: TrainResult, k: int) -> None:
    if not isinstance(result, TrainResult):
        raise ValueError(
            f"result must be what rlviz.agents.ppo.train returns, got {type(result).__name__}"
        )
    if (
        isinstance(k, bool)
        or not isinstance(k, (int, np.integer))
        or not 0 <= k < len(result.configs)
    ):
        raise ValueError(f"k must be a setting index in [0, {len(result.configs)}), got {k!r}")


def _log_policy(result: TrainResult, flat: torch.Tensor, k: int) -> torch.Tensor:
    """log pi(. | s) of setting k's actor with parameters ``flat`` on the last batch, float64 (B, 2)."""
    agent = ActorCritic(flat, result.agent.hidden)
    with torch.no_grad():
        logits, _ = agent(result.last_batch["obs"])
    return torch.log_softmax(logits[k].double(), -1)


def interpolation_curves(result: TrainResult, alphas, *, k: int = 0) -> dict:
    r"""Surrogates and KL along the segment from :math:`\theta_{\text{old}}` to :math:`\theta_{\text{new}}`,
    :math:`\theta(\alpha) = \theta_{\text{old}} + \alpha(\theta_{\text{new}} - \theta_{\text{old}})`.

    :math:`\theta_{\text{old}}` and the batch are those of the last update of ``result`` (a run of
    :func:`rlviz.agents.ppo.train`, setting ``k``), :math:`\theta_{\text{new}}` its parameters
    after that update. If the setting normalises advantages, they are standardised over the
    whole batch (:func:`rlviz.fn.ppo_loss.normalize_advantages`): with one minibatch per epoch
    (the book's setting) exactly the advantages the update used; with several, the update
    standardised each minibatch separately, so these differ slightly from what it saw. For each
    :math:`\alpha`:

    .. math::
        L^{PG} = \hat E[r_t \hat A_t], \quad L^{CLIP} = \hat E[\ell^{CLIP}_t], \quad
        \overline{KL} = \hat E_{s_t}\Bigl[\sum_a \pi_{\text{old}}(a|s_t)
        \log\frac{\pi_{\text{old}}(a|s_t)}{\pi_{\theta(\alpha)}(a|s_t)}\Bigr],

    by :func:`~rlviz.fn.ppo_loss.policy_gradient_surrogate`,
    :func:`~rlviz.fn.ppo_loss.clipped_surrogate` and :func:`~rlviz.fn.ppo_loss.categorical_kl`
    (the exact mean KL over the batch's states), and ``outside``, the fraction of samples with
    :math:`|r_t - 1| > \epsilon` (:func:`~rlviz.fn.ppo_loss.clip_fraction`). Returns numpy
    arrays keyed ``alpha``, ``L_pg``, ``L_clip``, ``kl``, ``outside``, and ``epsilon``.
    """
    _check(result, k)
    lb = result.last_batch
    if not lb:
        raise ValueError("result has no last_batch: train at least one update")
    alphas = np.asarray(alphas, float)
    if alphas.ndim != 1 or not np.isfinite(alphas).all():
        raise ValueError(f"alphas must be a 1-d array of finite numbers, got {alphas!r}")
    eps = float(lb["epsilon"][k, 0])
    adv = lb["adv"][k].double()
    if result.configs[k].norm_adv:
        adv = normalize_advantages(adv)
    act = lb["actions"][k]
    old, new = lb["flat_before"], result.agent.flat
    logp_old_all = _log_policy(result, old, k)
    logp_old = logp_old_all.gather(-1, act[:, None])[:, 0]
    out = {key: [] for key in ("L_pg", "L_clip", "kl", "outside")}
    for a in alphas:
        logp_all = _log_policy(result, old + float(a) * (new - old), k)
        ratio = torch.exp(logp_all.gather(-1, act[:, None])[:, 0] - logp_old)
        out["L_pg"].append(float(policy_gradient_surrogate(ratio, adv).mean()))
        out["L_clip"].append(float(clipped_surrogate(ratio, adv, eps).mean()))
        out["kl"].append(float(categorical_kl(logp_old_all, logp_all).mean()))
        out["outside"].append(float(clip_fraction(ratio, eps).mean()))
    return {"alpha": alphas, "epsilon": eps, **{key: np.array(v) for key, v in out.items()}}


def ratio_spread(result: TrainResult, *, k: int = 0) -> dict:
    """Per-update ratio spread of the updated policies of a run (setting ``k``), and summaries.

    From the logs of :func:`rlviz.agents.ppo.train` (measured on the whole batch after each update):
    ``outside`` (fraction of samples with ratio outside [1 - eps, 1 + eps]), ``max_ratio``
    and ``kl`` (k3 estimate), with their means and maxima over updates.
    """
    _check(result, k)
    outside = result.log("clip_fraction")[:, k]
    max_ratio = result.log("max_ratio")[:, k]
    kl = result.log("approx_kl")[:, k]
    return {
        "steps": result.log("steps"),
        "outside": outside,
        "max_ratio": max_ratio,
        "kl": kl,
        "mean_outside": float(outside.mean()),
        "max_outside": float(outside.max()),
        "largest_ratio": float(max_ratio.max()),
        "mean_kl": float(kl.mean()),
        "max_kl": float(kl.max()),
    }


def wrong_values(old=None, scale: float = V_ERROR, seed: int = 0) -> np.ndarray:
    r""":math:`\hat V = V^{\pi_{\text{old}}} + e` with the seeded error of
    :func:`rlviz.tabular.advantage_moments.value_error` (0 on terminal states), shape ``(S,)``."""
    old = book_old() if old is None else old
    return state_values(old.mdp, old.pi) + value_error(old.mdp, scale, seed)


def surrogate_gap_table(old=None, v_hat=None, lams=GAP_LAMBDAS) -> list[dict]:
    r"""The gradient at :math:`\theta_{\text{old}}` of each version of the surrogate against :math:`\nabla J`.

    On ``old`` (default: the corridor, :func:`rlviz.experiments.old_policies.book_old`) with the
    value estimate ``v_hat`` (default :func:`wrong_values`), from
    :func:`rlviz.tabular.surrogate.sample_surrogate_gradients`. One row per version, in the
    order practice departs from the exact surrogate: ``exact`` (discounted visitation, true
    :math:`A`), ``undiscounted`` (time-step average, true :math:`A`), then for each
    :math:`\lambda` in ``lams`` ``gae`` (GAE from ``v_hat``) and ``normalised`` (that GAE
    standardised). Each row: ``name``, ``lam`` (None for the first two), ``grad``, ``angle``
    (degrees) and ``norm_ratio`` against :math:`\nabla J` (per-episode scale), ``angle_prev``:
    the angle to the row it modifies (``exact`` for ``undiscounted``, ``undiscounted`` for
    ``gae``, ``gae`` for ``normalised``), ``max_diff_prev`` :math:`\max|g - g_{\text{prev}}|`,
    and ``sigma`` (the standard deviation normalisation divides by; None elsewhere).
    """
    old = book_old() if old is None else old
    v_hat = wrong_values(old) if v_hat is None else v_hat
    rows: list[dict] = []

    def add(name, lam, grad, prev, g_j, sigma=None):
        angle, ratio = angle_and_norm_ratio(grad, g_j)
        rows.append(
            {
                "name": name,
                "lam": lam,
                "grad": grad,
                "angle": angle,
                "norm_ratio": ratio,
                "angle_prev": angle_and_norm_ratio(grad, prev)[0],
                "max_diff_prev": float(np.abs(grad - prev).max()),
                "sigma": sigma,
            }
        )

    for i, lam in enumerate(lams):
        g = sample_surrogate_gradients(old, v_hat, lam)
        if i == 0:
            add("exact", None, g["exact"], g["grad_J"], g["grad_J"])
            add("undiscounted", None, g["undiscounted"], g["exact"], g["grad_J"])
        add("gae", lam, g["gae"], g["undiscounted"], g["grad_J"])
        add("normalised", lam, g["normalised"], g["gae"], g["grad_J"], g["sigma"])
    return rows


def kl_slopes(old=None, n_random: int = 3, alphas=KL_ALPHAS) -> dict:
    r"""Log-log slope of the exact mean KL :math:`\bar D_{\mathrm{KL}}(\theta_{\text{old}} + \alpha u)`
    in :math:`\alpha`, per direction :math:`u` (:func:`rlviz.tabular.surrogate.policy_directions`).

    :math:`\bar D_{\mathrm{KL}} = \tfrac12\alpha^2 u^\top F u + O(\alpha^3)` (chapter 11), so the
    slope tends to 2 as the steps shrink. ``{direction: slope}``; KL by
    :func:`rlviz.tabular.surrogate.mean_kl_torch`.
    """
    old = book_old() if old is None else old
    alphas = np.asarray(alphas, float)
    out = {}
    directions = policy_directions(old, n_random)
    with torch.no_grad(), torch_threads(1):
        for name, u in directions.items():
            kl = [
                float(mean_kl_torch(old, torch.tensor(old.theta + a * u, dtype=DTYPE)))
                for a in alphas
            ]
            out[name] = loglog_slope(alphas, np.array(kl))[0]
    return out
