r"""Chapter 14: GRPO's group baseline, the KL estimators and the normalisations, exactly.

The settings (bandits, trees, the book's tree) and the quantities the chapter also plots are
:mod:`rlviz.experiments.ch14`'s; the exact expectations are :mod:`rlviz.tabular.answer_tree`'s.
Expectations over groups enumerate all :math:`n^G` groups of ``G`` answers (the group size,
written :math:`K` in the checks' titles, as in the notes).
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz.experiments.ch14 import (BANDIT_GROUP_SIZES, TREE_GROUP_SIZES, bandit_setting,
                                    gradient_angle_and_ratio, k3_gradient_gap, prompt_gain,
                                    random_pairs, tree_setting, variance_along)
from rlviz.tabular.answer_tree import (answer_kl, exact_gradient, expected_group_gradient,
                                       group_gradient_fn, k3_loss_gradient, kl_moments,
                                       reverse_kl_gradient, summed_kl_estimates, token_log_probs)
from rlviz.verify import Measure, identity

__all__ = ["scale_errors", "sequence_kl_errors"]


def _cases():
    for ans, theta, r in (bandit_setting(0), bandit_setting(1)):
        for G in BANDIT_GROUP_SIZES:
            yield ans, theta, r, G
    ans, theta, r = tree_setting(0)
    for G in TREE_GROUP_SIZES:
        yield ans, theta, r, G


CASES_DETAIL = "2 random bandits (P=3, 5 answers) x K in {2,3,4}; tree (15 answers) x K in {2,3}"


def scale_errors(advantage: str, scale) -> float:
    """max |E[g_hat] - scale(G) grad J| over the cases, sequence-level ratio."""
    errs = []
    for ans, theta, r, G in _cases():
        g = exact_gradient(theta, ans, r)
        e = expected_group_gradient(theta, ans, r, G, group_gradient_fn(advantage))
        errs.append(np.abs(e - scale(G) * g).max())
    return float(max(errs))


@identity("ch14.mean_baseline_scale", chapter=14,
          title="group-mean baseline (r_i included): E[g_hat] = (K-1)/K grad J")
def mean_baseline_scale() -> Measure:
    return Measure(scale_errors("mean", lambda G: (G - 1) / G), CASES_DETAIL)


@identity("ch14.loo_unbiased", chapter=14,
          title="leave-one-out baseline: E[g_hat] = grad J (unbiased)")
def loo_unbiased() -> Measure:
    return Measure(scale_errors("loo", lambda G: 1.0), CASES_DETAIL)


@identity("ch14.drgrpo_constant_norm", chapter=14,
          title="token-level, constant normalisation 1/(K L) (Dr. GRPO): E[g_hat] = (K-1)/(K L) grad J")
def drgrpo_constant_norm() -> Measure:
    errs = []
    for seed in (0, 1):
        ans, theta, r = tree_setting(seed)
        g = exact_gradient(theta, ans, r)
        for G in TREE_GROUP_SIZES:
            e = expected_group_gradient(theta, ans, r, G, group_gradient_fn("mean", "token", "constant"))
            errs.append(np.abs(e - (G - 1) / (G * ans.max_len) * g).max())
    return Measure(float(max(errs)), "2 random trees (L=3) x K in {2,3}")


@identity("ch14.length_norm_bias", chapter=14, kind="bound", tol=5.0, at_least=True,
          statistic="angle(E[g_hat], grad J) in degrees",
          title="per-sequence length normalisation 1/|y_i| (DeepSeekMath) tilts the expected gradient")
def length_norm_bias() -> Measure:
    angle, _ = gradient_angle_and_ratio(3, "mean", "token", "sequence")
    return Measure(angle, "book tree: uniform policy, easy + hard prompt, K=3")


@identity("ch14.std_norm_bias", chapter=14, kind="bound", tol=1.1, at_least=True,
          statistic="c_8(0.1) / c_8(0.5)",
          title="std-normalised advantages weight a hard prompt (p=0.1) more than p=0.5 (K=8)")
def std_norm_bias() -> Measure:
    return Measure(prompt_gain(0.1, 8) / prompt_gain(0.5, 8),
                   "binary reward; the mean baseline gives 1 (both (K-1)/K)")


# ---------------------------------------------------------------- KL estimators
def sequence_kl_errors(seed: int = 0) -> float:
    r"""On a random tree: :math:`|\mathbb E_{y\sim\pi}[\sum_t k_{\cdot,t}] - \mathrm{KL}(\pi\|\pi_\text{ref})|`
    for the per-token :math:`k_1` and :math:`k_3` summed along each answer."""
    ans, theta, _ = tree_setting(seed)
    theta_ref = np.random.default_rng(seed + 100).normal(size=theta.shape)
    logp_t = token_log_probs(torch.tensor(theta), ans)
    logp_ref_t = token_log_probs(torch.tensor(theta_ref), ans)
    p = logp_t.sum(-1).exp()
    kl = answer_kl(logp_t, logp_ref_t)
    errs = [float(((p * summed_kl_estimates(logp_t, logp_ref_t, ans, name)).sum(-1) - kl).abs().max())
            for name in ("k1", "k3")]
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


@identity("ch14.k3_gradient_not_kl", chapter=14, kind="bound", tol=0.1, at_least=True,
          statistic="||E[grad k3] - grad KL|| / ||grad KL||",
          title="k3 inside the loss does not give the gradient of KL(pi || pi_ref)")
def k3_gradient_not_kl() -> Measure:
    return Measure(k3_gradient_gap(0), "random bandit (P=3, 5 answers), exact")
