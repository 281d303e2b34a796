r"""Chapter 15: the GRPO loss term by term (aggregation, accumulation, advantages, KL), exactly.

Settings and quantities are :mod:`rlviz.experiments.ch15`'s; exact gradients
:mod:`rlviz.tabular.grpo_exact`'s; aggregation formulas :mod:`rlviz.fn.grpo_aggregation`'s.
Group size written K in the titles (the notes' letter).
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz.experiments.answer_trees import book_tree, tree_setting
from rlviz.experiments.ch15 import (
    ACCUMULATION_SPLITS,
    AGG_GROUP_SIZES,
    KL_COMBINATIONS,
    MAX_LEN,
    WRONG_STOP_LOGITS,
    accumulation_gaps,
    advantage_table,
    aggregation_table,
    kl_setting,
    kl_table,
    length_setting,
)
from rlviz.fn.grpo_aggregation import (
    aggregate,
    group_aggregate,
    rloo_advantages_reference,
    zero_variance_probability,
)
from rlviz.fn.grpo_loss import group_advantages, length_normalised, mixed_groups
from rlviz.tabular.answer_tree import exact_gradient, expected_group_gradient
from rlviz.tabular.grpo_exact import (
    aggregation_objective,
    kl_gradient,
    success_probability,
    zero_variance_fraction,
)
from rlviz.verify import Measure, identity

__all__ = ["random_terms"]


def random_terms(seed: int = 0, B: int = 3, G: int = 4, L: int = 5):
    """Random per-token terms ``(B, G, L)`` and a mask with answers of 1 to L tokens."""
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(B, G, L)))
    lengths = rng.integers(1, L + 1, size=(B, G))
    mask = torch.tensor(np.arange(L)[None, None, :] < lengths[..., None])
    return x, mask


# ---------------------------------------------------------------- aggregation
@identity(
    "ch15.agg_modes_match_ch14",
    chapter=15,
    title="verl's seq-mean-token-mean / token-mean / seq-mean-token-sum-norm of one group "
    "= chapter 14's 1/|y_i|, 1/sum|y|, 1/(K L); a batch = one group of all its answers",
)
def agg_modes_match_ch14() -> Measure:
    errs = []
    pairs = (
        ("seq-mean-token-mean", "sequence"),
        ("token-mean", "group"),
        ("seq-mean-token-sum-norm", "constant"),
    )
    for seed in range(5):
        x, m = random_terms(seed)
        for mode, norm in pairs:
            errs.append(
                float((group_aggregate(x, m, mode) - length_normalised(x, m, norm)).abs().max())
            )
            B, G, L = x.shape
            whole = group_aggregate(x.reshape(1, B * G, L), m.reshape(1, B * G, L), mode)[0]
            errs.append(abs(float(aggregate(x, m, mode) - whole)))
    return Measure(max(errs), "5 random batches (B=3, K=4, L=5, lengths 1..5)")


def _unbiased_errors() -> float:
    errs = []
    for c in WRONG_STOP_LOGITS[::3]:
        ans, theta, r, _ = length_setting(c)
        g = exact_gradient(theta, ans, r)
        for G in AGG_GROUP_SIZES:
            for mode, scale in (
                ("seq-mean-token-sum", (G - 1) / G),
                ("seq-mean-token-sum-norm", (G - 1) / (G * MAX_LEN)),
            ):
                e = expected_group_gradient(theta, ans, r, G, aggregation_objective(mode))
                errs.append(np.abs(e - scale * g).max())
    return float(max(errs))


@identity(
    "ch15.token_sum_keeps_direction",
    chapter=15,
    title="seq-mean-token-sum: E[g_hat] = (K-1)/K grad J; seq-mean-token-sum-norm: (K-1)/(K L) grad J "
    "(token ratio, mean-centred advantages, any answer lengths)",
)
def token_sum_keeps_direction() -> Measure:
    return Measure(
        _unbiased_errors(),
        f"length tree (L=4), wrong-answer end logits {WRONG_STOP_LOGITS[::3]}, K in {AGG_GROUP_SIZES}",
    )


@identity(
    "ch15.length_norm_tilts",
    chapter=15,
    kind="bound",
    tol=3.0,
    at_least=True,
    statistic="min angle(E[g_hat], grad J) in degrees over the lengths, seq-mean-token-mean and token-mean",
    title="normalising by the answers' lengths (per answer or per group) tilts the expected gradient",
)
def length_norm_tilts() -> Measure:
    angles = [
        t[mode][0]
        for c in WRONG_STOP_LOGITS[::3]
        for t in [aggregation_table(c, 2, ("seq-mean-token-mean", "token-mean"))]
        for mode in t
    ]
    return Measure(float(min(angles)), "length tree (L=4), K=2")


@identity(
    "ch15.length_norm_lengthens_wrong",
    chapter=15,
    kind="bound",
    tol=0.005,
    at_least=True,
    statistic="min over the two modes of d E[|y| | wrong] per unit step along E[g_hat]",
    title="length-normalised losses make wrong answers longer (first order; 0 for the token-sum modes)",
)
def length_norm_lengthens_wrong() -> Measure:
    t = aggregation_table(0.0, 2, ("seq-mean-token-mean", "token-mean"))
    return Measure(float(min(v[2] for v in t.values())), "length tree, end logit 0 after b, K=2")


# ---------------------------------------------------------------- gradient accumulation
_SEQ_MODES = ("seq-mean-token-mean", "seq-mean-token-sum-norm", "seq-mean-token-sum")
_EQUAL = tuple(s for s in ACCUMULATION_SPLITS if len(set(s)) == 1)


@identity(
    "ch15.accumulation_seq_modes",
    chapter=15,
    title="micro-batches of equal size, losses averaged: the accumulated gradient = the full batch's "
    "for the seq-mean modes",
)
def accumulation_seq_modes() -> Measure:
    gaps = accumulation_gaps(0, _EQUAL)
    return Measure(
        max(gaps[m][s] for m in _SEQ_MODES for s in _EQUAL),
        f"random tree, 4 prompts x K=4, micro-batches {_EQUAL} (relative error)",
    )


@identity(
    "ch15.accumulation_token_mean_differs",
    chapter=15,
    kind="bound",
    tol=0.01,
    at_least=True,
    statistic="||g_acc - g_full|| / ||g_full||, token-mean, 2 + 2 groups",
    title="token-mean accumulated with per-micro-batch token counts is not the full-batch gradient",
)
def accumulation_token_mean_differs() -> Measure:
    return Measure(
        accumulation_gaps(0, ((2, 2),))["token-mean"][(2, 2)], "random tree, 4 prompts x K=4"
    )


@identity(
    "ch15.accumulation_global_counts",
    chapter=15,
    title="every micro-batch normalised by the whole batch's answer and token counts, losses summed: "
    "the full-batch gradient in every mode and every split",
)
def accumulation_global_counts() -> Measure:
    gaps = accumulation_gaps(0, global_counts=True)
    return Measure(
        max(v for row in gaps.values() for v in row.values()),
        f"random tree, 4 modes x micro-batches {ACCUMULATION_SPLITS} (relative error)",
    )


# ---------------------------------------------------------------- advantages
@identity(
    "ch15.rloo_is_drgrpo_scaled",
    chapter=15,
    title="RLOO's advantage r_i - mean_{j!=i} r_j = K/(K-1) (r_i - mean_j r_j): RLOO = Dr. GRPO x K/(K-1)",
)
def rloo_is_drgrpo_scaled() -> Measure:
    rng = np.random.default_rng(0)
    errs = []
    for G in (2, 3, 5, 8):
        r = rng.normal(size=(4, G))
        centred = group_advantages(torch.tensor(r), "mean").numpy()
        errs.append(np.abs(rloo_advantages_reference(r) - G / (G - 1) * centred).max())
    return Measure(float(max(errs)), "random rewards, 4 groups x K in {2, 3, 5, 8}")


@identity(
    "ch15.batch_std_tilts",
    chapter=15,
    kind="bound",
    tol=0.1,
    at_least=True,
    statistic="angle(E[g_hat], grad J) in degrees, batch std, seq-mean-token-sum",
    title="one std for the whole batch reweights the prompts by the other prompts' rewards: "
    "the expected gradient tilts",
)
def batch_std_tilts() -> Measure:
    return Measure(
        advantage_table()["batch-std"][0],
        "book tree (easy + hard prompt), K=2, exact over all batches",
    )


@identity(
    "ch15.zero_variance_closed_form",
    chapter=15,
    title="binary reward: P(group all right or all wrong) = p^K + (1-p)^K (enumeration)",
)
def zero_variance_closed_form() -> Measure:
    errs = []
    for ans, theta, r in (tree_setting(0), tree_setting(1), book_tree()):
        p = success_probability(theta, ans, r)
        for G in (2, 3, 4):
            errs.append(
                np.abs(
                    zero_variance_fraction(theta, ans, r, G) - zero_variance_probability(p, G)
                ).max()
            )
    return Measure(float(max(errs)), "2 random trees + book tree, K in {2, 3, 4}")


@identity(
    "ch15.dynamic_sampling_rescales",
    chapter=15,
    title="dropping zero-variance groups and resampling the same prompt until its group is mixed: "
    "E[g_hat | mixed] = E[g_hat] / (1 - p^K - (1-p)^K), prompt by prompt",
)
def dynamic_sampling_rescales() -> Measure:
    errs = []
    ans, theta, r = tree_setting(0)
    P = theta.shape[0]
    p = success_probability(theta, ans, r)
    for G in (2, 3):
        keep = 1 - zero_variance_probability(p, G)
        for adv in ("mean", "std"):
            f = aggregation_objective("seq-mean-token-sum", adv)
            e = expected_group_gradient(theta, ans, r, G, f).reshape(P, -1)
            ds = expected_group_gradient(theta, ans, r, G, f, condition=mixed_groups).reshape(P, -1)
            errs.append(np.abs(ds - e / keep[:, None]).max())
    return Measure(
        float(max(errs)), "random tree (2 prompts), K in {2, 3}, advantages none / group std"
    )


@identity(
    "ch15.dynamic_sampling_refill_uniform",
    chapter=15,
    title="dropping zero-variance groups and refilling with fresh prompts (DAPO, verl's "
    "filter_groups): E[g_hat | kept] = E[g_hat] / (1 - E_x[p^K + (1-p)^K]), one factor for every "
    "prompt",
)
def dynamic_sampling_refill_uniform() -> Measure:
    errs = []
    ans, theta, r = tree_setting(0)
    p = success_probability(theta, ans, r)
    for G in (2, 3):
        keep = float(np.mean(1 - zero_variance_probability(p, G)))
        for adv in ("mean", "std"):
            f = aggregation_objective("seq-mean-token-sum", adv)
            e = expected_group_gradient(theta, ans, r, G, f)
            ds = expected_group_gradient(
                theta, ans, r, G, f, condition=mixed_groups, refill="batch"
            )
            errs.append(np.abs(ds - e / keep).max())
    return Measure(float(max(errs)), "random tree (2 prompts), K in {2, 3}, advantages mean / std")


# ---------------------------------------------------------------- KL placement
_EXACT_KL = (
    "k1 in the reward",
    "k1 in the loss, importance-corrected",
    "k3 in the loss, importance-corrected",
)
_SEQ_K2 = "k2 of the whole answer in the loss"  # exact on-policy only
_TRL_K3 = "k3 x token ratio in the loss (TRL default)"


@identity(
    "ch15.kl_gradient_exact_combinations",
    chapter=15,
    title="grad KL(pi || pi_ref) exactly: k1 in the reward (on-policy); k1 or k3 in the loss times the "
    "differentiated ratio pi/pi_old (on- and off-policy)",
)
def kl_gradient_exact_combinations() -> Measure:
    tab = kl_table(0, (0.0, 0.3))
    errs = [tab["k1 in the reward"][0.0]] + [tab[n][t] for n in _EXACT_KL[1:] for t in (0.0, 0.3)]
    return Measure(
        float(max(errs)), "random tree (L=3), theta = theta_old + t d, t in {0, 0.3} (relative)"
    )


@identity(
    "ch15.k1_loss_zero_gradient",
    chapter=15,
    title="k1 in the loss with samples fixed (on-policy): E[grad k1] = E[grad log pi] = 0",
)
def k1_loss_zero_gradient() -> Measure:
    errs = []
    for seed in (0, 1):
        ans, theta, theta_old, theta_ref = kl_setting(seed, 0.0)
        errs.append(np.abs(kl_gradient(theta, theta_ref, ans, "k1", "loss", theta_old)).max())
    return Measure(float(max(errs)), "2 random trees (L=3)")


@identity(
    "ch15.kl_other_combinations",
    chapter=15,
    kind="bound",
    tol=0.05,
    at_least=True,
    statistic="min relative error ||E[grad] - grad KL|| / ||grad KL|| over the other combinations",
    title="every other placement misses grad KL(pi || pi_ref): k3 in the reward, k1/k2/k3 in the loss, "
    "k1 in the reward off-policy",
)
def kl_other_combinations() -> Measure:
    tab = kl_table(0, (0.0, 0.3))
    others = [
        tab[n][t]
        for n in KL_COMBINATIONS
        if n not in _EXACT_KL
        for t in (0.0, 0.3)
        if not (n == _SEQ_K2 and t == 0.0)
    ]
    others.append(tab["k1 in the reward"][0.3])
    return Measure(float(min(others)), "random tree (L=3), t in {0, 0.3}")


@identity(
    "ch15.sequence_k2_is_kl_gradient",
    chapter=15,
    title="k2 of the whole answer, (sum_t log pi_t / pi_ref,t)^2 / 2, in the loss: E[grad] = grad "
    "KL(pi || pi_ref) exactly on-policy (the per-token sum of k2 misses it)",
)
def sequence_k2_is_kl_gradient() -> Measure:
    errs = [kl_table(seed, (0.0,))[_SEQ_K2][0.0] for seed in (0, 1, 2)]
    return Measure(float(max(errs)), "3 random trees (L=3), on-policy (relative)")


@identity(
    "ch15.trl_k3_token_ratio_is_per_token_k2",
    chapter=15,
    statistic="max ||E[grad (rho_t k3_t)] - E[grad k2_t]|| over trees",
    title="TRL's use_bias_correction_kl (k3 times each token's ratio) has on-policy the gradient of "
    "the per-token k2, not grad KL",
)
def trl_k3_token_ratio_is_per_token_k2() -> Measure:
    errs = []
    for seed in (0, 1, 2):
        ans, theta, theta_old, theta_ref = kl_setting(seed, 0.0)
        g_trl = kl_gradient(theta, theta_ref, ans, "k3", "loss-is-token", theta_old)
        g_k2 = kl_gradient(theta, theta_ref, ans, "k2", "loss", theta_old)
        errs.append(float(np.linalg.norm(g_trl - g_k2)))
    return Measure(max(errs), "3 random trees (L=3), on-policy")
