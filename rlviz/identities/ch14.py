r"""Chapter 14: GRPO's group baseline, the KL estimators and the normalisations, exactly.

The settings (bandits, trees, the book's tree) and the quantities the chapter also plots are
:mod:`rlviz.experiments.ch14`'s; the exact expectations are :mod:`rlviz.tabular.answer_tree`'s.
Expectations over groups enumerate all :math:`n^G` groups of ``G`` answers (the group size,
written :math:`K` in the checks' titles, as in the notes).
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz.experiments.answer_trees import bandit_setting, tree_setting
from rlviz.experiments.ch14 import (
    BANDIT_GROUP_SIZES,
    TREE_GROUP_SIZES,
    gradient_angle_and_ratio,
    k3_gradient_gap,
    prompt_gain,
    random_pairs,
    variance_along,
)
from rlviz.fn.stats import loglog_slope
from rlviz.tabular.answer_tree import (
    answer_kl,
    exact_gradient,
    expected_group_gradient,
    forward_kl_gradient,
    group_gradient_fn,
    k3_loss_gradient,
    kl_moments,
    offpolicy_kl,
    prefix_reverse_kl_gradient,
    reverse_kl_gradient,
    summed_kl_estimates,
    token_log_probs,
)
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


@identity(
    "ch14.mean_baseline_scale",
    chapter=14,
    title="group-mean baseline (r_i included): E[g_hat] = (K-1)/K grad J",
)
def mean_baseline_scale() -> Measure:
    return Measure(scale_errors("mean", lambda G: (G - 1) / G), CASES_DETAIL)


@identity(
    "ch14.loo_unbiased", chapter=14, title="leave-one-out baseline: E[g_hat] = grad J (unbiased)"
)
def loo_unbiased() -> Measure:
    return Measure(scale_errors("loo", lambda G: 1.0), CASES_DETAIL)


@identity(
    "ch14.drgrpo_constant_norm",
    chapter=14,
    title="token-level, constant normalisation 1/(K L) (Dr. GRPO): E[g_hat] = (K-1)/(K L) grad J",
)
def drgrpo_constant_norm() -> Measure:
    errs = []
    for seed in (0, 1):
        ans, theta, r = tree_setting(seed)
        g = exact_gradient(theta, ans, r)
        for G in TREE_GROUP_SIZES:
            e = expected_group_gradient(
                theta, ans, r, G, group_gradient_fn("mean", "token", "constant")
            )
            errs.append(np.abs(e - (G - 1) / (G * ans.max_len) * g).max())
    return Measure(float(max(errs)), "2 random trees (L=3) x K in {2,3}")


@identity(
    "ch14.length_norm_bias",
    chapter=14,
    kind="bound",
    tol=5.0,
    at_least=True,
    statistic="angle(E[g_hat], grad J) in degrees",
    title="per-sequence length normalisation 1/|y_i| (DeepSeekMath) tilts the expected gradient",
)
def length_norm_bias() -> Measure:
    angle, _ = gradient_angle_and_ratio(3, "mean", "token", "sequence")
    return Measure(angle, "book tree: uniform policy, easy + hard prompt, K=3")


@identity(
    "ch14.std_norm_bias",
    chapter=14,
    kind="bound",
    tol=1.1,
    at_least=True,
    statistic="c_8(0.1) / c_8(0.5)",
    title="std-normalised advantages weight a hard prompt (p=0.1) more than p=0.5 (K=8)",
)
def std_norm_bias() -> Measure:
    return Measure(
        prompt_gain(0.1, 8) / prompt_gain(0.5, 8),
        "binary reward; the mean baseline gives 1 (both (K-1)/K)",
    )


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
    errs = [
        float(((p * summed_kl_estimates(logp_t, logp_ref_t, ans, name)).sum(-1) - kl).abs().max())
        for name in ("k1", "k3")
    ]
    return max(errs)


@identity(
    "ch14.kl_estimators_unbiased",
    chapter=14,
    title="E_pi[k1] = E_pi[k3] = KL(pi || pi_ref) (outcomes; and per-token sums over answers)",
)
def kl_estimators_unbiased() -> Measure:
    errs = []
    for p, q in random_pairs():
        m = kl_moments(p, q)
        errs += [abs(m["mean_k1"] - m["kl"]), abs(m["mean_k3"] - m["kl"])]
    errs += [sequence_kl_errors(s) for s in (0, 1)]
    return Measure(float(max(errs)), "20 random pairs over 6 outcomes; 2 random trees")


@identity(
    "ch14.k3_nonnegative",
    chapter=14,
    kind="bound",
    tol=0.0,
    at_least=True,
    statistic="min_y k3(y)",
    title="k3 >= 0 for every outcome (k1 is not)",
)
def k3_nonnegative() -> Measure:
    mins = [kl_moments(p, q)["min_k3"] for p, q in random_pairs()]
    return Measure(float(min(mins)), "20 random pairs over 6 outcomes")


@identity(
    "ch14.k3_low_variance",
    chapter=14,
    kind="bound",
    tol=0.1,
    statistic="Var(k3) / Var(k1)",
    title="near pi_ref, k3 has a much lower variance than k1 (exact variances)",
)
def k3_low_variance() -> Measure:
    m = variance_along([0.1])[0]
    return Measure(
        m["var_k3"] / m["var_k1"], "6 outcomes, logits moved by 0.1 along a random direction"
    )


@identity(
    "ch14.k3_gradient_reverse_kl",
    chapter=14,
    title="E_pi[grad k3] with samples fixed = grad KL(pi_ref || pi), the reverse KL",
)
def k3_gradient_reverse_kl() -> Measure:
    errs = []
    for seed in range(3):
        ans, theta, _ = bandit_setting(seed)
        theta_ref = np.random.default_rng(seed + 50).normal(size=theta.shape)
        errs.append(
            np.abs(
                k3_loss_gradient(theta, theta_ref, ans) - reverse_kl_gradient(theta, theta_ref, ans)
            ).max()
        )
    return Measure(float(max(errs)), "3 random bandits (P=3, 5 answers)")


@identity(
    "ch14.k3_gradient_not_kl",
    chapter=14,
    kind="bound",
    tol=0.1,
    at_least=True,
    statistic="||E[grad k3] - grad KL|| / ||grad KL||",
    title="k3 inside the loss does not give the gradient of KL(pi || pi_ref)",
)
def k3_gradient_not_kl() -> Measure:
    return Measure(k3_gradient_gap(0), "random bandit (P=3, 5 answers), exact")


def _tree_and_ref(seed: int):
    ans, theta, _ = tree_setting(seed)
    return ans, theta, np.random.default_rng(seed + 100).normal(size=theta.shape)


@identity(
    "ch14.k3_gradient_multitoken",
    chapter=14,
    title="answers of several tokens: E_pi[grad sum_t k3] = sum_h P_pi(h) grad KL(pi_ref(.|h) || pi(.|h))",
)
def k3_gradient_multitoken() -> Measure:
    errs = []
    for seed in (0, 1):
        ans, theta, theta_ref = _tree_and_ref(seed)
        errs.append(
            np.abs(
                k3_loss_gradient(theta, theta_ref, ans)
                - prefix_reverse_kl_gradient(theta, theta_ref, ans)
            ).max()
        )
    return Measure(float(max(errs)), "2 random trees (L=3), prefixes weighted by pi_theta")


@identity(
    "ch14.k3_gradient_not_answer_reverse_kl",
    chapter=14,
    kind="bound",
    tol=0.1,
    at_least=True,
    statistic="min over 2 trees of ||E[grad sum k3] - grad KL(pi_ref || pi)|| / ||grad KL(pi_ref || pi)||",
    title="for several tokens it is not even the reverse KL of the answers",
)
def k3_gradient_not_answer_reverse_kl() -> Measure:
    gaps = []
    for seed in (0, 1):
        ans, theta, theta_ref = _tree_and_ref(seed)
        g3 = k3_loss_gradient(theta, theta_ref, ans)
        gr = reverse_kl_gradient(theta, theta_ref, ans)
        gaps.append(float(np.linalg.norm(g3 - gr) / np.linalg.norm(gr)))
    return Measure(min(gaps), "2 random trees (L=3)")


@identity(
    "ch14.k2_gradient_is_kl",
    chapter=14,
    title="one token: E_pi[grad k2] with samples fixed = grad KL(pi || pi_ref), the KL the formula names",
)
def k2_gradient_is_kl() -> Measure:
    errs = []
    for seed in range(3):
        ans, theta, _ = bandit_setting(seed)
        theta_ref = np.random.default_rng(seed + 50).normal(size=theta.shape)
        errs.append(
            np.abs(
                k3_loss_gradient(theta, theta_ref, ans, kl="k2")
                - forward_kl_gradient(theta, theta_ref, ans)
            ).max()
        )
    return Measure(float(max(errs)), "3 random bandits (P=3, 5 answers)")


OFFPOLICY_STEPS = (0.1, 0.3, 1.0)


def _offpolicy_rows(seed: int = 0):
    ans, theta_old, theta_ref = _tree_and_ref(seed)
    d = np.random.default_rng(seed + 7).normal(size=theta_old.shape)
    return [
        offpolicy_kl(theta_old + t * d, theta_old, theta_ref, ans) for t in (0.0,) + OFFPOLICY_STEPS
    ]


@identity(
    "ch14.offpolicy_kl_importance_weighted",
    chapter=14,
    title="after the first inner step (y ~ pi_old): E[(pi/pi_old) sum_t k] = KL(pi || pi_ref) for k1, k3; "
    "unweighted only at theta = theta_old",
)
def offpolicy_kl_importance_weighted() -> Measure:
    rows = _offpolicy_rows()
    errs = [abs(r[f"{k}_is"] - r["kl"]) for r in rows for k in ("k1", "k3")]
    errs += [abs(rows[0][k] - rows[0]["kl"]) for k in ("k1", "k3")]
    return Measure(
        float(max(errs)), f"random tree, theta = theta_old + t d, t in {(0.0,) + OFFPOLICY_STEPS}"
    )


@identity(
    "ch14.offpolicy_kl_bias",
    chapter=14,
    kind="bound",
    tol=0.01,
    at_least=True,
    statistic="min over k1, k3 of |E_old[sum k] - KL| at t = 0.1",
    title="after the first inner step the sample mean of k1 or k3 is biased for KL(pi_theta || pi_ref)",
)
def offpolicy_kl_bias() -> Measure:
    rows = _offpolicy_rows()
    bias = {k: [r[k] - r["kl"] for r in rows[1:]] for k in ("k1", "k3")}
    shown = "; ".join(f"{k}: " + ", ".join(f"{b:+.3f}" for b in v) for k, v in bias.items())
    return Measure(
        min(abs(bias["k1"][0]), abs(bias["k3"][0])),
        f"random tree, bias at t = {OFFPOLICY_STEPS}: {shown}",
    )


@identity(
    "ch14.k3_variance_rates",
    chapter=14,
    kind="bound",
    tol=0.1,
    statistic="max(|slope of Var k1 - 2|, |slope of Var k3 - 4|)",
    title="near pi_ref Var(k1) = O(t^2) and Var(k3) = O(t^4): log-log slopes of the exact variances",
)
def k3_variance_rates() -> Measure:
    ts = np.geomspace(1e-3, 1e-2, 5)
    rows = variance_along(ts)
    s1 = loglog_slope(ts, [r["var_k1"] for r in rows])[0]
    s3 = loglog_slope(ts, [r["var_k3"] for r in rows])[0]
    return Measure(
        max(abs(s1 - 2), abs(s3 - 4)),
        f"6 outcomes, t in [0.001, 0.01]; slopes {s1:.2f} and {s3:.2f}",
    )


@identity(
    "ch14.drgrpo_needs_mean_centring",
    chapter=14,
    kind="bound",
    tol=0.1,
    at_least=True,
    statistic="angle(E[g_hat], grad J) in degrees, std advantages",
    title="the constant normaliser keeps the direction of grad J only with mean-centred advantages "
    "(with std-normalised ones it tilts, K=4)",
)
def drgrpo_needs_mean_centring() -> Measure:
    angle, _ = gradient_angle_and_ratio(4, "std", "token", "constant")
    return Measure(angle, "book tree, token ratio, constant normaliser 1/(K L), K=4")
