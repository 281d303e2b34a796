r"""The GRPO objective as practice runs it (chapters 15-17), with explicit arguments.

One function, :func:`practice_objective`, assembles the registered pieces: the per-token policy
term (:data:`rlviz.fn.ratios.POLICY_TERMS`), the off-policy weight of chapter 17 (a constant,
:mod:`rlviz.fn.offpolicy`), the KL in the loss (:data:`rlviz.fn.grpo_loss.KL_ESTIMATORS`) and
the aggregation over the batch (:data:`rlviz.fn.grpo_aggregation.AGGREGATIONS`). It reads no
trainer config: the trainer (:func:`rlviz.agents.grpo.train_grpo`), the exact answer-tree code
and the conformance tests call it with the same arguments.
"""

from __future__ import annotations

import torch

from rlviz.fn.grpo_aggregation import AGGREGATIONS, aggregate
from rlviz.fn.grpo_loss import (
    ADVANTAGES,
    KL_ESTIMATORS,
    KL_PLACEMENTS,
    kl_estimate,
    kl_loss_penalty,
)
from rlviz.fn.offpolicy import CORRECTIONS
from rlviz.fn.ratios import POLICY_TERMS

__all__ = ["REGISTRIES", "practice_objective"]

# every axis along which GRPO practice varies: the GRPOConfig field -> its registry
REGISTRIES = {
    "term": POLICY_TERMS,
    "loss_agg": AGGREGATIONS,
    "advantage": ADVANTAGES,
    "kl": KL_ESTIMATORS,
    "kl_placement": KL_PLACEMENTS,
    "correction": CORRECTIONS,
}


def practice_objective(
    logp_t: torch.Tensor,
    logp_old_t: torch.Tensor,
    adv: torch.Tensor,
    mask_t,
    *,
    term: str = "token",
    agg: str = "token-mean",
    eps_low: float = 0.2,
    eps_high: float | None = None,
    clip_c: float | None = None,
    beta: float = 0.0,
    kl: str = "k3",
    logp_ref_t: torch.Tensor | None = None,
    weight_t: torch.Tensor | None = None,
    norm: float | None = None,
) -> torch.Tensor:
    r"""The objective of chapters 15-17 (to be *maximised*), one scalar for the batch:

    .. math:: \operatorname{agg}_{i,t}\bigl[w_{i,t}\,\ell_{i,t} - \beta\,\hat k_{i,t}\bigr],

    with :math:`\ell_{i,t}` the policy term ``term`` of :data:`rlviz.fn.ratios.POLICY_TERMS`
    (clip widths ``eps_low`` below and ``eps_high`` above, None: ``eps_low``; ``clip_c`` the
    dual clip's :math:`c`, read only by ``"dual-clip"``), :math:`w_{i,t}` the off-policy
    weight ``weight_t`` of chapter 17 (a constant, e.g.
    :func:`rlviz.fn.offpolicy.correction_weights`; None: 1), :math:`\hat k` the estimator ``kl``
    of :data:`rlviz.fn.grpo_loss.KL_ESTIMATORS` against ``logp_ref_t`` (read when
    ``beta > 0``), and ``agg`` a mode of :data:`rlviz.fn.grpo_aggregation.AGGREGATIONS` over
    every token of the batch (``norm``: Dr. GRPO's constant). Shapes ``(B, G, L)``, ``adv``
    ``(B, G)``. A setting the chosen pieces do not read (``clip_c`` without the dual clip,
    ``logp_ref_t`` with ``beta = 0``) is refused.
    """
    entry = POLICY_TERMS.get(term, "term")
    AGGREGATIONS.check(agg, "agg")
    KL_ESTIMATORS.check(kl, "kl")
    if not isinstance(adv, torch.Tensor) or adv.shape != logp_t.shape[:2]:
        raise ValueError(
            f"adv must be a tensor of shape (B, G) = {tuple(logp_t.shape[:2])}, got "
            f"{tuple(adv.shape) if isinstance(adv, torch.Tensor) else type(adv).__name__} "
            "(no silent broadcasting)"
        )
    if clip_c is not None and "clip_c" not in entry.params:
        raise ValueError(
            f"clip_c is read by term 'dual-clip' only, got clip_c={clip_c!r} with term={term!r}"
        )
    if "clip_c" in entry.params and clip_c is None:
        raise ValueError(f"term {term!r} needs clip_c (a number > 1), got None")
    if not beta >= 0:
        raise ValueError(f"beta must be >= 0, got {beta!r}")
    if beta > 0 and logp_ref_t is None:
        raise ValueError("logp_ref_t must be given when beta > 0")
    if beta == 0 and logp_ref_t is not None:
        raise ValueError("logp_ref_t is read only when beta > 0, got beta = 0 and a logp_ref_t")
    eps_high = eps_low if eps_high is None else eps_high
    adv_t = adv[..., None].expand_as(logp_t).to(logp_t.dtype)
    per_tok = entry.fn(logp_t, logp_old_t, adv_t, mask_t, eps_low, eps_high, clip_c)
    if weight_t is not None:
        if weight_t.shape != per_tok.shape:
            raise ValueError(
                f"weight_t must have the shape of logp_t {tuple(per_tok.shape)}, got "
                f"{tuple(weight_t.shape)}"
            )
        per_tok = weight_t.detach().to(per_tok.dtype) * per_tok
    if beta > 0:
        per_tok = kl_loss_penalty(per_tok, kl_estimate(kl, logp_t, logp_ref_t), beta)
    if norm is None:
        return aggregate(per_tok, mask_t, agg)
    return aggregate(per_tok, mask_t, agg, norm=norm)
