r"""How one update moves the entropy of a tabular softmax policy (chapter 16; Cui et al. 2025).

The policy is :mod:`rlviz.tabular.answer_tree`'s: one softmax over the next token per prompt and
unfinished prefix :math:`h`, logits :math:`z` = ``theta`` ``(P, n_prefix, vocab)``. For a
change of the logits :math:`z \to z + \eta\,\Delta z`, the entropy of each prefix's softmax
moves, to first order in :math:`\eta`, by minus a covariance under the policy
(Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning Language Models",

.. math:: H_h(z + \eta\Delta z) - H_h(z) = -\eta\,
          \operatorname{Cov}_{a\sim\pi(\cdot\mid h)}\bigl(\log\pi(a\mid h),\ \Delta z(h, a)\bigr)
          + O(\eta^2)

(:func:`entropy_covariance`; the exact directional derivative by autograd is
:func:`entropy_derivative`). Which :math:`\Delta z` a step makes: vanilla policy gradient
:math:`\Delta z(h,a) = \partial J/\partial z(h,a) = P_\pi(h)\,\pi(a\mid h)\,A(h,a)`, natural
policy gradient :math:`\Delta z(h,a) = A(h,a)` (:func:`prefix_advantages`).
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz import _validate as validate
from rlviz.fn.ppo_loss import entropy
from rlviz.tabular.answer_tree import Answers, answer_probs

__all__ = [
    "prefix_entropy",
    "entropy_covariance",
    "entropy_derivative",
    "first_order_errors",
    "prefix_advantages",
    "policy_gradient_logits",
    "raises_entropy",
]

DTYPE = torch.float64


def _logits(name: str, x, shape=None) -> torch.Tensor:
    a = validate.array(name, x, ndim=3)
    if shape is not None and a.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {a.shape}")
    return torch.tensor(a, dtype=DTYPE)


def prefix_entropy(theta) -> np.ndarray:
    r""":math:`H_h = -\sum_a \pi(a\mid h)\log\pi(a\mid h)` for every prompt and prefix,
    ``(P, n_prefix)`` (:func:`rlviz.fn.ppo_loss.entropy`)."""
    return entropy(_logits("theta", theta)).numpy()


def entropy_covariance(theta, dtheta, *, centred: bool = True) -> np.ndarray:
    r"""The first-order entropy change per unit step, ``(P, n_prefix)``:

    .. math:: -\operatorname{Cov}_{\pi(\cdot\mid h)}(\log\pi, \Delta z) =
              -\sum_a \pi(a\mid h)\,\bigl(\log\pi(a\mid h) - \mathbb E_\pi[\log\pi]\bigr)
              \bigl(\Delta z(h,a) - \mathbb E_\pi[\Delta z]\bigr).

    ``theta``, ``dtheta``: logits and their change, ``(P, n_prefix, vocab)``. ``centred=False``
    drops the mean-centring (the bug the chapter's mutation plants: it is harmless only when
    :math:`\mathbb E_\pi[\Delta z] = 0`, e.g. a natural-gradient step with exact advantages)."""
    z = _logits("theta", theta)
    dz = _logits("dtheta", dtheta, z.shape)
    logp = torch.log_softmax(z, -1)
    p = logp.exp()
    if centred:
        logp = logp - (p * logp).sum(-1, keepdim=True)
        dz = dz - (p * dz).sum(-1, keepdim=True)
    return -(p * logp * dz).sum(-1).numpy()


def entropy_derivative(theta, dtheta) -> np.ndarray:
    r""":math:`\frac{d}{d\eta} H_h(z + \eta\Delta z)\big|_{\eta=0}` by forward-mode autograd
    (no formula), ``(P, n_prefix)``: the oracle of :func:`entropy_covariance`."""
    z = _logits("theta", theta)
    dz = _logits("dtheta", dtheta, z.shape)
    _, tangent = torch.func.jvp(entropy, (z,), (dz,))
    return tangent.numpy()


def first_order_errors(theta, dtheta, steps, *, centred: bool = True) -> np.ndarray:
    r"""For each step size :math:`\eta` in ``steps``, the largest error over prefixes of the
    first-order prediction, :math:`\max_h |H_h(z+\eta\Delta z) - H_h(z) + \eta\,
    \operatorname{Cov}(\log\pi, \Delta z)|`, ``(len(steps),)``. It is :math:`O(\eta^2)`."""
    steps = validate.array("steps", steps, ndim=1)
    z = validate.array("theta", theta, ndim=3)
    dz = validate.array("dtheta", dtheta, shape=z.shape)
    h0 = prefix_entropy(z)
    slope = entropy_covariance(z, dz, centred=centred)
    return np.array([np.abs(prefix_entropy(z + e * dz) - h0 - e * slope).max() for e in steps])


def prefix_advantages(theta, ans: Answers, r) -> tuple[np.ndarray, np.ndarray]:
    r"""The exact advantages of the next token and the prefix probabilities.

    :math:`Q(h,a) = \mathbb E_\pi[r \mid \text{the answer passes } h \text{ then } a]`,
    :math:`A(h,a) = Q(h,a) - \sum_b \pi(b\mid h) Q(h,b)` ``(P, n_prefix, vocab)``, and
    :math:`P_\pi(h)` ``(P, n_prefix)``, by summing :math:`\pi(y) r(y)` over the answers through
    each (prefix, token). ``r``: rewards ``(P, n)``."""
    z = _logits("theta", theta)
    r = validate.array("r", r, shape=(z.shape[0], ans.n))
    p = answer_probs(z, ans).numpy()  # (P, n)
    shape = (z.shape[0], ans.n_prefix, ans.vocab)
    num, den = np.zeros(shape), np.zeros(shape)
    for k in range(ans.n):
        h, a = ans.node[k, : ans.length[k]], ans.tokens[k, : ans.length[k]]
        num[:, h, a] += (p[:, k] * r[:, k])[:, None]
        den[:, h, a] += p[:, k][:, None]
    pi = torch.softmax(z, -1).numpy()
    q = num / den
    reach = den.sum(-1)  # P_pi(h): every answer through h continues with some token
    return q - (pi * q).sum(-1, keepdims=True), reach


def policy_gradient_logits(theta, ans: Answers, r) -> np.ndarray:
    r"""The tabular softmax policy gradient in closed form,
    :math:`\partial J/\partial z(h,a) = \frac1P P_\pi(h)\,\pi(a\mid h)\,A(h,a)`,
    ``(P, n_prefix, vocab)`` (:math:`J` the mean over the :math:`P` prompts, as
    :func:`rlviz.tabular.answer_tree.objective`)."""
    adv, reach = prefix_advantages(theta, ans, r)
    pi = torch.softmax(_logits("theta", theta), -1).numpy()
    return reach[..., None] * pi * adv / adv.shape[0]


def raises_entropy(z) -> np.ndarray:
    r"""For one softmax :math:`\pi = \operatorname{softmax}(z)`, ``z`` ``(n,)``: which tokens a
    small push of their own logit (:math:`\Delta z = e_a`) makes the entropy rise, to first
    order, booleans ``(n,)``. By :func:`entropy_covariance` with :math:`\Delta z = e_a`,
    :math:`dH/d\eta = -\pi(a)\bigl(\log\pi(a) + H\bigr)`, so

    .. math:: \frac{dH}{d\eta} > 0 \iff \pi(a) < e^{-H}:

    raising a token rarer than :math:`e^{-H}` (the entropy's "typical" probability) spreads the
    distribution, raising a commoner one sharpens it."""
    z = validate.array("z", z, ndim=1)
    logp = z - np.logaddexp.reduce(z)
    H = -float(np.sum(np.exp(logp) * logp))
    return np.exp(logp) < np.exp(-H)
