r"""The PPO clip under the microscope (chapter 12): the objective's shape, its gradient, and
what one real CartPole update does to the ratios and the KL.

* :func:`clip_piecewise` writes :math:`\ell^{CLIP}` case by case (the PPO paper's Figure 1);
* :func:`interpolation_curves` evaluates the surrogates and the KL along the segment from
  :math:`\theta_{\text{old}}` to the parameters one PPO update produced (the paper's Figure 2);
* :func:`ratio_spread` summarises how far the updated policies' ratios went outside
  :math:`[1-\epsilon, 1+\epsilon]` during a training run (the errata of notes section 12).
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz.fn.ppo_loss import clipped_surrogate, policy_gradient_surrogate
from rlviz.agents.ppo import ActorCritic, PPOResult

__all__ = ["clip_piecewise", "interpolation_curves", "ratio_spread"]


def clip_piecewise(ratio: np.ndarray, adv: np.ndarray, epsilon: float) -> np.ndarray:
    r"""The clipped objective by cases (Schulman et al. 2017, Figure 1):

    .. math::
        \ell^{CLIP} = \begin{cases} \min(r, 1+\epsilon)\,\hat A & \hat A \ge 0 \\
                                    \max(r, 1-\epsilon)\,\hat A & \hat A < 0. \end{cases}

    Equal to :func:`rlviz.fn.ppo_loss.clipped_surrogate` (identity ``ch12.clip_piecewise``):
    for :math:`\hat A \ge 0` the min of the two products is :math:`\hat A` times the min of
    :math:`r` and :math:`\operatorname{clip}(r)`, which is :math:`\min(r, 1+\epsilon)`; for
    :math:`\hat A < 0` multiplying by :math:`\hat A` turns min into max. Shapes alike.
    """
    ratio, adv = np.asarray(ratio, float), np.asarray(adv, float)
    if ratio.shape != adv.shape:
        raise ValueError(f"adv must have the shape of ratio {ratio.shape}, got {adv.shape}")
    if not epsilon > 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    return np.where(adv >= 0, np.minimum(ratio, 1 + epsilon), np.maximum(ratio, 1 - epsilon)) * adv


def _forward(result: PPOResult, flat: torch.Tensor, k: int):
    agent = ActorCritic(flat, result.agent.hidden)
    with torch.no_grad():
        logits, _ = agent(result.last_batch["obs"])
    return torch.log_softmax(logits[k].double(), -1)


def interpolation_curves(result: PPOResult, alphas, *, k: int = 0) -> dict:
    r"""Surrogates and KL along :math:`\theta(\alpha) = \theta_{\text{old}} + \alpha(\theta_{\text{new}} - \theta_{\text{old}})`.

    :math:`\theta_{\text{old}}` and the batch are those of the last update of ``result``
    (setting ``k``), :math:`\theta_{\text{new}}` its parameters after that update; the
    advantages are normalised as the update normalised them. For each :math:`\alpha`:

    .. math::
        L^{PG} = \hat E[r_t \hat A_t], \quad L^{CLIP} = \hat E[\ell^{CLIP}_t], \quad
        \overline{KL} = \hat E_{s_t}\Bigl[\sum_a \pi_{\text{old}}(a|s_t)\log\frac{\pi_{\text{old}}(a|s_t)}{\pi_{\theta(\alpha)}(a|s_t)}\Bigr],

    the exact mean KL over the batch's states (two actions), and ``outside``, the fraction of
    samples with :math:`|r_t - 1| > \epsilon`. Returns numpy arrays keyed ``alpha``, ``L_pg``,
    ``L_clip``, ``kl``, ``outside``, and ``epsilon``.
    """
    lb = result.last_batch
    if not lb:
        raise ValueError("result has no last_batch: train at least one update")
    alphas = np.asarray(alphas, float)
    eps = float(lb["epsilon"][k, 0])
    cfg = result.configs[k]
    adv = lb["adv"][k].double()
    if cfg.norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    act = lb["actions"][k]
    old, new = lb["flat_before"], result.agent.flat
    logp_old_all = _forward(result, old, k)
    logp_old = logp_old_all.gather(-1, act[:, None])[:, 0]
    out = {key: [] for key in ("L_pg", "L_clip", "kl", "outside")}
    for a in alphas:
        logp_all = _forward(result, old + float(a) * (new - old), k)
        ratio = torch.exp(logp_all.gather(-1, act[:, None])[:, 0] - logp_old)
        out["L_pg"].append(float(policy_gradient_surrogate(ratio, adv).mean()))
        out["L_clip"].append(float(clipped_surrogate(ratio, adv, eps).mean()))
        out["kl"].append(float((logp_old_all.exp() * (logp_old_all - logp_all)).sum(-1).mean()))
        out["outside"].append(float(((ratio - 1).abs() > eps).double().mean()))
    return {"alpha": alphas, "epsilon": eps, **{key: np.array(v) for key, v in out.items()}}


def ratio_spread(result: PPOResult, *, k: int = 0) -> dict:
    """Per-update ratio spread of the updated policies of a run (setting ``k``), and summaries.

    From the logs of :func:`rlviz.agents.ppo.train` (measured on the whole batch after each update):
    ``outside`` (fraction of samples with ratio outside [1 - eps, 1 + eps]), ``max_ratio``
    and ``kl`` (k3 estimate), with their means and maxima over updates.
    """
    outside = result.log("clip_fraction")[:, k]
    max_ratio = result.log("max_ratio")[:, k]
    kl = result.log("approx_kl")[:, k]
    return {"steps": result.log("steps"), "outside": outside, "max_ratio": max_ratio, "kl": kl,
            "mean_outside": float(outside.mean()), "max_outside": float(outside.max()),
            "largest_ratio": float(max_ratio.max()), "mean_kl": float(kl.mean()),
            "max_kl": float(kl.max())}
