r"""Exact gradients of GRPO's loss terms on chapter 14's enumerable answer tree (chapter 15).

Built on :mod:`rlviz.tabular.answer_tree` (the tabular autoregressive policy, every answer
enumerated) and on :mod:`rlviz.fn.grpo_aggregation` (the loss aggregation modes). Everything is
float64 and exact: expectations are finite sums over all :math:`n^G` groups of :math:`G`
answers (or over all answers), weighted by their probabilities, differentiated by autograd.

* :func:`aggregation_objective` with
  :func:`rlviz.tabular.answer_tree.expected_group_gradient`: the expected gradient of the
  token-level GRPO loss under each aggregation mode, optionally *conditioned* on an event of
  the group's rewards (dynamic sampling keeps only the groups with mixed rewards);
* :func:`zero_variance_fraction`, :func:`success_probability`: how many groups carry no signal;
* :func:`batch_gradient`: the gradient of one fixed batch's loss, whole or accumulated over
  micro-batches;
* :func:`kl_gradient`: the expected gradient of a KL estimator placed in the reward or in the
  loss, on- or off-policy, with or without the importance weight.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from rlviz import _validate as validate
from rlviz.fn.grpo_aggregation import (
    AGG_MODES,
    accumulated,
    aggregate,
    group_aggregate,
)
from rlviz.fn.grpo_loss import group_advantages, kl_estimate, mixed_groups, token_ratios
from rlviz.fn.ppo_loss import clipped_surrogate
from rlviz.tabular.answer_tree import (
    DTYPE,
    Answers,
    answer_probs,
    summed_kl_estimates,
    token_log_probs,
)

__all__ = [
    "KL_FORMS",
    "token_surrogate",
    "aggregation_objective",
    "expected_batch_gradient",
    "zero_variance_fraction",
    "success_probability",
    "mean_length_gradient",
    "batch_gradient",
    "kl_gradient",
]

# where and how the KL penalty enters, in the exact code: "reward" and "loss" are the
# placements of rlviz.fn.grpo_loss.KL_PLACEMENTS (per-token estimators summed along the answer);
# "loss-is" and "loss-is-token" weight the loss term by the answer's or each token's ratio to
# the sampler (differentiated); "loss-seq" applies the estimator to the whole answer's log-ratio
KL_FORMS = ("reward", "loss", "loss-is", "loss-is-token", "loss-seq")
EPSILON = 0.2  # the clip of the surrogate; at theta = theta_old it does not act


def _leaf(theta) -> torch.Tensor:
    return torch.tensor(np.asarray(theta, dtype=float), dtype=DTYPE, requires_grad=True)


def _const(theta) -> torch.Tensor:
    return torch.tensor(np.asarray(theta, dtype=float), dtype=DTYPE)


def token_surrogate(logp_t, logp_old_t, adv, mask_t) -> torch.Tensor:
    r"""The per-token clipped surrogate :math:`\min(\rho_{i,t}A_i,
    \operatorname{clip}(\rho_{i,t}, 1\pm\epsilon) A_i)`, ``(B, G, L)``, with the token ratios of
    :func:`rlviz.fn.grpo_loss.token_ratios` and :func:`rlviz.fn.ppo_loss.clipped_surrogate`
    (:math:`\epsilon = 0.2`); ``adv`` ``(B, G)`` constants."""
    rho_t = token_ratios(logp_t, logp_old_t, mask_t)
    return clipped_surrogate(rho_t, adv.detach()[..., None].expand_as(rho_t), EPSILON)


def aggregation_objective(mode: str, advantage: str = "mean", *, norm=None):
    """A group objective ``f(logp_t, logp_old_t, r, mask_t) -> (B,)``: the token surrogate
    (:func:`token_surrogate`) with advantages :func:`rlviz.fn.grpo_loss.group_advantages`
    of ``advantage`` (``"mean"`` or ``"std"``; per group, so ``"batch-std"`` is not offered
    here), aggregated per group by :func:`rlviz.fn.grpo_aggregation.group_aggregate`."""
    if mode not in AGG_MODES:
        raise ValueError(f"mode must be one of {AGG_MODES}, got {mode!r}")
    if advantage not in ("mean", "std"):
        raise ValueError(f"advantage must be 'mean' or 'std', got {advantage!r}")

    def f(logp_t, logp_old_t, r, mask_t):
        adv = group_advantages(r, advantage)
        return group_aggregate(
            token_surrogate(logp_t, logp_old_t, adv, mask_t), mask_t, mode, norm=norm
        )

    return f


def _groups(ans: Answers, group_size: int) -> torch.Tensor:
    group_size = validate.positive("group_size", group_size, integer=True)
    return torch.as_tensor(np.array(list(itertools.product(range(ans.n), repeat=group_size))))


def expected_batch_gradient(
    theta, ans: Answers, r, group_size: int, mode: str, advantage: str = "mean"
) -> np.ndarray:
    r"""The exact expected gradient at :math:`\theta_\text{old} = \theta` of a *batch* loss: one
    group of ``group_size`` answers for each of the :math:`P` prompts, the token surrogate
    (:func:`token_surrogate`) with advantages
    :func:`rlviz.fn.grpo_loss.group_advantages` of ``advantage`` (``"batch-std"``
    shares one standard deviation across the batch), aggregated over the whole batch by
    :func:`rlviz.fn.grpo_aggregation.aggregate` in ``mode``. Enumerates all :math:`n^{PG}`
    batches (keep it small). Flattened like ``theta``."""
    theta = np.asarray(theta, dtype=float)
    P = theta.shape[0]
    idx = _groups(ans, group_size * P).reshape(-1, P, group_size)  # (N, P, G)
    th = _leaf(theta)
    logp = token_log_probs(th, ans)  # (P, n, L)
    rows = torch.arange(P)[None, :, None]
    lt = logp[rows, idx]  # (N, P, G, L)
    w = torch.exp(lt.detach().sum((-1, -2, -3)))  # probability of each batch
    rg = torch.as_tensor(np.asarray(r, dtype=float))[rows, idx]  # (N, P, G)
    N, L = idx.shape[0], ans.max_len
    # each batch as one "group" of P*G answers: group_aggregate is then the batch aggregate
    lt = lt.reshape(N, P * group_size, L)
    mask = torch.as_tensor(ans.mask)[idx].reshape(N, P * group_size, L)
    adv = group_advantages(rg, advantage).reshape(N, P * group_size)
    loss = group_aggregate(token_surrogate(lt, lt.detach(), adv, mask), mask, mode)
    (w * loss).sum().backward()
    return th.grad.numpy().ravel()


def zero_variance_fraction(theta, ans: Answers, r, group_size: int) -> np.ndarray:
    """By enumeration: the probability that a group of ``group_size`` answers of each prompt
    has all rewards equal, ``(P,)``."""
    idx = _groups(ans, group_size)
    p = answer_probs(_const(theta), ans)  # (P, n)
    r = torch.as_tensor(np.asarray(r, dtype=float))
    out = []
    for x in range(p.shape[0]):
        w = p[x][idx].prod(dim=1)
        out.append(float((w * (~mixed_groups(r[x][idx])).to(w.dtype)).sum()))
    return np.array(out)


def success_probability(theta, ans: Answers, r) -> np.ndarray:
    r""":math:`p(x) = \sum_y \pi_\theta(y\mid x)\, r(x, y)` for each prompt (binary rewards: the
    pass rate), ``(P,)``."""
    p = answer_probs(_const(theta), ans)
    return (p * torch.as_tensor(np.asarray(r, dtype=float))).sum(-1).numpy()


def mean_length_gradient(theta, ans: Answers, which=None) -> np.ndarray:
    r""":math:`\nabla_\theta\, \mathbb E[|y| \mid y \in S]`, the gradient of the mean length of
    the answers in a set :math:`S` (``which``: bool ``(P, n)``, default all answers), mean over
    prompts; flattened. Its dot product with an update is the first-order change of that mean
    length."""
    th = _leaf(theta)
    p = answer_probs(th, ans)
    length = torch.as_tensor(ans.length, dtype=DTYPE)
    sel = torch.ones_like(p) if which is None else torch.as_tensor(np.asarray(which), dtype=DTYPE)
    ((p * sel * length).sum(-1) / (p * sel).sum(-1)).mean().backward()
    return th.grad.numpy().ravel()


def batch_gradient(
    theta, ans: Answers, groups, r, mode: str, sizes=None, *, global_counts=False, advantage="mean"
) -> np.ndarray:
    r"""The gradient at :math:`\theta_\text{old} = \theta` of one fixed batch's loss: group
    ``b`` is prompt ``b``'s answers ``groups[b]`` (indices into ``ans``, ``(B, G)``), rewards
    ``r`` ``(P, n)`` with ``P`` = ``B``; per-token surrogate (:func:`token_surrogate`),
    aggregated over the whole batch by :func:`rlviz.fn.grpo_aggregation.aggregate` (``sizes``
    None) or accumulated over micro-batches of ``sizes`` groups by
    :func:`rlviz.fn.grpo_aggregation.accumulated`. Flattened like ``theta``."""
    groups = np.asarray(groups)
    th = _leaf(theta)
    logp = token_log_probs(th, ans)  # (P, n, L)
    rows = torch.arange(groups.shape[0])[:, None]
    lt = logp[rows, torch.as_tensor(groups)]  # (B, G, L)
    mask = torch.as_tensor(ans.mask)[torch.as_tensor(groups)]
    rg = torch.as_tensor(np.asarray(r, dtype=float))[rows, torch.as_tensor(groups)]
    x_t = token_surrogate(lt, lt.detach(), group_advantages(rg, advantage), mask)
    if sizes is None:
        loss = aggregate(x_t, mask, mode)
    else:
        loss = accumulated(x_t, mask, mode, sizes, global_counts=global_counts)
    loss.backward()
    return th.grad.numpy().ravel()


def kl_gradient(theta, theta_ref, ans: Answers, kl: str, placement: str, theta_old=None):
    r"""The expected gradient at :math:`\theta` of a KL penalty term, answers
    :math:`y \sim \pi_\text{old}` (``theta_old``, default ``theta``: on-policy), the per-token
    estimator ``kl`` (:func:`rlviz.fn.grpo_loss.kl_estimate`) summed along the answer,
    :math:`k(y;\theta) = \sum_t \hat k_t`; mean over prompts, flattened:

    * ``"reward"`` (KL in the reward, computed at rollout):
      :math:`\sum_y \nabla\pi_\theta(y)\, k(y;\theta_\text{old})`, what the ratio
      :math:`\pi_\theta/\pi_\text{old}` times a fixed reward differentiates;
    * ``"loss"`` (KL in the loss, samples fixed):
      :math:`\sum_y \pi_\text{old}(y)\, \nabla k(y;\theta)`;
    * ``"loss-is"`` (importance-corrected):
      :math:`\sum_y \pi_\text{old}(y)\, \nabla\bigl[\tfrac{\pi_\theta(y)}{\pi_\text{old}(y)}
      k(y;\theta)\bigr]`, the ratio differentiated too;
    * ``"loss-is-token"`` (TRL's ``use_bias_correction_kl``, DeepSeek-V3.2's "unbiased KL"):
      :math:`\sum_y \pi_\text{old}(y)\, \nabla\sum_t \rho_t(\theta)\,\hat k_t(\theta)`, each
      token's estimate times its own token ratio :math:`\rho_t = \pi_\theta(y_t\mid\cdot) /
      \pi_\text{old}(y_t\mid\cdot)`;
    * ``"loss-seq"`` (sequence level): the estimator of the whole answer,
      :math:`\sum_y \pi_\text{old}(y)\, \nabla \hat k\bigl(\log\pi_\theta(y),
      \log\pi_\text{ref}(y)\bigr)` (e.g. :math:`k_2 = \tfrac12(\sum_t \log\pi_t/\pi_{\text{ref},t})^2`).
    """
    if placement not in KL_FORMS:
        raise ValueError(f"placement must be one of {KL_FORMS}, got {placement!r}")
    th = _leaf(theta)
    old = _const(theta if theta_old is None else theta_old)
    ref_t = token_log_probs(_const(theta_ref), ans)
    logp_t = token_log_probs(th, ans)
    p_old = answer_probs(old, ans)  # (P, n)
    if placement == "reward":
        k_old = summed_kl_estimates(token_log_probs(old, ans), ref_t, ans, kl)
        total = (torch.exp(logp_t.sum(-1)) * k_old).sum(-1)
    elif placement == "loss":
        total = (p_old * summed_kl_estimates(logp_t, ref_t, ans, kl)).sum(-1)
    elif placement == "loss-is-token":
        mask = torch.as_tensor(ans.mask)
        ratio_t = torch.exp(logp_t - token_log_probs(old, ans))
        k_t = ratio_t * kl_estimate(kl, logp_t, ref_t)
        total = (p_old * torch.where(mask, k_t, torch.zeros_like(k_t)).sum(-1)).sum(-1)
    elif placement == "loss-seq":
        mask = torch.as_tensor(ans.mask)
        zero = torch.zeros_like(logp_t)
        k_y = kl_estimate(
            kl, torch.where(mask, logp_t, zero).sum(-1), torch.where(mask, ref_t, zero).sum(-1)
        )
        total = (p_old * k_y).sum(-1)
    else:
        ratio = torch.exp(logp_t.sum(-1)) / p_old
        total = (p_old * ratio * summed_kl_estimates(logp_t, ref_t, ans, kl)).sum(-1)
    total.mean().backward()
    return th.grad.numpy().ravel()
