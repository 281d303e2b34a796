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

* the dual clip (Ye et al. 2020; verl's ``clip_ratio_c``): for :math:`A < 0` the term is
  bounded below by :math:`cA`, so a bad token whose ratio ran above :math:`c` loses its
  gradient too (:func:`dual_clipped_surrogate`);
* Clip-Cov (Cui et al. 2025): the tokens whose log-probability and advantage covary most lose
  their gradient (:func:`covariance_scores`, :func:`clip_cov_mask`).

Shapes as in :mod:`rlviz.fn.grpo_loss`: token tensors ``(B, G, L)`` with a mask ``mask_t``,
per-answer tensors ``(B, G)``. The token ratio and the sequence ratio (their product) are
:func:`rlviz.fn.grpo_loss.token_ratios` and :func:`rlviz.fn.grpo_loss.sequence_ratios`.

:data:`POLICY_TERMS` registers each per-token policy term (the small term, not a loss with a
config): ``fn(logp_t, logp_old_t, adv_t, mask_t, eps_low, eps_high, clip_c)`` -> the
``(B, G, L)`` terms to aggregate (:mod:`rlviz.fn.grpo_aggregation`); ``params`` says whether a
term reads ``clip_c``.
"""

from __future__ import annotations

import torch

from rlviz import _validate as validate
from rlviz.fn.grpo_loss import sequence_log_prob, sequence_ratios, token_ratios
from rlviz.fn.registry import NotInLibrary, Registry

__all__ = [
    "POLICY_TERMS",
    "asymmetric_clipped_surrogate",
    "dual_clipped_surrogate",
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


def dual_clipped_surrogate(
    ratio: torch.Tensor, adv: torch.Tensor, eps_low, eps_high, clip_c
) -> torch.Tensor:
    r"""The clipped surrogate with the dual clip (Ye et al. 2020, "Mastering complex control in
    MOBA games"; verl's ``compute_policy_loss_vanilla`` with ``clip_ratio_c``):

    .. math:: \ell = \begin{cases} \max\bigl(\min(\rho A,\ \operatorname{clip}(\rho,
              1-\epsilon_\text{low}, 1+\epsilon_\text{high})\,A),\ cA\bigr) & A < 0 \\
              \min(\rho A,\ \operatorname{clip}(\rho, 1-\epsilon_\text{low},
              1+\epsilon_\text{high})\,A) & A \ge 0, \end{cases}

    ``clip_c`` :math:`c > 1`. For :math:`A < 0` and :math:`\rho > c` the term is the constant
    :math:`cA`: a bad token whose ratio ran above :math:`c` loses its gradient, which the plain
    clip keeps (its min picks the unclipped :math:`\rho A`). To be maximised; shapes as
    :func:`asymmetric_clipped_surrogate`."""
    surr = asymmetric_clipped_surrogate(ratio, adv, eps_low, eps_high)
    c = validate.positive("clip_c", clip_c)
    if not c > 1:
        raise ValueError(f"clip_c must be > 1 (the dual clip caps ratios above 1), got {clip_c!r}")
    return torch.where(adv < 0, torch.maximum(c * adv, surr), surr)


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


# ---------------------------------------------------------------- the registry of policy terms
POLICY_TERMS = Registry("term")


def _broadcast(rho: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return rho[..., None].expand_as(like)


@POLICY_TERMS.register(
    "token",
    label="token ratio, clipped",
    paper="PPO (Schulman et al. 2017); DeepSeekMath eq. 3; DAPO's clip-higher",
    trl='importance_sampling_level="token" (loss_type grpo, bnpo, dr_grpo, dapo)',
    verl='policy_loss.loss_mode="vanilla" (clip_ratio_c above every ratio)',
)
def token_term(logp_t, logp_old_t, adv_t, mask_t, eps_low, eps_high, clip_c=None):
    r""":math:`\min(\rho_t A, \operatorname{clip}(\rho_t, 1-\epsilon_\text{low},
    1+\epsilon_\text{high})A)` with the token ratio :math:`\rho_t`."""
    rho_t = token_ratios(logp_t, logp_old_t, mask_t)
    return asymmetric_clipped_surrogate(rho_t, adv_t, eps_low, eps_high)


@POLICY_TERMS.register(
    "sequence",
    label="sequence ratio, clipped (notes)",
    paper="the notes, section 14",
    trl=NotInLibrary(
        "TRL 1.16's importance_sampling_level=\"sequence\" is GSPO's geometric mean, not the product"
    ),
    verl=NotInLibrary("verl 0.9.1's sequence-level loss (gspo) uses the geometric mean"),
)
def sequence_term(logp_t, logp_old_t, adv_t, mask_t, eps_low, eps_high, clip_c=None):
    r"""The answer's ratio :math:`\rho_i = \prod_t \rho_{i,t}`, clipped, on each of its tokens
    (``seq-mean-token-mean`` then gives the notes' per-answer objective)."""
    rho_t = _broadcast(sequence_ratios(logp_t, logp_old_t, mask_t), logp_t)
    return asymmetric_clipped_surrogate(rho_t, adv_t, eps_low, eps_high)


@POLICY_TERMS.register(
    "gspo",
    label="GSPO (ratio^(1/|y|))",
    paper="GSPO (Zheng et al. 2025)",
    trl='importance_sampling_level="sequence"',
    verl='policy_loss.loss_mode="gspo"',
)
def gspo_term(logp_t, logp_old_t, adv_t, mask_t, eps_low, eps_high, clip_c=None):
    r"""GSPO's :math:`s_i` (:func:`gspo_ratios`), clipped, on each of the answer's tokens."""
    rho_t = _broadcast(gspo_ratios(logp_t, logp_old_t, mask_t), logp_t)
    return asymmetric_clipped_surrogate(rho_t, adv_t, eps_low, eps_high)


@POLICY_TERMS.register(
    "cispo",
    label="CISPO (clipped weight, no stop)",
    paper="MiniMax-M1 (MiniMax 2025)",
    trl='loss_type="cispo" (clips at epsilon_high, no lower clip)',
    verl='policy_loss.loss_mode="cispo"',
)
def cispo_term(logp_t, logp_old_t, adv_t, mask_t, eps_low, eps_high, clip_c=None):
    """:func:`cispo_surrogate`."""
    return cispo_surrogate(logp_t, logp_old_t, adv_t, eps_low, eps_high)


@POLICY_TERMS.register(
    "dual-clip",
    label="token ratio, dual clip",
    paper="Ye et al. 2020 (dual-clip PPO); verl's default policy loss",
    trl="delta=c (TRL 1.16 clamps the unclipped ratio at delta for every sign of A: with "
    "delta > 1 + epsilon_high that is the dual clip)",
    verl='policy_loss.loss_mode="vanilla" with clip_ratio_c (default 3)',
    params=("clip_c",),
)
def dual_clip_term(logp_t, logp_old_t, adv_t, mask_t, eps_low, eps_high, clip_c=None):
    """:func:`dual_clipped_surrogate` of the token ratio."""
    rho_t = token_ratios(logp_t, logp_old_t, mask_t)
    return dual_clipped_surrogate(rho_t, adv_t, eps_low, eps_high, clip_c)
