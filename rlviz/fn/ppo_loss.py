r"""The terms of the PPO loss as pure torch functions (chapters 12-13; Schulman et al. 2017).

Each function takes per-sample tensors of one shape (any shape, e.g. ``(B,)`` or ``(K, B)``
for ``K`` settings trained at once) and returns per-sample terms of that shape, so the caller
chooses how to average (over the batch, per setting). Coefficients such as :math:`\epsilon`
may be Python floats or tensors that broadcast against the samples (e.g. ``(K, 1)``: one
:math:`\epsilon` per setting).

The checks at the door are about shapes and parameter ranges (``ValueError`` naming the
argument); they do not scan the tensors for NaN (that costs a synchronisation per call inside a
training loop): the trainers check their losses once per update instead.
"""

from __future__ import annotations

import torch

from rlviz import _validate as validate

__all__ = [
    "clipped_surrogate",
    "policy_gradient_surrogate",
    "value_loss",
    "entropy",
    "normalize_advantages",
    "categorical_kl",
    "k3",
    "approx_kl",
    "clip_fraction",
]


def _positive(name: str, value, shape: torch.Size):
    """A coefficient > 0: a number, or a tensor that broadcasts against ``shape``."""
    if isinstance(value, torch.Tensor):
        vs = tuple(value.shape)
        if len(vs) > len(shape) or any(
            a not in (1, b) for a, b in zip(vs[::-1], tuple(shape)[::-1])
        ):
            raise ValueError(
                f"{name} of shape {vs} does not broadcast against the samples' shape {tuple(shape)}"
            )
        if value.numel() and not bool((value > 0).all()):
            raise ValueError(f"{name} must be > 0, got min {float(value.min())}")
        return value
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}") from None
    if not v > 0 or v == float("inf"):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def policy_gradient_surrogate(ratio: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    r"""The importance-sampled surrogate per sample, :math:`r_t(\theta)\hat A_t` (chapter 10).

    Its mean is :math:`L^{PG}` (the notes' :math:`L^{PG}`, Schulman et al. 2017's
    :math:`L^{CPI}`). Shapes: ``ratio`` and ``adv`` alike; result the same shape.
    """
    validate.same_shape_tensors(ratio=ratio, adv=adv)
    return ratio * adv


def clipped_surrogate(ratio: torch.Tensor, adv: torch.Tensor, epsilon) -> torch.Tensor:
    r"""PPO's clipped surrogate per sample (Schulman et al. 2017, eq. 7; notes section 12):

    .. math::
        \ell^{CLIP}_t = \min\bigl(r_t \hat A_t,\; \operatorname{clip}(r_t, 1-\epsilon, 1+\epsilon)\,\hat A_t\bigr),
        \qquad r_t = \frac{\pi_\theta(a_t \mid s_t)}{\pi_{\theta_\text{old}}(a_t \mid s_t)}.

    The mean over samples is :math:`L^{CLIP}`, to be *maximised*. Shapes: ``ratio`` and
    ``adv`` alike (e.g. ``(B,)`` or ``(K, B)``); ``epsilon`` > 0 a number or a tensor that
    broadcasts (``(K, 1)``: one per setting). Result: the shape of ``ratio``.
    """
    shape = validate.same_shape_tensors(ratio=ratio, adv=adv)
    eps = _positive("epsilon", epsilon, shape)
    return torch.minimum(ratio * adv, torch.clamp(ratio, 1 - eps, 1 + eps) * adv)


def value_loss(
    v: torch.Tensor, v_target: torch.Tensor, v_old: torch.Tensor | None = None, clip=None
) -> torch.Tensor:
    r"""The squared error of the critic per sample, optionally clipped around the old values.

    .. math::
        \ell^V_t = (V_\phi(s_t) - V^{\text{target}}_t)^2, \qquad
        \ell^{V,\text{clip}}_t = \max\Bigl((V_\phi(s_t) - V^{\text{target}}_t)^2,\;
        \bigl(V_{\text{old}}(s_t) + \operatorname{clip}(V_\phi(s_t) - V_{\text{old}}(s_t), -c, c)
        - V^{\text{target}}_t\bigr)^2\Bigr)

    (the second with ``clip`` = :math:`c` > 0 and ``v_old`` given; the "value clipping" of
    OpenAI baselines' PPO2, Huang et al. 2022, detail 7). Minimised; no factor 1/2 (the book's
    :math:`c_1` multiplies this). Shapes: all alike; ``clip`` a number or broadcasting tensor.
    """
    if clip is None:
        validate.same_shape_tensors(v=v, v_target=v_target)
        return torch.square(v - v_target)
    shape = (
        validate.same_shape_tensors(v=v, v_target=v_target, v_old=v_old)
        if v_old is not None
        else None
    )
    if shape is None:
        raise ValueError("v_old must be given when clip is set (the clip is around the old values)")
    c = _positive("clip", clip, shape)
    v_clipped = v_old + torch.clamp(v - v_old, -c, c)
    return torch.maximum(torch.square(v - v_target), torch.square(v_clipped - v_target))


def entropy(logits: torch.Tensor) -> torch.Tensor:
    r"""The entropy of categorical policies given by their logits, per state.

    .. math:: H(\pi(\cdot\mid s)) = -\sum_a \pi(a\mid s) \log \pi(a\mid s),
        \qquad \pi = \operatorname{softmax}(\text{logits}).

    Shape: ``logits`` ``(..., A)`` with A >= 2; result ``(...)``.
    """
    if (
        not isinstance(logits, torch.Tensor)
        or not logits.is_floating_point()
        or logits.ndim < 1
        or logits.shape[-1] < 2
    ):
        raise ValueError(
            f"logits must be a float tensor (..., A) with A >= 2 actions, got "
            f"{getattr(logits, 'shape', type(logits).__name__)}"
        )
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def normalize_advantages(adv: torch.Tensor, *, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    r"""Advantages standardised over a batch (a PPO implementation detail; Huang et al. 2022, detail 7):

    .. math:: \tilde A_i = \frac{\hat A_i - \operatorname{mean}(\hat A)}{\operatorname{std}(\hat A) + \varepsilon},

    mean and standard deviation (Bessel-corrected, ``torch.std``) over ``dim``: the samples of
    one minibatch of one setting, e.g. ``dim=1`` for ``(K, B)``. Whoever calls it decides the
    batch: the PPO trainer normalises each *minibatch*, so with several minibatches per epoch the
    advantages of the whole rollout are not standardised as one set. Shape kept.
    """
    validate.same_shape_tensors(adv=adv)
    if adv.ndim == 0 or adv.shape[dim] < 2:
        raise ValueError(
            f"adv needs at least 2 samples along dim {dim} to be normalised, "
            f"got shape {tuple(adv.shape)}"
        )
    return (adv - adv.mean(dim, keepdim=True)) / (adv.std(dim, keepdim=True) + eps)


def categorical_kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    r"""The exact KL divergence between categorical distributions given by log-probabilities:

    .. math:: \mathrm{KL}(p \,\|\, q) = \sum_a p(a) \bigl(\log p(a) - \log q(a)\bigr).

    Shapes: ``logp`` and ``logq`` ``(..., A)`` alike (normalised log-probabilities, e.g. from
    ``log_softmax``); result ``(...)``. Differentiable in both.
    """
    validate.same_shape_tensors(logp=logp, logq=logq)
    return (logp.exp() * (logp - logq)).sum(-1)


def k3(log_rho: torch.Tensor) -> torch.Tensor:
    r"""Schulman's (2020) estimator :math:`k_3 = (\rho - 1) - \log\rho` from a log-ratio.

    With :math:`\rho = q(x)/p(x)` and :math:`x \sim p` it estimates :math:`\mathrm{KL}(p\,\|\,q)`
    without bias (:math:`\mathbb E_p[\rho] = 1`) and is never negative
    (:math:`\log\rho \le \rho - 1`). Computed as ``expm1(log_rho) - log_rho`` (accurate
    near :math:`\rho = 1`). Any shape, elementwise. The one copy behind PPO's logged
    approximate KL (:func:`approx_kl`) and GRPO's KL penalty (:func:`rlviz.fn.grpo_loss.kl_k3`).
    """
    validate.same_shape_tensors(log_rho=log_rho)
    return torch.expm1(log_rho) - log_rho


def approx_kl(logratio: torch.Tensor) -> torch.Tensor:
    r"""Per-sample estimate of :math:`KL(\pi_{\text{old}} \,\|\, \pi_\theta)` from samples of the old policy.

    .. math:: k_3 = (r - 1) - \log r, \qquad r = \frac{\pi_\theta(a\mid s)}{\pi_{\text{old}}(a\mid s)},

    i.e. :func:`k3` of ``logratio`` :math:`= \log r` (the estimator CleanRL and
    Stable-Baselines3 log). Shape kept.
    """
    return k3(logratio)


def clip_fraction(ratio: torch.Tensor, epsilon) -> torch.Tensor:
    r"""The indicator :math:`|r_t - 1| > \epsilon` as floats (its mean is the logged clip fraction)."""
    shape = validate.same_shape_tensors(ratio=ratio)
    eps = _positive("epsilon", epsilon, shape)
    return ((ratio - 1).abs() > eps).to(ratio.dtype)
