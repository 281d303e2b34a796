r"""The settings and exact quantities of chapter 16: clipping, entropy and the ratio.

Three parts, each on an enumerable policy in float64 (:mod:`rlviz.tabular.answer_tree`):

* *Clip-higher* (:func:`clip_batch`, :func:`clip_entropy_rates`): a one-token policy over
  :data:`CLIP_VOCAB` tokens, one sampled group of answers, a few inner steps on it, then the
  gradient of DAPO's asymmetric clipped objective (:func:`rlviz.fn.ratios.asymmetric_clipped_surrogate`)
  and its first-order effect on the entropy
  (:func:`rlviz.tabular.entropy_dynamics.entropy_covariance`).
* *Entropy dynamics* (:func:`entropy_directions`): vanilla and natural policy-gradient logit
  changes, and random ones, on ch14's random trees.
* *Ratio granularity* (:func:`expected_ratio_gradient`, :func:`ratio_variances`): the expected
  gradient, under answers from :math:`\pi_{\theta_\text{old}}`, of each per-answer objective of
  :data:`RATIO_KINDS`, and the exact and Monte-Carlo variance of the ratios against the answer
  length.

Advantages of the ratio part are exact, :math:`A(y) = r(y) - J_{\theta_\text{old}}(x)` (no group
is drawn), so only the ratio differs between the kinds.
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz import _validate as validate
from rlviz.experiments.addition_runs import variant, variant_table
from rlviz.experiments.answer_trees import tree_setting
from rlviz.fn.grpo_loss import group_advantages, sequence_ratios, token_ratios
from rlviz.fn.ratios import (
    POLICY_TERMS,
    asymmetric_clipped_surrogate,
    clip_cov_mask,
    covariance_scores,
    gspo_ratios,
)
from rlviz.fn.stats import sample_variance_se
from rlviz.tabular.answer_tree import (
    Answers,
    enumerate_answers,
    token_log_probs,
)
from rlviz.tabular.entropy_dynamics import (
    entropy_covariance,
    policy_gradient_logits,
    prefix_advantages,
)

__all__ = [
    "TRAINED_VARIANTS",
    "TRAINED_STEPS",
    "TRAINED_INNER_STEPS",
    "CLIP_VOCAB",
    "CLIP_GROUP",
    "EPS_LOW",
    "EPS_HIGHS",
    "INNER_STEPS",
    "clip_batch",
    "inner_theta",
    "batch_gradient",
    "clip_entropy_rates",
    "CLIP_COV_KS",
    "clip_cov_entropy_rates",
    "entropy_directions",
    "RATIO_KINDS",
    "expected_ratio_gradient",
    "length_weighted_gradient",
    "off_policy_theta",
    "LENGTHS",
    "DELTAS",
    "LENGTH_LOGITS",
    "LENGTH_DIRECTION",
    "length_setting",
    "ratio_variances",
    "ratio_variances_mc",
]

DTYPE = torch.float64

# ---------------------------------------------------------------- clip-higher
CLIP_VOCAB = 12
CLIP_GROUP = 16
EPS_LOW = 0.2  # DAPO's epsilon_low (and PPO's epsilon)
EPS_HIGHS = tuple(np.round(np.arange(0.1, 0.51, 0.02), 2))
INNER_STEPS = (0, 1, 2, 3, 4)


def clip_batch(
    good: str = "rare", seed: int = 0, vocab: int = CLIP_VOCAB, group: int = CLIP_GROUP
) -> dict:
    r"""One group of ``group`` one-token answers drawn from a random old policy over ``vocab``
    tokens (logits :math:`\mathcal N(0, 1.5^2)`, rng ``seed``). Reward 1 on the ``"common"``
    tokens (the 4 most likely) or on the ``"rare"`` ones (all but the 3 most likely), 0 elsewhere;
    advantages :func:`rlviz.fn.grpo_loss.group_advantages` (mean baseline). Keys: ``theta_old``
    ``(vocab,)``, ``tokens`` ``(group,)``, ``adv`` ``(group,)``, ``reward`` ``(vocab,)``."""
    if good not in ("rare", "common"):
        raise ValueError(f"good must be 'rare' or 'common', got {good!r}")
    rng = np.random.default_rng(seed)
    theta_old = 1.5 * rng.normal(size=vocab)
    order = np.argsort(-theta_old)
    reward = np.isin(np.arange(vocab), order[:4] if good == "common" else order[3:]).astype(float)
    p = np.exp(theta_old - theta_old.max())
    tokens = rng.choice(vocab, size=group, p=p / p.sum())
    adv = group_advantages(torch.tensor(reward[tokens])[None], "mean")[0].numpy()
    return {"theta_old": theta_old, "tokens": tokens, "adv": adv, "reward": reward}


def _batch_objective(theta: torch.Tensor, batch: dict, eps_low, eps_high, detach=None):
    logp = torch.log_softmax(theta, -1)
    logp_old = torch.log_softmax(torch.tensor(batch["theta_old"], dtype=DTYPE), -1)
    tok = torch.as_tensor(batch["tokens"])
    ratio = torch.exp(logp[tok] - logp_old[tok])
    if detach is not None:  # these tokens keep their value but lose their gradient
        ratio = torch.where(detach, ratio.detach(), ratio)
    adv = torch.tensor(batch["adv"], dtype=DTYPE)
    if eps_low is None:  # the unclipped surrogate rho * A
        return (ratio * adv).mean()
    return asymmetric_clipped_surrogate(ratio, adv, eps_low, eps_high).mean()


def batch_gradient(
    theta, batch: dict, eps_low=EPS_LOW, eps_high=EPS_LOW, detach=None
) -> np.ndarray:
    r"""The gradient in the logits of the group's mean clipped objective at ``theta``, ``(vocab,)``
    (``eps_low=None``: unclipped; ``detach``: a ``(group,)`` bool mask of answers whose ratio is
    held constant, as Clip-Cov does)."""
    th = torch.tensor(np.asarray(theta, dtype=float), dtype=DTYPE, requires_grad=True)
    _batch_objective(th, batch, eps_low, eps_high, detach).backward()
    return th.grad.numpy()


def inner_theta(batch: dict, steps: int, lr: float = 2.0) -> np.ndarray:
    """The logits after ``steps`` inner gradient-ascent steps of size ``lr`` on the group's
    unclipped surrogate, from ``theta_old`` (where the clip starts to matter)."""
    theta = np.array(batch["theta_old"], dtype=float)
    for _ in range(int(validate.non_negative("steps", steps))):
        theta = theta + lr * batch_gradient(theta, batch, None)
    return theta


def clip_entropy_rates(batch: dict, steps: int, eps_highs=EPS_HIGHS, eps_low=EPS_LOW) -> dict:
    r"""After ``steps`` inner steps, for each :math:`\epsilon_\text{high}`: the first-order
    entropy change of a step along the clipped gradient,
    :math:`dH/d\eta = -\operatorname{Cov}_{\pi_\theta}(\log\pi_\theta, g)`, and the fraction of
    the group's answers stopped by each side of the clip. Also the ratios and the old
    probabilities of the sampled tokens (``ratio``, ``p_old``)."""
    theta = inner_theta(batch, steps)
    logp = theta - np.logaddexp.reduce(theta)
    logp_old = batch["theta_old"] - np.logaddexp.reduce(batch["theta_old"])
    tok, adv = batch["tokens"], batch["adv"]
    ratio = np.exp(logp[tok] - logp_old[tok])
    rates, upper, lower = [], [], []
    for eh in eps_highs:
        g = batch_gradient(theta, batch, eps_low, eh)
        rates.append(float(entropy_covariance(theta[None, None], g[None, None])[0, 0]))
        upper.append(float(np.mean((adv > 0) & (ratio > 1 + eh))))
        lower.append(float(np.mean((adv < 0) & (ratio < 1 - eps_low))))
    return {
        "eps_high": np.asarray(eps_highs, dtype=float),
        "dH": np.array(rates),
        "upper": np.array(upper),
        "lower": np.array(lower),
        "ratio": ratio,
        "p_old": np.exp(logp_old[tok]),
    }


CLIP_COV_KS = (0, 1, 2, 3, 4)


def clip_cov_entropy_rates(batch: dict, steps: int, ks=CLIP_COV_KS) -> dict:
    r"""Clip-Cov on the group of :func:`clip_batch` after ``steps`` inner steps: for each ``k``,
    the ``k`` answers of largest positive covariance score
    (:func:`rlviz.fn.ratios.covariance_scores`, :func:`rlviz.fn.ratios.clip_cov_mask`) lose their
    gradient in the unclipped surrogate; returns ``dH`` (the first-order entropy change of a
    step along the gradient, as :func:`clip_entropy_rates`) and ``cos``, the cosine between that
    gradient and the full one (how much of the update is kept)."""
    theta = inner_theta(batch, steps)
    logp = torch.log_softmax(torch.tensor(theta, dtype=DTYPE), -1)[torch.as_tensor(batch["tokens"])]
    scores = covariance_scores(logp, torch.tensor(batch["adv"], dtype=DTYPE))
    full = batch_gradient(theta, batch, None)
    rates, cos = [], []
    for k in ks:
        g = batch_gradient(theta, batch, None, detach=clip_cov_mask(scores, int(k)))
        rates.append(float(entropy_covariance(theta[None, None], g[None, None])[0, 0]))
        cos.append(float(g @ full / (np.linalg.norm(g) * np.linalg.norm(full))))
    return {"k": np.asarray(ks), "dH": np.array(rates), "cos": np.array(cos)}


# ---------------------------------------------------------------- entropy dynamics
def entropy_directions(seed: int = 0) -> tuple[Answers, np.ndarray, dict]:
    r"""ch14's random tree ``seed`` and three logit changes: ``"vanilla PG"``
    (:math:`\nabla_z J`), ``"natural PG"`` (:math:`A(h, a)`) and ``"random"``."""
    ans, theta, r = tree_setting(seed)
    adv, _ = prefix_advantages(theta, ans, r)
    dirs = {
        "vanilla PG": policy_gradient_logits(theta, ans, r),
        "natural PG": adv,
        "random": np.random.default_rng(seed + 11).normal(size=theta.shape),
    }
    return ans, theta, dirs


# ---------------------------------------------------------------- ratio granularity
RATIO_KINDS = ("token", "sequence", "sequence (unclipped)", "GSPO", "CISPO")
# the per-answer objectives on the tree: display name -> (the term of
# rlviz.fn.ratios.POLICY_TERMS, how an answer's token terms combine: summed, or averaged for
# the terms that are one number per answer); "sequence (unclipped)" is rho A, no term
RATIO_TERMS = {
    "token": ("token", "sum"),
    "sequence": ("sequence", "mean"),
    "GSPO": ("gspo", "mean"),
    "CISPO": ("cispo", "sum"),
}


def _per_answer_objective(kind, logp_t, logp_old_t, adv, mask_t, eps) -> torch.Tensor:
    """Per-answer objective ``(P, n)`` of ``kind``; ``adv`` ``(P, n)``."""
    if kind == "sequence (unclipped)":  # the plain importance-weighted objective
        return sequence_ratios(logp_t, logp_old_t, mask_t) * adv
    term, tokens = RATIO_TERMS[kind]
    m = mask_t.to(logp_t.dtype)
    a_t = adv[..., None].expand_as(logp_t)
    x_t = POLICY_TERMS[term].fn(logp_t, logp_old_t, a_t, mask_t, eps, eps) * m
    return x_t.sum(-1) if tokens == "sum" else x_t.sum(-1) / m.sum(-1)


def expected_ratio_gradient(kind: str, theta, theta_old, ans: Answers, r, eps=0.2) -> np.ndarray:
    r"""The exact expected gradient at ``theta`` of the per-answer objective ``kind`` (one of
    :data:`RATIO_KINDS`), answers drawn from :math:`\pi_{\theta_\text{old}}`:
    :math:`\frac1P\sum_x\sum_y \pi_{\theta_\text{old}}(y\mid x)\,\nabla_\theta\ell_\text{kind}(\theta; y)`,
    advantages :math:`A(y) = r(y) - J_{\theta_\text{old}}(x)`, clip width ``eps`` on both sides,
    token terms summed along the answer. Flattened like ``theta``."""
    if kind not in RATIO_KINDS:
        raise ValueError(f"kind must be one of {RATIO_KINDS}, got {kind!r}")
    th = torch.tensor(np.asarray(theta, dtype=float), dtype=DTYPE, requires_grad=True)
    old = torch.tensor(np.asarray(theta_old, dtype=float), dtype=DTYPE)
    r = torch.tensor(np.asarray(r, dtype=float), dtype=DTYPE)
    logp_old_t = token_log_probs(old, ans)
    p_old = torch.exp(logp_old_t.sum(-1))  # (P, n)
    adv = r - (p_old * r).sum(-1, keepdim=True)
    mask = torch.as_tensor(ans.mask)[None].expand(th.shape[0], -1, -1)
    ell = _per_answer_objective(kind, token_log_probs(th, ans), logp_old_t, adv, mask, eps)
    (p_old * ell).sum(-1).mean().backward()
    return th.grad.numpy().ravel()


def length_weighted_gradient(theta, ans: Answers, r) -> np.ndarray:
    r""":math:`\frac1P\sum_x \mathbb E_{y\sim\pi_\theta}\bigl[\frac{A(y)}{|y|}\nabla\log\pi_\theta(y)\bigr]`
    with :math:`A(y) = r(y) - J_\theta(x)`: the REINFORCE gradient with each answer weighted by
    one over its length. Flattened like ``theta``."""
    th = torch.tensor(np.asarray(theta, dtype=float), dtype=DTYPE, requires_grad=True)
    r = torch.tensor(np.asarray(r, dtype=float), dtype=DTYPE)
    logp = token_log_probs(th, ans).sum(-1)
    p = logp.exp().detach()
    adv = r - (p * r).sum(-1, keepdim=True)
    (p * adv / torch.as_tensor(ans.length, dtype=DTYPE) * logp).sum(-1).mean().backward()
    return th.grad.numpy().ravel()


def off_policy_theta(theta_old, t: float, seed: int = 0) -> np.ndarray:
    """``theta_old + t d`` with ``d`` a fixed random direction (the policy after inner steps)."""
    d = np.random.default_rng(seed + 23).normal(size=np.shape(theta_old))
    return np.asarray(theta_old, dtype=float) + t * d


# ---------------------------------------------------------------- variance against length
LENGTHS = (1, 2, 3, 4, 5, 6, 7)
DELTAS = (0.1, 0.2, 0.3, 0.5)


LENGTH_LOGITS = (0.0, 0.0, -2.0)  # old logits of a, b and the end token, in every prefix
LENGTH_DIRECTION = (1.0, -1.0, 0.0)  # how the new logits move, in every prefix


def length_setting(max_len: int, delta: float):
    r"""Answers over ``a``, ``b`` and an end token of at most ``max_len`` tokens, one prompt;
    the same next-token logits in every prefix: old :data:`LENGTH_LOGITS` (the end token
    lowered, so answers run long), new ones moved by ``delta`` times :data:`LENGTH_DIRECTION`.
    Each token's ratio has the same law at every position, so only the length changes.
    Returns ``(ans, theta, theta_old)``."""
    ans = enumerate_answers(3, validate.positive("max_len", max_len, integer=True))
    theta_old = np.broadcast_to(np.array(LENGTH_LOGITS), (1, ans.n_prefix, 3)).copy()
    theta = theta_old + validate.non_negative("delta", delta) * np.array(LENGTH_DIRECTION)
    return ans, theta, theta_old


def _ratio_values(ans: Answers, theta, theta_old) -> dict:
    """Per answer: the sequence ratio, GSPO's ratio and the mean token ratio, and pi_old."""
    lt = token_log_probs(torch.tensor(theta, dtype=DTYPE), ans)
    lo = token_log_probs(torch.tensor(theta_old, dtype=DTYPE), ans)
    mask = torch.as_tensor(ans.mask)[None]
    length = torch.as_tensor(ans.length, dtype=DTYPE)
    return {
        "p_old": torch.exp(lo.sum(-1))[0].numpy(),
        "sequence": sequence_ratios(lt, lo, mask)[0].numpy(),
        "GSPO": gspo_ratios(lt, lo, mask)[0].numpy(),
        "token (mean)": ((token_ratios(lt, lo, mask) * mask).sum(-1) / length)[0].numpy(),
    }


def ratio_variances(max_len: int, delta: float) -> dict:
    r"""Exact means and variances under :math:`y\sim\pi_{\theta_\text{old}}` of the three
    per-answer ratios of :func:`length_setting`: ``{name: (mean, variance)}``."""
    v = _ratio_values(*length_setting(max_len, delta))
    p = v.pop("p_old")
    out = {}
    for name, x in v.items():
        m = float(p @ x)
        out[name] = (m, float(p @ (x - m) ** 2))
    return out


def ratio_variances_mc(max_len: int, delta: float, n: int = 400, seed: int = 0) -> dict:
    r"""Monte-Carlo: ``n`` answers drawn from :math:`\pi_{\theta_\text{old}}` (rng ``seed``);
    ``{name: (sample variance, its standard error)}`` (delta method, as
    :func:`rlviz.fn.stats.sample_variance_se`)."""
    v = _ratio_values(*length_setting(max_len, delta))
    p = v.pop("p_old")
    idx = np.random.default_rng(seed + 1000 * max_len).choice(len(p), size=n, p=p / p.sum())
    return {name: sample_variance_se(x[idx]) for name, x in v.items()}


# ---------------------------------------------------------------- trained on the addition task
# the ratios and clips, trained from chapter 14's reference on the addition task over five
# splits x three seeds (id -> Variant; run by rlviz.experiments.addition_runs.run_variants):
# with chapter 14's two gradient steps per batch, and with eight, where the ratios move further
# from 1 within a batch and the clips act
_TOKEN = {"term": "token", "loss_agg": "token-mean"}
_CLIP_HIGHER = {**_TOKEN, "eps_high": 0.28}
_GSPO = {"term": "gspo", "loss_agg": "seq-mean-token-mean"}
_CISPO = {"term": "cispo", "loss_agg": "token-mean", "eps_high": 0.28}
TRAINED_INNER_STEPS = (2, 8)
TRAINED_VARIANTS = variant_table(
    variant("token-2", "token clip 0.2/0.2, 2 inner steps", **_TOKEN, updates_per_batch=2),
    variant("cispo-2", "CISPO 0.2/0.28, 2 inner steps", **_CISPO, updates_per_batch=2),
    variant("token-8", "token clip 0.2/0.2, 8 inner steps", **_TOKEN, updates_per_batch=8),
    variant(
        "clip-higher-8", "clip-higher 0.2/0.28, 8 inner steps", **_CLIP_HIGHER, updates_per_batch=8
    ),
    variant("gspo-8", "GSPO (ratio^(1/|y|)), 8 inner steps", **_GSPO, updates_per_batch=8),
    variant("cispo-8", "CISPO 0.2/0.28, 8 inner steps", **_CISPO, updates_per_batch=8),
)
TRAINED_STEPS = 30
