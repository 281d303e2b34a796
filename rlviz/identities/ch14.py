r"""Chapter 14: GRPO's group baseline, the KL estimators and the normalisations, exactly.

Settings (:mod:`rlviz.tabular.answer_tree`): a *bandit* (answers of one token, :math:`V = 5`,
:math:`P = 3` prompts, random logits and real rewards, groups of :math:`K \in \{2, 3, 4\}`)
and a *tree* (answers of 1 to 3 tokens over ``a``, ``b`` and an end token, 15 answers,
:math:`P = 2` prompts, random logits and rewards, :math:`K \in \{2, 3\}`). Expectations over
groups enumerate all :math:`n^K` tuples of answers.
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz.tabular.answer_tree import (answer_probs, enumerate_answers, exact_gradient,
                                       expected_group_gradient, forward_kl_gradient,
                                       group_gradient_fn, k3_loss_gradient, kl_moments,
                                       reverse_kl_gradient, token_log_probs)
from rlviz.fn.stats import angle_deg
from rlviz.fn.grpo_loss import kl_k1, kl_k3
from rlviz.verify import Measure, identity

BANDIT_K = (2, 3, 4)
TREE_K = (2, 3)
TREE_WORDS = ("a", "b", "E")  # E = the end token


def bandit_setting(seed: int = 0, n_prompts: int = 3, n_answers: int = 5):
    """(answers, logits (P, 1, n), rewards (P, n)) of a random bandit."""
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(n_answers, 1)
    return ans, rng.normal(size=(n_prompts, 1, n_answers)), rng.normal(size=(n_prompts, n_answers))


def tree_setting(seed: int = 0, n_prompts: int = 2):
    """(answers, logits (P, 7, 3), rewards (P, 15) in {0, 1}) of a random tree policy."""
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(3, 3)
    theta = rng.normal(size=(n_prompts, ans.n_prefix, 3))
    return ans, theta, rng.integers(0, 2, size=(n_prompts, ans.n)).astype(float)


def answer_words(ans) -> list[str]:
    """The tree's answers as strings, e.g. ``'abE'``."""
    return ["".join(TREE_WORDS[t] for t in ans.tokens[k, :ans.length[k]]) for k in range(ans.n)]


def book_tree():
    r"""The chapter's illustration: uniform policy; prompt 0 is easy (correct: any answer
    starting with ``a``, success 1/3), prompt 1 hard (correct: ``abE`` only, 1/27)."""
    ans = enumerate_answers(3, 3)
    words = answer_words(ans)
    r = np.array([[float(w.startswith("a")) for w in words], [float(w == "abE") for w in words]])
    return ans, np.zeros((2, ans.n_prefix, 3)), r


def _cases():
    for ans, theta, r in (bandit_setting(0), bandit_setting(1)):
        for K in BANDIT_K:
            yield ans, theta, r, K
    ans, theta, r = tree_setting(0)
    for K in TREE_K:
        yield ans, theta, r, K


CASES_DETAIL = "2 random bandits (P=3, 5 answers) x K in {2,3,4}; tree (15 answers) x K in {2,3}"


def scale_errors(advantage: str, scale) -> float:
    """max |E[g_hat] - scale(K) grad J| over the cases, sequence-level ratio."""
    errs = []
    for ans, theta, r, K in _cases():
        g = exact_gradient(theta, ans, r)
        e = expected_group_gradient(theta, ans, r, K, group_gradient_fn(advantage))
        errs.append(np.abs(e - scale(K) * g).max())
    return float(max(errs))


@identity("ch14.mean_baseline_scale", chapter=14,
          title="group-mean baseline (r_i included): E[g_hat] = (K-1)/K grad J")
def mean_baseline_scale() -> Measure:
    return Measure(scale_errors("mean", lambda K: (K - 1) / K), CASES_DETAIL)


@identity("ch14.loo_unbiased", chapter=14,
          title="leave-one-out baseline: E[g_hat] = grad J (unbiased)")
def loo_unbiased() -> Measure:
    return Measure(scale_errors("loo", lambda K: 1.0), CASES_DETAIL)


@identity("ch14.drgrpo_constant_norm", chapter=14,
          title="token-level, constant normalisation 1/(K L) (Dr. GRPO): E[g_hat] = (K-1)/(K L) grad J")
def drgrpo_constant_norm() -> Measure:
    errs = []
    for seed in (0, 1):
        ans, theta, r = tree_setting(seed)
        g = exact_gradient(theta, ans, r)
        for K in TREE_K:
            e = expected_group_gradient(theta, ans, r, K, group_gradient_fn("mean", "token", "constant"))
            errs.append(np.abs(e - (K - 1) / (K * ans.max_len) * g).max())
    return Measure(float(max(errs)), "2 random trees (L=3) x K in {2,3}")


def normalisation_angles(K: int = 3) -> dict:
    """Angle (degrees) between E[g_hat] and grad J on :func:`book_tree`, per token-level
    length normalisation."""
    ans, theta, r = book_tree()
    g = exact_gradient(theta, ans, r)
    out = {norm: angle_deg(expected_group_gradient(theta, ans, r, K,
                                                   group_gradient_fn("mean", "token", norm)), g)
           for norm in ("sequence", "group", "constant")}
    return out


def prompt_gain(p: float, K: int, advantage: str = "std") -> float:
    r"""The factor :math:`c_K(p)` by which a group estimator scales one prompt's gradient:
    :math:`\mathbb E[\hat g] = c_K(p)\,\nabla J_x` for a prompt with binary reward and success
    probability :math:`p` (two answers, right and wrong; exact over all :math:`2^K` groups).
    With binary rewards every advantage of :data:`rlviz.fn.grpo_loss.ADVANTAGES` scales the gradient
    (:math:`\mathbb E[A_i \mid y_i]` depends on :math:`r(y_i)` only); ``"mean"`` gives
    :math:`(K-1)/K`, ``"loo"`` 1, ``"std"`` a factor that depends on :math:`p` when K >= 4."""
    ans = enumerate_answers(2, 1)
    theta = np.array([[[np.log(p), np.log(1 - p)]]])
    r = np.array([[1.0, 0.0]])
    e = expected_group_gradient(theta, ans, r, K, group_gradient_fn(advantage))
    return float(e[0] / exact_gradient(theta, ans, r)[0])


@identity("ch14.length_norm_bias", chapter=14, kind="bound", tol=5.0, at_least=True,
          statistic="angle(E[g_hat], grad J) in degrees",
          title="per-sequence length normalisation 1/|y_i| (DeepSeekMath) tilts the expected gradient")
def length_norm_bias() -> Measure:
    return Measure(normalisation_angles()["sequence"],
                   "book tree: uniform policy, easy + hard prompt, K=3")


@identity("ch14.std_norm_bias", chapter=14, kind="bound", tol=1.1, at_least=True,
          statistic="c_8(0.1) / c_8(0.5)",
          title="std-normalised advantages weight a hard prompt (p=0.1) more than p=0.5 (K=8)")
def std_norm_bias() -> Measure:
    return Measure(prompt_gain(0.1, 8) / prompt_gain(0.5, 8),
                   "binary reward; the mean baseline gives 1 (both (K-1)/K)")


# ---------------------------------------------------------------- KL estimators
def random_pairs(n_pairs: int = 20, n: int = 6, seed: int = 0):
    """Pairs (p, p_ref) of random distributions over n outcomes."""
    rng = np.random.default_rng(seed)
    for _ in range(n_pairs):
        a, b = rng.normal(size=(2, n)) * rng.uniform(0.2, 2.0)
        yield np.exp(a) / np.exp(a).sum(), np.exp(b) / np.exp(b).sum()


def sequence_kl_errors(seed: int = 0) -> float:
    r"""On a random tree: :math:`|\mathbb E_{y\sim\pi}[\sum_t k_{\cdot,t}] - \mathrm{KL}(\pi\|\pi_\text{ref})|`
    for the per-token :math:`k_1` and :math:`k_3` summed along each answer."""
    ans, theta, _ = tree_setting(seed)
    theta_ref = np.random.default_rng(seed + 100).normal(size=theta.shape)
    lt = token_log_probs(torch.tensor(theta), ans)
    lr = token_log_probs(torch.tensor(theta_ref), ans)
    p = lt.sum(-1).exp()
    kl = (p * (lt.sum(-1) - lr.sum(-1))).sum(-1)
    errs = []
    for fn in (kl_k1, kl_k3):
        est = (fn(lt, lr) * torch.as_tensor(ans.mask)).sum(-1)
        errs.append(float(((p * est).sum(-1) - kl).abs().max()))
    return max(errs)


@identity("ch14.kl_estimators_unbiased", chapter=14,
          title="E_pi[k1] = E_pi[k3] = KL(pi || pi_ref) (outcomes; and per-token sums over answers)")
def kl_estimators_unbiased() -> Measure:
    errs = []
    for p, q in random_pairs():
        m = kl_moments(p, q)
        errs += [abs(m["mean_k1"] - m["kl"]), abs(m["mean_k3"] - m["kl"])]
    errs += [sequence_kl_errors(s) for s in (0, 1)]
    return Measure(float(max(errs)), "20 random pairs over 6 outcomes; 2 random trees")


@identity("ch14.k3_nonnegative", chapter=14, kind="bound", tol=0.0, at_least=True,
          statistic="min_y k3(y)", title="k3 >= 0 for every outcome (k1 is not)")
def k3_nonnegative() -> Measure:
    mins = [kl_moments(p, q)["min_k3"] for p, q in random_pairs()]
    return Measure(float(min(mins)), "20 random pairs over 6 outcomes")


def variance_along(t, seed: int = 3, n: int = 6):
    r"""Exact variances of :math:`k_1` and :math:`k_3` and the KL for
    :math:`\pi = \operatorname{softmax}(z_\text{ref} + t\, d)`, per distance ``t``."""
    rng = np.random.default_rng(seed)
    z, d = rng.normal(size=n), rng.normal(size=n)
    q = np.exp(z) / np.exp(z).sum()
    rows = []
    for s in np.atleast_1d(t):
        a = z + s * d
        rows.append(kl_moments(np.exp(a) / np.exp(a).sum(), q))
    return rows


@identity("ch14.k3_low_variance", chapter=14, kind="bound", tol=0.1,
          statistic="Var(k3) / Var(k1)",
          title="near pi_ref, k3 has a much lower variance than k1 (exact variances)")
def k3_low_variance() -> Measure:
    m = variance_along([0.1])[0]
    return Measure(m["var_k3"] / m["var_k1"], "6 outcomes, logits moved by 0.1 along a random direction")


@identity("ch14.k3_gradient_reverse_kl", chapter=14,
          title="E_pi[grad k3] with samples fixed = grad KL(pi_ref || pi), the reverse KL")
def k3_gradient_reverse_kl() -> Measure:
    errs = []
    for seed in range(3):
        ans, theta, _ = bandit_setting(seed)
        theta_ref = np.random.default_rng(seed + 50).normal(size=theta.shape)
        errs.append(np.abs(k3_loss_gradient(theta, theta_ref, ans)
                           - reverse_kl_gradient(theta, theta_ref, ans)).max())
    return Measure(float(max(errs)), "3 random bandits (P=3, 5 answers)")


def k3_gradient_gap(seed: int = 0) -> float:
    """||E[grad k3] - grad KL(pi || pi_ref)|| / ||grad KL(pi || pi_ref)|| on a random bandit."""
    ans, theta, _ = bandit_setting(seed)
    theta_ref = np.random.default_rng(seed + 50).normal(size=theta.shape)
    g3 = k3_loss_gradient(theta, theta_ref, ans)
    gf = forward_kl_gradient(theta, theta_ref, ans)
    return float(np.linalg.norm(g3 - gf) / np.linalg.norm(gf))


@identity("ch14.k3_gradient_not_kl", chapter=14, kind="bound", tol=0.1, at_least=True,
          statistic="||E[grad k3] - grad KL|| / ||grad KL||",
          title="k3 inside the loss does not give the gradient of KL(pi || pi_ref)")
def k3_gradient_not_kl() -> Measure:
    return Measure(k3_gradient_gap(0), "random bandit (P=3, 5 answers), exact")


__all__ = ["bandit_setting", "tree_setting", "book_tree", "answer_words", "prompt_gain",
           "normalisation_angles", "random_pairs", "variance_along",
           "k3_gradient_gap", "answer_probs"]
