r"""Exact bias and variance of the off-policy corrections on the enumerable answer tree
(chapter 17).

The learner is the tabular autoregressive policy :math:`\pi_\theta` of
:mod:`rlviz.tabular.answer_tree` (logits ``theta`` ``(P, n_prefix, vocab)``), the sampler
:math:`\mu` the same policy with other logits ``theta_mu``. For each prompt one answer
:math:`y \sim \mu(\cdot\mid x)` is drawn, scored with a fixed advantage
:math:`A(x, y) = r(x, y) - b(x)` (``b``: one number per prompt; by default the sampler's mean
reward :math:`\mathbb E_\mu[r]`, what a large group's mean would give), and the trainer's
gradient is that of :func:`rlviz.fn.offpolicy.corrected_pg_objective`, averaged over prompts.
Every answer is enumerated, so

.. math:: \mathbb E_\mu[\hat g] = \frac1P\sum_x \sum_y \mu(y\mid x)\, \hat g(x, y), \qquad
          \operatorname{tr}\operatorname{Var}_\mu[\hat g] = \frac1{P^2}\sum_x \Bigl(
          \sum_y \mu(y\mid x) \|\hat g(x,y)\|^2 - \|\mathbb E_{\mu}[\hat g(x,\cdot)]\|^2\Bigr)

are finite sums (float64), compared with :math:`\nabla_\theta J` of
:func:`rlviz.tabular.answer_tree.exact_gradient`.

:func:`sequence_truncation_bias` computes the bias of the sequence-level corrections a second
way, as an expectation under the learner: with :math:`\rho = \pi/\mu`,

.. math:: \mathbb E_\mu[\min(\rho, C)\, s] - \mathbb E_\pi[s]
          = -\mathbb E_\pi\bigl[(1 - C/\rho)_+\, s\bigr], \qquad
          \mathbb E_\mu[\rho\,\mathbb 1[\rho\le C]\, s] - \mathbb E_\pi[s]
          = -\mathbb E_\pi\bigl[\mathbb 1[\rho > C]\, s\bigr],

:math:`s = A\,\nabla\log\pi_\theta(y\mid x)`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from rlviz.fn.offpolicy import corrected_pg_objective, correction_weights
from rlviz.tabular.answer_tree import Answers, answer_probs, exact_gradient, token_log_probs

__all__ = [
    "sampler_baseline",
    "estimator_gradients",
    "estimator_moments",
    "sequence_truncation_bias",
    "max_weights",
]

DTYPE = torch.float64


def _t(x) -> torch.Tensor:
    return torch.tensor(np.asarray(x, dtype=float), dtype=DTYPE)


def _check(theta, theta_mu, r, ans: Answers):
    theta, theta_mu, r = (np.asarray(a, dtype=float) for a in (theta, theta_mu, r))
    want = (theta.shape[0], ans.n_prefix, ans.vocab) if theta.ndim == 3 else None
    if want is None or theta.shape != want:
        raise ValueError(
            f"theta must have shape (P, {ans.n_prefix}, {ans.vocab}), got {theta.shape}"
        )
    if theta_mu.shape != theta.shape:
        raise ValueError(
            f"theta_mu must have the shape of theta {theta.shape}, got {theta_mu.shape}"
        )
    if r.shape != (theta.shape[0], ans.n):
        raise ValueError(f"r must have shape (P, n) = {(theta.shape[0], ans.n)}, got {r.shape}")
    return theta, theta_mu, r


def sampler_baseline(theta_mu, ans: Answers, r) -> np.ndarray:
    r""":math:`b(x) = \mathbb E_{y\sim\mu}[r(x, y)]`, ``(P,)``."""
    return (answer_probs(_t(theta_mu), ans) * _t(r)).sum(-1).numpy()


def _advantages(theta_mu, ans, r, baseline) -> torch.Tensor:
    b = sampler_baseline(theta_mu, ans, r) if baseline is None else np.asarray(baseline, float)
    if b.shape != (np.asarray(r).shape[0],):
        raise ValueError(
            f"baseline must have shape (P,) = ({np.asarray(r).shape[0]},), got {b.shape}"
        )
    return _t(r) - _t(b)[:, None]


def estimator_gradients(
    theta,
    theta_mu,
    ans: Answers,
    r,
    correction: str = "tis",
    level: str = "token",
    cap: float = math.inf,
    baseline=None,
) -> np.ndarray:
    r""":math:`\hat g(x, y)` for every prompt and answer, ``(P, n, D)`` with ``D = theta.size``:
    the gradient of :func:`rlviz.fn.offpolicy.corrected_pg_objective` of that one answer,
    divided by :math:`P` (the batch holds one answer per prompt), the weights
    :func:`rlviz.fn.offpolicy.correction_weights` of the learner ``theta`` against the sampler
    ``theta_mu``. ``baseline``: ``(P,)`` or None (:func:`sampler_baseline`)."""
    theta, theta_mu, r = _check(theta, theta_mu, r, ans)
    P = theta.shape[0]
    adv = _advantages(theta_mu, ans, r, baseline)  # (P, n)
    logp_mu = token_log_probs(_t(theta_mu), ans)
    mask = torch.as_tensor(ans.mask).expand(P, -1, -1)
    # each answer's surrogate depends on theta only through its own token log-probabilities:
    # d obj(x, y) / d theta = sum_t [d obj(x, y) / d log pi_t] * [d log pi_t / d theta]
    logp = token_log_probs(_t(theta), ans).requires_grad_(True)  # (P, n, L), a leaf
    w = correction_weights(logp.detach(), logp_mu, mask, correction, level, cap)
    corrected_pg_objective(logp, w, adv, mask).sum().backward()
    return np.einsum("pnl,pnld->pnd", logp.grad.numpy(), _token_scores(theta, ans)) / P


_SCORES: dict = {}


def _token_scores(theta: np.ndarray, ans: Answers) -> np.ndarray:
    r""":math:`\nabla_\theta \log\pi_\theta(y_t \mid x, y_{<t})` for every token, ``(P, n, L, D)``
    (0 on padding), by autograd; the last few are kept (sweeps over caps reuse them)."""
    key = (theta.tobytes(), theta.shape, ans.vocab, ans.max_len)
    if key not in _SCORES:
        if len(_SCORES) > 8:
            _SCORES.clear()

        def logp(th):
            return token_log_probs(th.reshape(theta.shape), ans)

        jac = torch.autograd.functional.jacobian(logp, _t(theta).reshape(-1), vectorize=True)
        _SCORES[key] = jac.numpy()
    return _SCORES[key]


def estimator_moments(
    theta,
    theta_mu,
    ans: Answers,
    r,
    correction: str = "tis",
    level: str = "token",
    cap: float = math.inf,
    baseline=None,
) -> dict:
    r"""Exact moments of the corrected estimator with answers drawn from the sampler:
    ``mean`` :math:`\mathbb E_\mu[\hat g]` ``(D,)``, ``grad`` :math:`\nabla_\theta J` ``(D,)``,
    ``bias`` = ``mean - grad``, ``rel_bias`` :math:`\|\text{bias}\| / \|\nabla J\|`,
    ``var`` :math:`\operatorname{tr}\operatorname{Var}_\mu[\hat g]` (one answer per prompt),
    ``rel_var`` = ``var`` / :math:`\|\nabla J\|^2`."""
    g = estimator_gradients(theta, theta_mu, ans, r, correction, level, cap, baseline)
    mu = answer_probs(_t(theta_mu), ans).numpy()  # (P, n)
    mean_x = np.einsum("pn,pnd->pd", mu, g)  # (P, D)
    second = np.einsum("pn,pnd,pnd->p", mu, g, g)
    var = float((second - (mean_x**2).sum(-1)).sum())
    mean = mean_x.sum(0)
    grad = exact_gradient(theta, ans, r)
    bias = mean - grad
    gn2 = float(grad @ grad)
    return {
        "mean": mean,
        "grad": grad,
        "bias": bias,
        "rel_bias": float(np.linalg.norm(bias) / math.sqrt(gn2)),
        "var": var,
        "rel_var": var / gn2,
    }


def sequence_truncation_bias(
    theta, theta_mu, ans: Answers, r, correction: str = "tis", cap: float = math.inf, baseline=None
) -> np.ndarray:
    r"""The bias of the sequence-level ``"tis"`` or ``"mis"`` estimator as an expectation under
    the learner (module docstring): :math:`-\mathbb E_\pi[(1 - C/\rho)_+\, s]` or
    :math:`-\mathbb E_\pi[\mathbb 1[\rho > C]\, s]`, averaged over prompts, ``(D,)``."""
    theta, theta_mu, r = _check(theta, theta_mu, r, ans)
    if correction not in ("tis", "mis"):
        raise ValueError(f"correction must be 'tis' or 'mis', got {correction!r}")
    P = theta.shape[0]
    adv = _advantages(theta_mu, ans, r, baseline).numpy()
    th = _t(theta)
    pi = answer_probs(th, ans).numpy()
    rho = pi / answer_probs(_t(theta_mu), ans).numpy()

    def log_pi(t):
        return token_log_probs(t.reshape(theta.shape), ans).sum(-1).reshape(-1)

    score = torch.autograd.functional.jacobian(log_pi, th.reshape(-1)).reshape(P, ans.n, -1)
    with np.errstate(divide="ignore"):
        excess = np.clip(1.0 - cap / rho, 0.0, None) if correction == "tis" else 1.0 * (rho > cap)
    return -np.einsum("pn,pn,pnd->d", pi * excess, adv, score.numpy()) / P


def max_weights(theta, theta_mu, ans: Answers) -> dict:
    r"""The largest sequence weight :math:`\max_y \pi(y)/\mu(y)` and token weight
    :math:`\max_{h, a} \pi(a\mid h)/\mu(a\mid h)` over all prompts, answers and prefixes:
    a cap at or above them truncates nothing."""
    th, mu = _t(theta), _t(theta_mu)
    seq = float((answer_probs(th, ans) / answer_probs(mu, ans)).max())
    tok = float(torch.exp(torch.log_softmax(th, -1) - torch.log_softmax(mu, -1)).max())
    return {"sequence": seq, "token": tok}
