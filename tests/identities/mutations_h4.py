"""Mutations for the rows of chapter 15 (the GRPO loss term by term; merged by test_mutations.py)."""

from __future__ import annotations

import importlib

import numpy as np


def _ch15():
    return importlib.import_module("rlviz.identities.ch15")


def _grpo_exact():
    return importlib.import_module("rlviz.tabular.grpo_exact")


def _wrap(mp, mod, name, make):
    mp.setattr(mod, name, make(getattr(mod, name)))


def _token_mean_over_answers(f):
    """token-mean divided by the number of answers instead of the number of tokens."""
    return lambda x, m, mode="token-mean", **k: f(
        x, m, "seq-mean-token-sum" if mode == "token-mean" else mode, **k
    )


def _always_token_sum(f):
    return lambda mode, *a, **k: f("seq-mean-token-sum", *a, **k)


def _length_normalised_sum(f):
    """seq-mean-token-sum silently divides each answer by its length."""
    return lambda mode, *a, **k: f(
        "seq-mean-token-mean" if mode == "seq-mean-token-sum" else mode, *a, **k
    )


def _accumulate_sum_not_mean(f):
    """The micro-batch losses summed, the division by the number of steps forgotten."""

    def acc(x, m, mode, sizes, *, global_counts=False, norm=None):
        out = f(x, m, mode, sizes, global_counts=global_counts, norm=norm)
        return out if global_counts else out * len(sizes)

    return acc


def _global_tokens_everywhere(f):
    """Every micro-batch of token-mean divided by the whole batch's tokens (the fix applied)."""

    def acc(x, m, mode, sizes, *, global_counts=False, norm=None):
        if mode == "token-mean" and not global_counts:
            return f(x, m, mode, sizes, global_counts=True, norm=norm)
        return f(x, m, mode, sizes, global_counts=global_counts, norm=norm)

    return acc


def _local_counts_summed(f):
    """global_counts requested, but each micro-batch still uses its own counts (then summed)."""

    def acc(x, m, mode, sizes, *, global_counts=False, norm=None):
        out = f(x, m, mode, sizes, global_counts=False, norm=norm)
        return out * len(sizes) if global_counts else out

    return acc


def _rloo_mean_with_self(r):
    r = np.asarray(r, dtype=float)
    return r - r.mean(axis=1, keepdims=True)  # the baseline includes r_i: the (K-1)/K version


def _batch_std_per_group(f):
    return lambda r, kind="mean", **k: f(r, "std" if kind == "batch-std" else kind, **k)


def _kl_placement(swap):
    def make(f):
        return lambda th, ref, ans, kl, placement, old=None: f(
            th, ref, ans, kl, swap.get(placement, placement), old
        )

    return make


MUTATIONS = {
    "ch15.agg_modes_match_ch14": (
        "token-mean divides by the number of answers, not of tokens",
        lambda mp: _wrap(mp, _ch15(), "group_aggregate", _token_mean_over_answers),
    ),
    "ch15.token_sum_keeps_direction": (
        "seq-mean-token-sum divides each answer by its length",
        lambda mp: _wrap(mp, _ch15(), "aggregation_objective", _length_normalised_sum),
    ),
    "ch15.length_norm_tilts": (
        "every mode aggregated as seq-mean-token-sum (no length normalisation)",
        lambda mp: _wrap(
            mp,
            importlib.import_module("rlviz.experiments.ch15"),
            "aggregation_objective",
            _always_token_sum,
        ),
    ),
    "ch15.length_norm_lengthens_wrong": (
        "every mode aggregated as seq-mean-token-sum (no length normalisation)",
        lambda mp: _wrap(
            mp,
            importlib.import_module("rlviz.experiments.ch15"),
            "aggregation_objective",
            _always_token_sum,
        ),
    ),
    "ch15.accumulation_seq_modes": (
        "micro-batch losses summed, not averaged (the 1/accumulation_steps forgotten)",
        lambda mp: _wrap(mp, _grpo_exact(), "accumulated", _accumulate_sum_not_mean),
    ),
    "ch15.accumulation_token_mean_differs": (
        "token-mean micro-batches normalised by the global token count (no discrepancy left)",
        lambda mp: _wrap(mp, _grpo_exact(), "accumulated", _global_tokens_everywhere),
    ),
    "ch15.accumulation_global_counts": (
        "global counts ignored: each micro-batch normalised by its own counts, then summed",
        lambda mp: _wrap(mp, _grpo_exact(), "accumulated", _local_counts_summed),
    ),
    "ch15.rloo_is_drgrpo_scaled": (
        "the RLOO baseline includes r_i (mean of the whole group)",
        lambda mp: mp.setattr(_ch15(), "rloo_advantages_reference", _rloo_mean_with_self),
    ),
    "ch15.batch_std_tilts": (
        "the 'batch' std computed per group",
        lambda mp: _wrap(mp, _grpo_exact(), "group_advantages", _batch_std_per_group),
    ),
    "ch15.zero_variance_closed_form": (
        "the closed form counts all-right groups only (p^K)",
        lambda mp: mp.setattr(
            _ch15(), "zero_variance_probability", lambda p, K: np.asarray(p) ** K
        ),
    ),
    "ch15.dynamic_sampling_rescales": (
        "dynamic sampling keeps every group (no filter)",
        lambda mp: mp.setattr(_ch15(), "mixed_groups", lambda rg: rg[:, 0] == rg[:, 0]),
    ),
    "ch15.kl_gradient_exact_combinations": (
        "the importance ratio pi/pi_old detached (not differentiated)",
        lambda mp: _wrap(
            mp,
            importlib.import_module("rlviz.experiments.ch15"),
            "kl_gradient",
            _kl_placement({"loss-is": "loss"}),
        ),
    ),
    "ch15.k1_loss_zero_gradient": (
        "the sampling weights pi(y) differentiated too (not held fixed)",
        lambda mp: _wrap(mp, _ch15(), "kl_gradient", _kl_placement({"loss": "loss-is"})),
    ),
    "ch15.dynamic_sampling_refill_uniform": (
        "the refill renormalised prompt by prompt (the same prompt resampled)",
        lambda mp: _wrap(
            mp,
            importlib.import_module("rlviz.identities.ch15"),
            "expected_group_gradient",
            lambda f: lambda *a, refill="prompt", **k: f(*a, **k),
        ),
    ),
    "ch15.sequence_k2_is_kl_gradient": (
        "the whole answer's k2 replaced by the sum of per-token k2 (the per-token estimator)",
        lambda mp: _wrap(
            mp,
            importlib.import_module("rlviz.experiments.ch15"),
            "kl_gradient",
            _kl_placement({"loss-seq": "loss"}),
        ),
    ),
    "ch15.trl_k3_token_ratio_is_per_token_k2": (
        "k3 weighted by the answer's ratio instead of each token's (the exact correction)",
        lambda mp: _wrap(
            mp,
            importlib.import_module("rlviz.identities.ch15"),
            "kl_gradient",
            _kl_placement({"loss-is-token": "loss-is"}),
        ),
    ),
    "ch15.kl_other_combinations": (
        "every placement importance-corrected (the right gradient everywhere)",
        lambda mp: _wrap(
            mp,
            importlib.import_module("rlviz.experiments.ch15"),
            "kl_gradient",
            _kl_placement({"loss": "loss-is", "reward": "loss-is"}),
        ),
    ),
}
