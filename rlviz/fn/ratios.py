r"""Ratios and clips after GRPO, as pure torch functions (chapter 16).

What the methods that followed GRPO change in its per-token term
:math:`\min(\rho A, \operatorname{clip}(\rho, 1-\epsilon, 1+\epsilon) A)`:

* DAPO's *clip-higher* (Yu et al. 2025): two clip widths, :math:`\epsilon_\text{low}` below and
  :math:`\epsilon_\text{high}` above (:func:`asymmetric_clipped_surrogate`,
  :func:`clip_stops_gradient`);
* GSPO (Zheng et al. 2025): one ratio per answer, the geometric mean of its token ratios
  (:func:`gspo_ratios`);
* CISPO (MiniMax 2025): the clipped ratio used as a constant weight of
  :math:`A \log\pi_\theta`, so no token loses its gradient (:func:`cispo_surrogate`).

* Clip-Cov (Cui et al. 2025): the tokens whose log-probability and advantage covary most lose
  their gradient (:func:`covariance_scores`, :func:`clip_cov_mask`).

Shapes as in :mod:`rlviz.fn.grpo_loss`: token tensors ``(B, G, L)`` with a mask ``mask_t``,
per-answer tensors ``(B, G)``. The token ratio and the sequence ratio (their product) are
:func:`rlviz.fn.grpo_loss.token_ratios` and :func:`rlviz.fn.grpo_loss.sequence_ratios`.
"""

from __future__ import annotations

import torch

from rlviz import _validate as validate
from rlviz.fn.grpo_loss import sequence_log_prob

__all__ = [
    "asymmetric_clipped_surrogate",
    "clip_stops_gradient",
    "gspo_ratios",
    "cispo_surrogate",
    "covariance_scores",
    "clip_cov_mask",
]


def _clip_widths(eps_low, eps_high) -> tuple[float, float]:
    for name, v in (("eps_low", eps_low), ("eps_high", eps_high)):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {v!r}") from None
        if not f > 0 or f == float("inf"):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    if not float(eps_low) < 1:
        raise ValueError(f"eps_low must be < 1 (the lower clip 1 - eps_low > 0), got {eps_low!r}")
    return float(eps_low), float(eps_high)


def asymmetric_clipped_surrogate(
    ratio: torch.Tensor, adv: torch.Tensor, eps_low, eps_high
) -> torch.Tensor:
    r"""The clipped surrogate with two widths (DAPO's clip-higher, Yu et al. 2025):

    .. math:: \ell = \min\bigl(\rho A,\ \operatorname{clip}(\rho, 1-\epsilon_\text{low},
              1+\epsilon_\text{high})\, A\bigr).

    ``eps_low = eps_high = eps`` is PPO's :func:`rlviz.fn.ppo_loss.clipped_surrogate`. To be
    maximised. Shapes: ``ratio`` and ``adv`` alike, any shape; result the same shape.
    """
    validate.same_shape_tensors(ratio=ratio, adv=adv)
    lo, hi = _clip_widths(eps_low, eps_high)
    return torch.minimum(ratio * adv, torch.clamp(ratio, 1 - lo, 1 + hi) * adv)


def clip_stops_gradient(ratio: torch.Tensor, adv: torch.Tensor, eps_low, eps_high) -> torch.Tensor:
    r"""Where :func:`asymmetric_clipped_surrogate` has zero gradient in :math:`\rho`, booleans:

    .. math:: \bigl(A > 0 \wedge \rho > 1+\epsilon_\text{high}\bigr) \ \vee\
              \bigl(A < 0 \wedge \rho < 1-\epsilon_\text{low}\bigr) \ \vee\ A = 0 .

    The upper side stops tokens the update already made *more* likely (good ones), the lower side
    tokens it made *less* likely (bad ones); a good token below :math:`1-\epsilon_\text{low}` or
    a bad one above :math:`1+\epsilon_\text{high}` keeps its gradient (the min picks the
    unclipped term). At the clip points themselves torch's ``clamp`` passes the gradient.
    """
    validate.same_shape_tensors(ratio=ratio, adv=adv)
    lo, hi = _clip_widths(eps_low, eps_high)
    return ((adv > 0) & (ratio > 1 + hi)) | ((adv < 0) & (ratio < 1 - lo)) | (adv == 0)


def gspo_ratios(logp_t: torch.Tensor, logp_old_t: torch.Tensor, mask_t) -> torch.Tensor:
    r"""GSPO's length-normalised sequence ratio (Zheng et al. 2025), ``(B, G)``:

    .. math:: s_i(\theta) = \Bigl(\frac{\pi_\theta(y_i\mid x)}{\pi_{\theta_\text{old}}(y_i\mid x)}
              \Bigr)^{1/|y_i|} = \exp\Bigl(\frac{1}{|y_i|}\sum_t \log\rho_{i,t}\Bigr),

    the geometric mean of the token ratios :math:`\rho_{i,t}` (the sequence ratio of
    :func:`rlviz.fn.grpo_loss.sequence_ratios` to the power :math:`1/|y_i|`)."""
    diff = sequence_log_prob(logp_t, mask_t) - sequence_log_prob(logp_old_t, mask_t)
    length = torch.as_tensor(mask_t).to(logp_t.dtype).sum(-1)
    return torch.exp(diff / length)


def cispo_surrogate(
    logp_t: torch.Tensor, logp_old_t: torch.Tensor, adv_t: torch.Tensor, eps_low, eps_high
) -> torch.Tensor:
    r"""CISPO's per-token term (MiniMax 2025, the M1 report), to be maximised:

    .. math:: \ell_t = \operatorname{sg}\bigl[\operatorname{clip}(\rho_t, 1-\epsilon_\text{low},
              1+\epsilon_\text{high})\bigr]\, A_t \log\pi_\theta(y_t \mid x, y_{<t}),
              \qquad \rho_t = \exp(\log\pi_\theta - \log\pi_{\theta_\text{old}}),

    :math:`\operatorname{sg}` the stopped gradient (``detach``): the clipped ratio is a weight,
    every token keeps the gradient :math:`\operatorname{clip}(\rho_t)\,A_t\nabla\log\pi_\theta`.
    At :math:`\theta = \theta_\text{old}` the weight is 1 and the gradient is REINFORCE's.
    Shapes: all three alike, any shape (mask the padding when aggregating)."""
    validate.same_shape_tensors(logp_t=logp_t, logp_old_t=logp_old_t, adv_t=adv_t)
    lo, hi = _clip_widths(eps_low, eps_high)
    w = torch.clamp(torch.exp(logp_t - logp_old_t), 1 - lo, 1 + hi).detach()
    return w * adv_t * logp_t


def covariance_scores(logp: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    r"""Cui et al. 2025's per-token covariance score over the ``N`` tokens of a batch:

    .. math:: c_i = \bigl(\log\pi(y_i) - \tfrac1N\textstyle\sum_j \log\pi(y_j)\bigr)
              \bigl(A_i - \tfrac1N\textstyle\sum_j A_j\bigr),

    the batch's estimate of each token's share in :math:`\operatorname{Cov}(\log\pi, A)`, the
    driver of the entropy change. Shapes: ``logp`` and ``adv`` ``(N,)`` alike."""
    validate.same_shape_tensors(logp=logp, adv=adv)
    if logp.ndim != 1:
        raise ValueError(f"logp must have shape (N,), got {tuple(logp.shape)}")
    return (logp - logp.mean()) * (adv - adv.mean())


def clip_cov_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    r"""True on the ``k`` tokens with the largest *positive* covariance score (ties broken by
    position): the tokens Clip-Cov detaches. Cui et al. draw them at random among the tokens
    whose score lies in a band :math:`[\omega_\text{low}, \omega_\text{high}]`; this is the
    deterministic variant the exact checks need. ``scores`` ``(N,)``; result ``(N,)`` bool."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be an integer >= 0, got {k!r}")
    order = torch.argsort(-scores, stable=True)
    mask = torch.zeros(scores.shape, dtype=torch.bool)
    mask[order[:k]] = True
    return mask & (scores > 0)
