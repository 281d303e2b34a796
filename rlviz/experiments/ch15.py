r"""The settings and exact quantities of chapter 15 (the GRPO loss, term by term), shared by
its identity checks, its figures and the chapter.

All on chapter 14's enumerable answer tree (:mod:`rlviz.tabular.answer_tree`), float64, with the
exact gradients of :mod:`rlviz.tabular.grpo_exact`:

* :func:`length_setting`: one prompt, answers of 1 to 4 tokens over ``a``, ``b`` and an end
  token ``E``; right = starts with ``a``; a single logit (the end token's after a wrong start
  ``b``) sets how long the wrong answers are; :func:`aggregation_table` gives, per mode, the
  angle and norm ratio of the expected gradient to :math:`\nabla J` and the drift of the wrong
  answers' mean length;
* :func:`accumulation_gaps`: one fixed batch, split into micro-batches;
* :func:`advantage_table`: none / group std / batch std on chapter 14's book tree;
* :func:`kl_table`: where the KL estimator goes and what its expected gradient is.
"""

from __future__ import annotations

import numpy as np
import torch

from rlviz.experiments.addition_runs import variant, variant_table
from rlviz.experiments.answer_trees import answer_words, book_tree, tree_setting
from rlviz.fn.grpo_aggregation import AGG_MODES
from rlviz.fn.stats import angle_and_norm_ratio
from rlviz.tabular.answer_tree import (
    answer_probs,
    enumerate_answers,
    exact_gradient,
    expected_group_gradient,
    forward_kl_gradient,
)
from rlviz.tabular.grpo_exact import (
    aggregation_objective,
    batch_gradient,
    expected_batch_gradient,
    kl_gradient,
    mean_length_gradient,
)

__all__ = [
    "TRAINED_VARIANTS",
    "TRAINED_STEPS",
    "MAX_LEN",
    "WRONG_STOP_LOGITS",
    "AGG_GROUP_SIZES",
    "length_setting",
    "wrong_answer_length",
    "aggregation_table",
    "ACCUMULATION_SPLITS",
    "accumulation_batch",
    "accumulation_gaps",
    "ADVANTAGE_KINDS",
    "advantage_table",
    "KL_COMBINATIONS",
    "kl_setting",
    "kl_table",
]

MAX_LEN = 4
WRONG_STOP_LOGITS = (4.0, 2.0, 1.0, 0.0, -1.0, -2.0, -4.0)  # end-token logit after "b"
AGG_GROUP_SIZES = (2, 3)
RIGHT_STOP_LOGIT = 2.0  # end-token logit after "a": right answers are mostly "aE"


def length_setting(wrong_stop_logit: float = 0.0):
    r"""(answers, logits ``(1, 15, 3)``, rewards ``(1, 31)``, wrong ``(1, 31)`` bool): one
    prompt, answers of at most 4 tokens over ``a``, ``b``, ``E``; reward 1 for answers starting
    with ``a``. Logits 0 except the end token's after a first ``a`` (2: right answers are short)
    and after a first ``b`` (``wrong_stop_logit``: the lower, the longer the wrong answers).
    ``wrong`` marks the answers starting with ``b``."""
    ans = enumerate_answers(3, MAX_LEN)
    theta = np.zeros((1, ans.n_prefix, 3))
    for k in range(ans.n):
        first = ans.tokens[k, 0]
        for t in range(1, ans.length[k]):  # the prefixes after the first token
            if first == 0:
                theta[0, ans.node[k, t], 2] = RIGHT_STOP_LOGIT
            elif first == 1:
                theta[0, ans.node[k, t], 2] = wrong_stop_logit
    words = answer_words(ans)
    r = np.array([[float(w.startswith("a")) for w in words]])
    wrong = np.array([[w.startswith("b") for w in words]])
    return ans, theta, r, wrong


def _tensor(theta) -> torch.Tensor:
    return torch.as_tensor(theta, dtype=torch.float64)


def wrong_answer_length(wrong_stop_logit: float) -> float:
    """The mean length of the wrong answers that start with ``b`` in :func:`length_setting`."""
    ans, theta, _, wrong = length_setting(wrong_stop_logit)
    p = answer_probs(_tensor(theta), ans).numpy()[0]
    return float((p * ans.length * wrong[0]).sum() / (p * wrong[0]).sum())


def aggregation_table(wrong_stop_logit: float = 0.0, group_size: int = 2, modes=AGG_MODES):
    r"""``{mode: (angle to grad J in degrees, |E g| / |grad J|, length drift)}`` on
    :func:`length_setting`, mean-centred advantages, groups of ``group_size``. The drift is
    :math:`\nabla \mathbb E[|y| \mid y_1 = b] \cdot \mathbb E[\hat g] / \|\mathbb E[\hat g]\|`:
    how fast the wrong answers' mean length grows per unit step along the expected update."""
    ans, theta, r, wrong = length_setting(wrong_stop_logit)
    g = exact_gradient(theta, ans, r)
    drift = mean_length_gradient(theta, ans, wrong)
    out = {}
    for mode in modes:
        e = expected_group_gradient(theta, ans, r, group_size, aggregation_objective(mode))
        angle, ratio = angle_and_norm_ratio(e, g)
        out[mode] = (angle, ratio, float(drift @ e / np.linalg.norm(e)))
    return out


# ---------------------------------------------------------------- accumulation
# micro-batch sizes (in groups) of a batch of 4 groups: equal halves, unequal, one per group
ACCUMULATION_SPLITS = ((2, 2), (1, 3), (1, 1, 1, 1))


def accumulation_batch(seed: int = 0, n_prompts: int = 4, group_size: int = 4):
    """(answers, logits ``(4, 7, 3)``, rewards ``(4, 15)``, groups ``(4, 4)``): chapter 14's
    random tree with four prompts and one fixed group of answers per prompt, drawn from the
    policy (seeded), so the answers' lengths differ across micro-batches."""
    ans, theta, r = tree_setting(seed, n_prompts)
    rng = np.random.default_rng(seed + 11)
    p = answer_probs(_tensor(theta), ans).numpy()
    groups = np.array(
        [rng.choice(ans.n, size=group_size, p=p[x] / p[x].sum()) for x in range(n_prompts)]
    )
    return ans, theta, r, groups


def accumulation_gaps(seed: int = 0, splits=ACCUMULATION_SPLITS, global_counts=False) -> dict:
    r"""``{mode: {sizes: ||g_acc - g_full|| / ||g_full||}}``: how far the gradient accumulated
    over micro-batches (:func:`rlviz.fn.grpo_aggregation.accumulated`, local or global counts)
    is from the full batch's, for the batch of :func:`accumulation_batch`."""
    ans, theta, r, groups = accumulation_batch(seed)
    out = {}
    for mode in AGG_MODES:
        full = batch_gradient(theta, ans, groups, r, mode)
        out[mode] = {
            sizes: float(
                np.linalg.norm(
                    batch_gradient(theta, ans, groups, r, mode, sizes, global_counts=global_counts)
                    - full
                )
                / np.linalg.norm(full)
            )
            for sizes in splits
        }
    return out


# ---------------------------------------------------------------- advantage normalisation
ADVANTAGE_KINDS = ("mean", "std", "batch-std")  # names of rlviz.fn.grpo_loss.ADVANTAGES


def advantage_table(mode: str = "seq-mean-token-sum", group_size: int = 2) -> dict:
    """``{kind: (angle to grad J in degrees, |E g| / |grad J|)}`` on chapter 14's book tree
    (an easy and a hard prompt) for the advantage normalisations ``none``, ``group`` std and
    ``batch`` std, exact over every batch (one group per prompt)."""
    ans, theta, r = book_tree()
    g = exact_gradient(theta, ans, r)
    return {
        kind: angle_and_norm_ratio(
            expected_batch_gradient(theta, ans, r, group_size, mode, kind), g
        )
        for kind in ADVANTAGE_KINDS
    }


# ---------------------------------------------------------------- KL placement
# name -> (estimator, placement of rlviz.tabular.grpo_exact.kl_gradient)
KL_COMBINATIONS = {
    "k1 in the reward": ("k1", "reward"),
    "k3 in the reward": ("k3", "reward"),
    "k1 in the loss": ("k1", "loss"),
    "k2 in the loss": ("k2", "loss"),
    "k3 in the loss (DeepSeekMath)": ("k3", "loss"),
    "k1 in the loss, importance-corrected": ("k1", "loss-is"),
    "k3 in the loss, importance-corrected": ("k3", "loss-is"),
    "k3 x token ratio in the loss (TRL default)": ("k3", "loss-is-token"),
    "k2 of the whole answer in the loss": ("k2", "loss-seq"),
}


def kl_setting(seed: int = 0, step: float = 0.0):
    r"""(answers, theta, theta_old, theta_ref): chapter 14's random tree (one to three tokens)
    with a random reference; :math:`\theta = \theta_\text{old} + t\,d` (``step`` = t, a random
    direction d): ``step`` 0 is on-policy, > 0 after inner steps (off-policy)."""
    ans, theta_old, _ = tree_setting(seed)
    theta_ref = np.random.default_rng(seed + 100).normal(size=theta_old.shape)
    d = np.random.default_rng(seed + 7).normal(size=theta_old.shape)
    return ans, theta_old + step * d, theta_old, theta_ref


def kl_table(seed: int = 0, steps=(0.0, 0.3)) -> dict:
    r"""``{name: {step: ||E[grad] - grad KL|| / ||grad KL||}}`` for each combination of
    :data:`KL_COMBINATIONS`, with :math:`\nabla\mathrm{KL}(\pi_\theta\|\pi_\text{ref})` of
    :func:`rlviz.tabular.answer_tree.forward_kl_gradient` (0 = exactly the KL's gradient)."""
    out = {name: {} for name in KL_COMBINATIONS}
    for t in steps:
        ans, theta, theta_old, theta_ref = kl_setting(seed, t)
        gk = forward_kl_gradient(theta, theta_ref, ans)
        for name, (kl, placement) in KL_COMBINATIONS.items():
            e = kl_gradient(theta, theta_ref, ans, kl, placement, theta_old)
            out[name][t] = float(np.linalg.norm(e - gk) / np.linalg.norm(gk))
    return out


# ---------------------------------------------------------------- trained on the addition task
# the loss aggregation modes, dynamic sampling and the KL's placement, trained from chapter
# 14's reference on the addition task over five splits x three seeds (id -> Variant; run by
# rlviz.experiments.addition_runs.run_variants)
_PRACTICE = {"term": "token", "loss_agg": "token-mean"}
TRAINED_VARIANTS = variant_table(
    variant(
        "smtm", "seq-mean-token-mean (GRPO paper)", term="token", loss_agg="seq-mean-token-mean"
    ),
    variant("token-mean", "token-mean (DAPO)", **_PRACTICE),
    variant(
        "drgrpo",
        "seq-mean-token-sum-norm (Dr. GRPO)",
        term="token",
        loss_agg="seq-mean-token-sum-norm",
    ),
    # dropped without refill: with beta = 0 this only rescales a step (Adam absorbs it); DAPO's
    # dynamic sampling refills the batch with fresh prompts (chapter 15, section 15.4)
    variant(
        "drop-zero-var",
        "token-mean, zero-variance groups dropped",
        **_PRACTICE,
        dynamic_sampling=True,
    ),
    variant("kl-loss", "KL in the loss (k3, beta = 0.04)", **_PRACTICE, beta=0.04),
    variant(
        "kl-reward",
        "KL in the reward (k1, beta = 0.04)",
        **_PRACTICE,
        beta=0.04,
        kl_placement="reward",
    ),
)
TRAINED_STEPS = 30
