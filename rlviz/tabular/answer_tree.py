r"""Exact expectations of GRPO's estimators on a small enumerable policy (chapter 14).

The policy answers each of :math:`P` prompts with a token sequence over a vocabulary of
``vocab`` tokens, one of them an end token (EOS), at most :math:`L` tokens long; it is tabular
and autoregressive: one softmax over the next token for every prompt and every unfinished
prefix, logits ``theta`` of shape ``(P, n_prefix, vocab)``. Every answer :math:`y` is enumerated
(:func:`enumerate_answers`), so :math:`\pi_\theta(y \mid x)` and
:math:`J(\theta) = \frac1P\sum_x \sum_y \pi_\theta(y\mid x)\, r(x, y)` are differentiable torch
functions, and the expectation of any group estimator over all groups of :math:`G` answers
(``group_size``, the notes' :math:`K`), weighted by the product of their probabilities, is a
finite sum whose gradient autograd computes exactly. With :math:`L = 1` the policy is a softmax
over ``vocab`` single-token answers (a bandit).

The formulas are :mod:`rlviz.fn`'s: the group objective is
:func:`rlviz.fn.grpo_loss.grpo_objective`, the per-token KL estimators
:func:`rlviz.fn.grpo_loss.kl_estimate` (summed along each answer by
:func:`summed_kl_estimates`), and the exact KL between answer distributions
:func:`rlviz.fn.ppo_loss.categorical_kl` (:func:`answer_kl`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from rlviz import _validate as validate
from rlviz.fn.grpo_loss import group_advantages, grpo_objective, kl_estimate
from rlviz.fn.ppo_loss import categorical_kl

__all__ = [
    "Answers",
    "enumerate_answers",
    "token_log_probs",
    "answer_probs",
    "objective",
    "exact_gradient",
    "expected_group_gradient",
    "group_gradient_fn",
    "answer_kl",
    "summed_kl_estimates",
    "kl_moments",
    "k3_loss_gradient",
    "forward_kl_gradient",
    "reverse_kl_gradient",
    "prefix_probs",
    "prefix_reverse_kl_gradient",
    "offpolicy_kl",
]

DTYPE = torch.float64


@dataclass(frozen=True)
class Answers:
    """All answers of the tree: ``tokens`` and ``node`` ``(n, L)`` int (padding 0), ``mask``
    ``(n, L)`` bool, ``length`` ``(n,)``; ``n_prefix`` unfinished prefixes; ``eos`` the end
    token (or None with L = 1)."""

    tokens: np.ndarray
    node: np.ndarray
    mask: np.ndarray
    length: np.ndarray
    n_prefix: int
    vocab: int
    max_len: int

    @property
    def n(self) -> int:
        return len(self.length)


def enumerate_answers(vocab: int, max_len: int) -> Answers:
    """Every answer over ``vocab`` tokens whose last token (``vocab - 1``) is EOS, ending at EOS
    or after ``max_len`` tokens. ``max_len = 1``: the ``vocab`` one-token answers."""
    vocab = validate.positive("vocab", vocab, integer=True)
    max_len = validate.positive("max_len", max_len, integer=True)
    if vocab < 2:
        raise ValueError(f"vocab must be >= 2, got {vocab}")
    eos = vocab - 1
    prefixes = {(): 0}
    answers = []

    def grow(prefix):
        for tok in range(vocab):
            y = prefix + (tok,)
            if tok == eos or len(y) == max_len:
                answers.append(y)
            else:
                prefixes.setdefault(y, len(prefixes))
                grow(y)

    grow(())
    n = len(answers)
    tokens = np.zeros((n, max_len), dtype=np.int64)
    node = np.zeros((n, max_len), dtype=np.int64)
    mask = np.zeros((n, max_len), dtype=bool)
    for k, y in enumerate(answers):
        tokens[k, : len(y)] = y
        node[k, : len(y)] = [prefixes[y[:t]] for t in range(len(y))]
        mask[k, : len(y)] = True
    return Answers(tokens, node, mask, mask.sum(1), len(prefixes), vocab, max_len)


def token_log_probs(theta: torch.Tensor, ans: Answers) -> torch.Tensor:
    r""":math:`\log\pi_\theta(y_t \mid x, y_{<t})` for every prompt and answer, ``(P, n, L)``
    (0 on padding). ``theta``: ``(P, n_prefix, vocab)`` logits."""
    logp = torch.log_softmax(theta, dim=-1)  # (P, n_prefix, vocab)
    node = torch.as_tensor(ans.node)
    tok = torch.as_tensor(ans.tokens)
    out = logp[:, node, tok]  # (P, n, L)
    return torch.where(torch.as_tensor(ans.mask), out, torch.zeros_like(out))


def answer_probs(theta: torch.Tensor, ans: Answers) -> torch.Tensor:
    r""":math:`\pi_\theta(y \mid x)`, ``(P, n)``; each row sums to 1."""
    return torch.exp(token_log_probs(theta, ans).sum(-1))


def objective(theta: torch.Tensor, ans: Answers, r: torch.Tensor) -> torch.Tensor:
    r""":math:`J(\theta) = \frac1P \sum_x \sum_y \pi_\theta(y \mid x)\, r(x, y)`; ``r``: ``(P, n)``."""
    return (answer_probs(theta, ans) * r).sum(-1).mean()


def _leaf(theta) -> torch.Tensor:
    """``theta`` as a float64 tensor that autograd differentiates."""
    return torch.tensor(np.asarray(theta, dtype=float), dtype=DTYPE, requires_grad=True)


def exact_gradient(theta, ans: Answers, r) -> np.ndarray:
    r""":math:`\nabla_\theta J` by autograd, flattened like ``theta``."""
    th = _leaf(theta)
    objective(th, ans, torch.as_tensor(np.asarray(r, dtype=float))).backward()
    return th.grad.numpy().ravel()


def group_gradient_fn(
    advantage: str = "mean",
    ratio: str = "sequence",
    length_norm: str | None = None,
    std_eps: float = 1e-4,
):
    """A per-group objective ``f(logp_t, logp_old_t, r, mask_t) -> (B,)`` for
    :func:`expected_group_gradient`: :func:`rlviz.fn.grpo_loss.grpo_objective` (epsilon 0.2, no KL)
    with advantages :func:`rlviz.fn.grpo_loss.group_advantages` of kind ``advantage``."""

    def f(logp_t, logp_old_t, r, mask_t):
        adv = group_advantages(r, advantage, std_eps=std_eps)
        return grpo_objective(
            logp_t, logp_old_t, adv, mask_t, epsilon=0.2, ratio=ratio, length_norm=length_norm
        )

    return f


def expected_group_gradient(
    theta, ans: Answers, r, group_size: int, group_objective, condition=None, refill: str = "prompt"
) -> np.ndarray:
    r"""The exact expected gradient, at :math:`\theta_\text{old} = \theta`, of a group objective
    over groups of :math:`G` = ``group_size`` answers drawn i.i.d. from
    :math:`\pi_\theta(\cdot\mid x)`:

    .. math:: \mathbb E\bigl[\nabla_\theta \hat{\mathcal L}\bigr] = \frac1P \sum_x
              \sum_{(y_1..y_G)} \Bigl(\prod_{i} \pi_\theta(y_i \mid x)\Bigr)
              \nabla_\theta \mathcal L(x; y_{1..G}) \Big|_{\theta_\text{old} = \theta},

    enumerating all :math:`n^G` tuples (the samples are held fixed inside the gradient: the
    estimator a trainer differentiates). ``group_objective(logp_t, logp_old_t, r, mask_t)``
    returns ``(B,)``, e.g. :func:`group_gradient_fn`. Flattened like ``theta``.

    ``condition(r_groups) -> bool (n_groups,)`` (e.g. :func:`rlviz.fn.grpo_loss.mixed_groups`)
    keeps only the groups it selects and renormalises each prompt's weights: the expectation
    *given* the event, :math:`\mathbb E[\nabla\hat{\mathcal L} \mid \text{event}]`. ``refill``
    says how a dropped group is replaced: ``"prompt"`` (the same prompt is sampled again until
    the event holds: each prompt's weights renormalised on their own; prompts where the event
    has probability 0 contribute 0) or ``"batch"`` (DAPO's and verl's ``filter_groups``: a
    fresh prompt fills the slot, so the kept (prompt, group) pairs follow the joint law given
    the event: one normaliser, :math:`\Pr(\text{event})` averaged over the prompts).
    """
    if refill not in ("prompt", "batch"):
        raise ValueError(f"refill must be 'prompt' or 'batch', got {refill!r}")
    group_size = validate.positive("group_size", group_size, integer=True)
    theta = np.asarray(theta, dtype=float)
    r = torch.as_tensor(np.asarray(r, dtype=float))
    groups = itertools.product(range(ans.n), repeat=group_size)
    idx = torch.as_tensor(np.array(list(groups)))  # (n^G, G) answer indices
    th = _leaf(theta)
    logp = token_log_probs(th, ans)  # (P, n, L)
    mask = torch.as_tensor(ans.mask)[idx]  # (n^G, G, L)
    total, masses = 0.0, []
    for p in range(theta.shape[0]):
        lt = logp[p][idx]  # (n^G, G, L)
        w = torch.exp(lt.detach().sum(-1).sum(-1))  # probability of each tuple
        rg = r[p][idx]
        if condition is not None:
            keep = condition(rg).to(w.dtype)
            mass = (w * keep).sum()
            masses.append(mass)
            if refill == "prompt":
                w = w * keep / mass if mass > 0 else w * 0.0
            else:
                w = w * keep
        total = total + (w * group_objective(lt, lt.detach(), rg, mask)).sum()
    total = total / theta.shape[0]
    if condition is not None and refill == "batch":
        total = total / (sum(masses) / theta.shape[0])
    total.backward()
    return th.grad.numpy().ravel()


def answer_kl(logp_t: torch.Tensor, logp_ref_t: torch.Tensor) -> torch.Tensor:
    r"""The exact :math:`\mathrm{KL}(\pi \,\|\, \pi_\text{ref}) = \sum_y \pi(y \mid x)
    \log\frac{\pi(y \mid x)}{\pi_\text{ref}(y \mid x)}` between the answer distributions of each
    prompt, ``(P,)``: :func:`rlviz.fn.ppo_loss.categorical_kl` of the answers' log-probabilities.
    ``logp_t``, ``logp_ref_t``: :func:`token_log_probs` of the two policies, ``(P, n, L)``."""
    return categorical_kl(logp_t.sum(-1), logp_ref_t.sum(-1))


def summed_kl_estimates(
    logp_t: torch.Tensor, logp_ref_t: torch.Tensor, ans: Answers, kl: str = "k3"
) -> torch.Tensor:
    r"""The per-token KL estimator ``kl`` (:func:`rlviz.fn.grpo_loss.kl_estimate`) summed along
    each answer, :math:`\sum_t \hat k(y_t)`, ``(P, n)``, with the log-probabilities
    ``(P, n, L)`` of :func:`token_log_probs` (padding adds nothing)."""
    k_t = kl_estimate(kl, logp_t, logp_ref_t)
    return torch.where(torch.as_tensor(ans.mask), k_t, torch.zeros_like(k_t)).sum(-1)


def kl_moments(p, p_ref) -> dict:
    r"""Exact mean and variance under :math:`y\sim p` of :math:`k_1` and :math:`k_3`
    (:func:`rlviz.fn.grpo_loss.kl_k1`, :func:`rlviz.fn.grpo_loss.kl_k3`) and the exact
    :math:`\mathrm{KL}(p\,\|\,p_\text{ref})`; ``p``, ``p_ref``: distributions ``(n,)``, ``p_ref > 0``.
    Also ``min_k3``, the smallest value of :math:`k_3` over the support."""
    p = validate.array("p", p, ndim=1)
    p_ref = validate.array("p_ref", p_ref, shape=p.shape)
    validate.distribution_rows("p", p)
    validate.distribution_rows("p_ref", p_ref)
    if np.any(p_ref <= 0):
        raise ValueError("p_ref must be > 0 everywhere (the KL to it must be finite)")
    s = p > 0  # the support: outcomes y ~ p
    log_p, log_ref = torch.tensor(np.log(p[s])), torch.tensor(np.log(p_ref[s]))
    out = {"kl": float(categorical_kl(log_p, log_ref))}
    for name in ("k1", "k3"):
        k = kl_estimate(name, log_p, log_ref).numpy()
        m = float(p[s] @ k)
        out[f"mean_{name}"] = m
        out[f"var_{name}"] = float(p[s] @ (k - m) ** 2)
    out["min_k3"] = float(kl_estimate("k3", log_p, log_ref).min())
    return out


def k3_loss_gradient(theta, theta_ref, ans: Answers, kl: str = "k3") -> np.ndarray:
    r""":math:`\mathbb E_{y\sim\pi_\theta}\bigl[\nabla_\theta \sum_t k_3(y_t)\bigr]` with the
    samples held fixed (no score-function term): what a loss ``beta * k3`` differentiates,
    computed exactly by weighting each answer with its (detached) probability. Flattened.
    (``kl`` = ``"k1"`` or ``"k2"`` puts another estimator of
    :func:`rlviz.fn.grpo_loss.kl_estimate` in the loss instead.)

    For one-token answers (``max_len = 1``) it equals :func:`reverse_kl_gradient`,
    :math:`\nabla\mathrm{KL}(\pi_\text{ref}\,\|\,\pi_\theta)`, because
    :math:`\mathbb E_{y\sim\pi}[(1 - \pi_\text{ref}/\pi)\nabla\log\pi] = -\mathbb
    E_{y\sim\pi_\text{ref}}[\nabla\log\pi]`;
    for longer answers the per-prefix reverse KLs are weighted by the prefixes' probabilities
    under :math:`\pi_\theta`, not under :math:`\pi_\text{ref}`."""
    th, ref = _leaf(theta), torch.tensor(np.asarray(theta_ref, dtype=float), dtype=DTYPE)
    logp_t, logp_ref_t = token_log_probs(th, ans), token_log_probs(ref, ans)
    w = torch.exp(logp_t.detach().sum(-1))  # (P, n)
    ((w * summed_kl_estimates(logp_t, logp_ref_t, ans, kl)).sum(-1).mean()).backward()
    return th.grad.numpy().ravel()


def forward_kl_gradient(theta, theta_ref, ans: Answers) -> np.ndarray:
    r""":math:`\nabla_\theta \mathrm{KL}(\pi_\theta \,\|\, \pi_\text{ref})` over whole answers
    (mean over prompts, :func:`answer_kl`), by autograd. Flattened."""
    th, ref = _leaf(theta), torch.tensor(np.asarray(theta_ref, dtype=float), dtype=DTYPE)
    answer_kl(token_log_probs(th, ans), token_log_probs(ref, ans)).mean().backward()
    return th.grad.numpy().ravel()


def reverse_kl_gradient(theta, theta_ref, ans: Answers) -> np.ndarray:
    r""":math:`\nabla_\theta \mathrm{KL}(\pi_\text{ref} \,\|\, \pi_\theta)` over whole answers
    (mean over prompts, :func:`answer_kl`), by autograd. Flattened."""
    th, ref = _leaf(theta), torch.tensor(np.asarray(theta_ref, dtype=float), dtype=DTYPE)
    answer_kl(token_log_probs(ref, ans), token_log_probs(th, ans)).mean().backward()
    return th.grad.numpy().ravel()


def prefix_probs(theta: torch.Tensor, ans: Answers) -> torch.Tensor:
    r""":math:`P_{\pi_\theta}(h \mid x)`, the probability that an answer passes through each
    unfinished prefix :math:`h`, ``(P, n_prefix)`` (the empty prefix has probability 1)."""
    p = answer_probs(theta, ans)  # (P, n)
    visits = np.zeros((ans.n, ans.n_prefix))
    for k in range(ans.n):
        visits[k, ans.node[k, : ans.length[k]]] = 1.0
    return p @ torch.as_tensor(visits, dtype=p.dtype)


def prefix_reverse_kl_gradient(theta, theta_ref, ans: Answers) -> np.ndarray:
    r""":math:`\sum_h P_{\pi_\theta}(h)\, \nabla_\theta \mathrm{KL}\bigl(\pi_\text{ref}(\cdot\mid h)
    \,\|\, \pi_\theta(\cdot\mid h)\bigr)` with the prefix probabilities held fixed (mean over
    prompts): the per-prefix reverse KLs weighted by how often :math:`\pi_\theta` reaches each
    prefix. What :func:`k3_loss_gradient` equals for answers of several tokens. Flattened."""
    th, ref = _leaf(theta), torch.tensor(np.asarray(theta_ref, dtype=float), dtype=DTYPE)
    w = prefix_probs(th.detach(), ans)  # (P, n_prefix)
    per_prefix = categorical_kl(torch.log_softmax(ref, -1), torch.log_softmax(th, -1))
    (w * per_prefix).sum(-1).mean().backward()
    return th.grad.numpy().ravel()


def offpolicy_kl(theta, theta_old, theta_ref, ans: Answers) -> dict:
    r"""The KL penalty of GRPO after the first inner step, exactly: answers come from
    :math:`\pi_\text{old}`, the estimators are evaluated at :math:`\pi_\theta`.

    Returns, averaged over prompts: ``kl`` :math:`= \mathrm{KL}(\pi_\theta\|\pi_\text{ref})` of
    the answers; ``k1``, ``k3`` :math:`= \mathbb E_{y\sim\pi_\text{old}}[\sum_t k(y_t)]` (what a
    trainer's sample mean estimates); ``k1_is``, ``k3_is``, the same with the importance weight
    :math:`\pi_\theta(y)/\pi_\text{old}(y)` (unbiased again)."""
    th = torch.tensor(np.asarray(theta, dtype=float), dtype=DTYPE)
    old = torch.tensor(np.asarray(theta_old, dtype=float), dtype=DTYPE)
    ref = torch.tensor(np.asarray(theta_ref, dtype=float), dtype=DTYPE)
    logp_t, logp_ref_t = token_log_probs(th, ans), token_log_probs(ref, ans)
    p_old, p = answer_probs(old, ans), answer_probs(th, ans)
    out = {"kl": float(answer_kl(logp_t, logp_ref_t).mean())}
    for name in ("k1", "k3"):
        k = summed_kl_estimates(logp_t, logp_ref_t, ans, name)
        out[name] = float((p_old * k).sum(-1).mean())
        out[f"{name}_is"] = float((p_old * (p / p_old) * k).sum(-1).mean())
    return out
