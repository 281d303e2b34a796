r"""Off-policy corrections for a sampler that is not the learner (chapter 17).

The answers of a batch come from a *sampler* :math:`\mu` (an inference engine with its own
numerics, or the weights of a few updates ago in asynchronous training) while the learner
differentiates :math:`\pi_\theta`. The policy-gradient estimator a trainer computes on one
answer :math:`y \sim \mu(\cdot \mid x)` with advantage :math:`A` is

.. math:: \hat g(y) = A \sum_t w_t\, \nabla_\theta \log\pi_\theta(y_t \mid x, y_{<t}),

where the weight :math:`w_t` (held fixed, no gradient through it) is one of

* ``"none"``: :math:`w_t = 1` (the naive loss: the gradient as if :math:`y \sim \pi`);
* ``"is"``: the importance weight :math:`\rho`, at token level
  :math:`\rho_t = \pi_\theta(y_t\mid x,y_{<t}) / \mu(y_t\mid x,y_{<t})` or at sequence level
  :math:`\rho = \pi_\theta(y\mid x)/\mu(y\mid x) = \prod_t \rho_t` (the same for every token);
* ``"tis"``: truncated importance sampling, :math:`\min(\rho, C)` (Ionides 2008; Yao et al.
  2025 for LLM training);
* ``"mis"``: masked importance sampling, :math:`\rho\,\mathbb 1[\rho \le C]` (a sample or
  token whose weight exceeds the cap is dropped; IcePop / "sequence_mask" in the libraries).

Shapes are those of :mod:`rlviz.fn.grpo_loss`: log-probabilities and the mask ``(B, G, L)``,
advantages ``(B, G)``. At :math:`\theta = \theta_\text{old}` the clipped surrogate of PPO/GRPO
has the gradient :math:`A\,\nabla\log\pi`, so multiplying it by :math:`w_t` (what TRL and verl
do) gives the same :math:`\hat g`; :func:`corrected_pg_objective` is the plain form whose
gradient is :math:`\hat g`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from rlviz import _validate as validate
from rlviz.fn.grpo_loss import sequence_log_prob, sequence_ratios, token_ratios
from rlviz.fn.registry import NotInLibrary, Registry

__all__ = [
    "IS_LEVELS",
    "CORRECTIONS",
    "OffPolicy",
    "importance_weights",
    "truncated_weights",
    "masked_weights",
    "correction_weights",
    "capped_weights",
    "corrected_pg_objective",
]

IS_LEVELS = ("token", "sequence")
Level = Literal["token", "sequence"]


def _cap(cap) -> float:
    if isinstance(cap, bool):
        raise ValueError(f"cap must be a number > 0 (math.inf allowed), got {cap!r}")
    try:
        c = float(cap)
    except (TypeError, ValueError):
        raise ValueError(f"cap must be a number > 0 (math.inf allowed), got {cap!r}") from None
    if not c > 0:
        raise ValueError(f"cap must be > 0 (math.inf allowed), got {cap!r}")
    return c


def importance_weights(
    logp_t: torch.Tensor, logp_mu_t: torch.Tensor, mask_t, level: str = "token"
) -> torch.Tensor:
    r"""Importance weights of the learner against the sampler, ``(B, G, L)``.

    * ``level="token"``: :math:`\rho_{i,t} = \exp(\log\pi_{i,t} - \log\mu_{i,t})`;
    * ``level="sequence"``: :math:`\rho_i = \exp\bigl(\sum_t (\log\pi_{i,t} - \log\mu_{i,t})\bigr)`
      broadcast over the answer's tokens (verl's ``rollout_is="sequence"``, TRL's
      ``sequence_*`` modes: the product of the token ratios, not GSPO's geometric mean).

    1 on padding. ``logp_t`` is the learner's (no gradient is taken through the weight by
    :func:`corrected_pg_objective`), ``logp_mu_t`` the sampler's. The ratios are
    :func:`rlviz.fn.grpo_loss.token_ratios` and :func:`rlviz.fn.grpo_loss.sequence_ratios`
    with the sampler in the place of the old policy.
    """
    validate.choice("level", level, IS_LEVELS)
    if level == "token":
        return token_ratios(logp_t, logp_mu_t, mask_t)
    rho = sequence_ratios(logp_t, logp_mu_t, mask_t)  # (B, G), checks the shapes
    mask = torch.as_tensor(mask_t).bool()
    return torch.where(mask, rho[..., None].expand_as(logp_t), torch.ones_like(logp_t))


def truncated_weights(rho: torch.Tensor, cap) -> torch.Tensor:
    r"""Truncated importance sampling: :math:`\min(\rho, C)`, elementwise; ``cap`` :math:`C > 0`
    (``math.inf``: no truncation)."""
    return torch.clamp(rho, max=_cap(cap))


def masked_weights(rho: torch.Tensor, cap) -> torch.Tensor:
    r"""Masked importance sampling: :math:`\rho\,\mathbb 1[\rho \le C]`, elementwise: a weight
    above the cap drops its token (or, with sequence weights, its whole answer)."""
    return torch.where(rho <= _cap(cap), rho, torch.zeros_like(rho))


CORRECTIONS = Registry("correction")
"""The off-policy corrections: name -> entry whose ``fn(rho, cap)`` maps importance weights
to the weight of each token (``"none"``: no weight at all, ``fn`` is None)."""
CORRECTIONS.register(
    "none",
    label="naive (no weight)",
    paper="(the gradient as if the sampler were the learner)",
    trl="vllm_importance_sampling_correction=False",
    verl="rollout_is=None",
)(None)
CORRECTIONS.register(
    "is",
    label="IS",
    paper="importance sampling",
    trl=NotInLibrary("TRL 1.16 always caps the vLLM importance weight (truncate or mask)"),
    verl="rollout_is with rollout_is_threshold=inf",
)(lambda rho, cap: rho)
CORRECTIONS.register(
    "tis",
    label="TIS",
    paper="Ionides 2008; Yao et al. 2025",
    trl='vllm_importance_sampling_mode="token_truncate" / "sequence_truncate"',
    verl='rollout_is="token" / "sequence" (truncate at rollout_is_threshold)',
)(truncated_weights)
CORRECTIONS.register(
    "mis",
    label="MIS",
    paper="IcePop; Yao et al. 2025",
    trl='vllm_importance_sampling_mode="token_mask" / "sequence_mask"',
    verl='rollout_is="token" / "sequence" with threshold "lower_upper" (IcePop masking)',
)(masked_weights)


@dataclass(frozen=True, kw_only=True)
class OffPolicy:
    """Chapter 17's off-policy weight as one value: ``correction`` (a name of
    :data:`CORRECTIONS`), its ``level`` (``"token"`` or ``"sequence"``) and its ``cap`` C > 0
    (``math.inf``: none). Checked when made: a cap or a level set for ``"none"``, or a finite
    cap for ``"is"``, would do nothing and is refused."""

    correction: Literal["none", "is", "tis", "mis"] = "none"
    level: Level = "token"
    cap: float = math.inf

    def __post_init__(self):
        CORRECTIONS.check(self.correction)
        validate.choice("level", self.level, IS_LEVELS)
        cap = _cap(self.cap)
        if self.correction == "none" and (self.level != "token" or cap != math.inf):
            raise ValueError(
                "correction 'none' takes no level and no cap (they would do nothing), got "
                f"level={self.level!r}, cap={self.cap!r}"
            )
        if self.correction == "is" and cap != math.inf:
            raise ValueError(
                f"correction 'is' is not capped (use 'tis' or 'mis'), got cap={self.cap!r}"
            )
        if self.correction in ("tis", "mis") and cap == math.inf:
            raise ValueError(
                f"correction {self.correction!r} needs a finite cap (inf: use 'is'), got "
                f"cap={self.cap!r}"
            )

    @property
    def active(self) -> bool:
        return self.correction != "none"

    @property
    def label(self) -> str:
        if not self.active:
            return CORRECTIONS.label("none")
        cap = "" if self.cap == math.inf else f", C = {self.cap:g}"
        return f"{CORRECTIONS.label(self.correction)}, {self.level}{cap}"


def correction_weights(
    logp_t: torch.Tensor,
    logp_mu_t: torch.Tensor,
    mask_t,
    correction: str = "tis",
    level: str = "token",
    cap: float = math.inf,
) -> torch.Tensor:
    r"""The weight :math:`w_t` of each token, ``(B, G, L)``: 1 (``"none"``), the importance
    weight :func:`importance_weights` at ``level`` (``"is"``), truncated at ``cap``
    (``"tis"``, :func:`truncated_weights`) or masked above it (``"mis"``,
    :func:`masked_weights`). 1 on padding."""
    CORRECTIONS.check(correction)
    _cap(cap)
    if correction == "none":
        validate.choice("level", level, IS_LEVELS)
        return torch.ones_like(logp_t)
    rho = importance_weights(logp_t, logp_mu_t, mask_t, level)
    return capped_weights(rho, mask_t, correction, cap)


def capped_weights(rho: torch.Tensor, mask_t, correction: str, cap: float) -> torch.Tensor:
    r"""The weight of :func:`correction_weights` from importance weights ``rho`` already
    computed (:func:`importance_weights`): ``rho`` itself (``"is"``), truncated at ``cap``
    (``"tis"``) or masked above it (``"mis"``); 1 on padding. ``(B, G, L)``."""
    fn = CORRECTIONS[correction].fn
    if fn is None:
        raise ValueError("correction must be one of 'is', 'tis', 'mis' here, got 'none'")
    rho = fn(rho, cap)
    return torch.where(torch.as_tensor(mask_t).bool(), rho, torch.ones_like(rho))


def corrected_pg_objective(
    logp_t: torch.Tensor, weight_t: torch.Tensor, adv: torch.Tensor, mask_t
) -> torch.Tensor:
    r"""Per-answer surrogate :math:`A_i \sum_t \operatorname{sg}(w_{i,t}) \log\pi_\theta(y_{i,t}
    \mid x, y_{i,<t})`, ``(B, G)``, whose gradient is the corrected estimator :math:`\hat g` of
    the module docstring (``sg``: stop-gradient, the weight is a constant). The sum over tokens
    keeps the estimator of :math:`\nabla J` unscaled; how to average answers and tokens is
    chapter 15's question.

    ``weight_t``: ``(B, G, L)`` from :func:`correction_weights`; ``adv``: ``(B, G)``.
    """
    if adv.shape != logp_t.shape[:2]:
        raise ValueError(
            f"adv must have shape (B, G) = {tuple(logp_t.shape[:2])}, got {tuple(adv.shape)}"
        )
    if weight_t.shape != logp_t.shape:
        raise ValueError(
            f"weight_t must have the shape of logp_t {tuple(logp_t.shape)}, got "
            f"{tuple(weight_t.shape)}"
        )
    per_token = weight_t.detach() * logp_t
    return adv * sequence_log_prob(per_token, mask_t)
