"""rlviz.fn.grpo_aggregation: the registered loss aggregation modes against hand values and
loops, the counts each mode reads, gradient accumulation, RLOO and the zero-variance probability
(the advantage normalisations are rlviz.fn.grpo_loss.group_advantages, tested there)."""

import numpy as np
import pytest
import torch

from rlviz.fn import grpo_aggregation as agg


def batch(seed=0, B=3, G=4, L=5):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(B, G, L)))
    lengths = rng.integers(1, L + 1, size=(B, G))
    mask = torch.tensor(np.arange(L)[None, None, :] < lengths[..., None])
    return x, mask


def reference(x, mask, mode, n_seqs=None, n_tokens=None, norm=None):
    """The obvious loop over answers and tokens."""
    B, G, L = x.shape
    N = B * G if n_seqs is None else n_seqs
    T = int(mask.sum()) if n_tokens is None else n_tokens
    C = L if norm is None else norm
    total = 0.0
    for b in range(B):
        for i in range(G):
            toks = [float(x[b, i, t]) for t in range(L) if mask[b, i, t]]
            if mode == "token-mean":
                total += sum(toks) / T
            elif mode == "seq-mean-token-mean":
                total += sum(toks) / len(toks) / N
            elif mode == "seq-mean-token-sum":
                total += sum(toks) / N
            elif mode == "token-sum":
                total += sum(toks)
            else:
                total += sum(toks) / (N * C)
    return total


def test_by_hand():
    # verl's docstring example: lengths 3 and 2
    x = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 0.0]]], dtype=torch.float64)
    m = torch.tensor([[[1, 1, 1], [1, 1, 0]]], dtype=torch.bool)
    assert float(agg.aggregate(x, m, "token-mean")) == pytest.approx(15 / 5)
    assert float(agg.aggregate(x, m, "seq-mean-token-mean")) == pytest.approx((2 + 4.5) / 2)
    assert float(agg.aggregate(x, m, "seq-mean-token-sum")) == pytest.approx(15 / 2)
    assert float(agg.aggregate(x, m, "seq-mean-token-sum-norm")) == pytest.approx(15 / (2 * 3))
    assert float(agg.aggregate(x, m, "seq-mean-token-sum-norm", norm=10)) == pytest.approx(0.75)


COUNTS = {"n_seqs": 7.0, "n_tokens": 11.0, "norm": 3.0}


def test_the_modes_are_the_registry_s():
    assert agg.AGG_MODES == agg.AGGREGATIONS.names()
    assert agg.AGG_MODES == (
        "seq-mean-token-mean",
        "token-mean",
        "seq-mean-token-sum-norm",
        "seq-mean-token-sum",
        "token-sum",
    )
    for mode in agg.AGG_MODES:
        assert set(agg.AGGREGATIONS[mode].params) <= set(COUNTS)


@pytest.mark.parametrize("mode", agg.AGG_MODES)
@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_loop(mode, seed):
    x, m = batch(seed)
    assert float(agg.aggregate(x, m, mode)) == pytest.approx(reference(x, m, mode), abs=1e-12)
    reads = {k: v for k, v in COUNTS.items() if k in agg.AGGREGATIONS[mode].params}
    got = agg.aggregate(x, m, mode, **reads)
    assert float(got) == pytest.approx(reference(x, m, mode, **reads), abs=1e-12)


@pytest.mark.parametrize(
    "mode, count",
    [(m, c) for m in agg.AGG_MODES for c in COUNTS if c not in agg.AGGREGATIONS[m].params],
)
def test_a_count_the_mode_does_not_read_is_refused(mode, count):
    """A count the mode ignores would silently do nothing: refused, naming it and the mode."""
    x, m = batch(0)
    with pytest.raises(ValueError, match=f"{count} is not read by mode '{mode}'"):
        agg.aggregate(x, m, mode, **{count: COUNTS[count]})
    if count == "norm":
        with pytest.raises(ValueError, match=f"norm is not read by mode '{mode}'"):
            agg.group_aggregate(x, m, mode, norm=3.0)
        with pytest.raises(ValueError, match=f"norm is not read by mode '{mode}'"):
            agg.accumulated(x, m, mode, (1, 2), norm=3.0)


def test_token_sum_is_the_masked_sum():
    x, m = batch(6)
    want = float(torch.where(m, x, torch.zeros_like(x)).sum())
    assert float(agg.aggregate(x, m, "token-sum")) == pytest.approx(want, abs=1e-12)
    # per group: the group's masked sum
    per = agg.group_aggregate(x, m, "token-sum")
    torch.testing.assert_close(per, torch.where(m, x, torch.zeros_like(x)).sum(dim=(1, 2)))
    # no normaliser: micro-batch losses summed (global counts) give the whole batch's sum, and
    # averaged (the usual loop) a factor 1/M smaller
    for sizes in ((1, 2), (1, 1, 1)):
        glob = agg.accumulated(x, m, "token-sum", sizes, global_counts=True)
        assert float(glob) == pytest.approx(float(agg.aggregate(x, m, "token-sum")), abs=1e-12)
        local = agg.accumulated(x, m, "token-sum", sizes)
        assert float(local) == pytest.approx(want / len(sizes), abs=1e-12)


@pytest.mark.parametrize("mode", agg.AGG_MODES)
def test_group_aggregate_is_aggregate_per_group(mode):
    x, m = batch(1)
    per = agg.group_aggregate(x, m, mode)
    assert per.shape == (3,)
    for b in range(3):
        assert float(per[b]) == pytest.approx(
            float(agg.aggregate(x[b : b + 1], m[b : b + 1], mode))
        )


def test_padding_never_enters():
    x, m = batch(2)
    y = torch.where(m, x, torch.full_like(x, float("nan")))
    for mode in agg.AGG_MODES:
        assert float(agg.aggregate(y, m, mode)) == pytest.approx(float(agg.aggregate(x, m, mode)))


@pytest.mark.parametrize("mode", agg.AGG_MODES)
@pytest.mark.parametrize("sizes", [(1, 2), (2, 1), (1, 1, 1), (3,)])
def test_global_counts_give_the_full_batch(mode, sizes):
    x, m = batch(3)
    full = agg.aggregate(x, m, mode)
    assert float(agg.accumulated(x, m, mode, sizes, global_counts=True)) == pytest.approx(
        float(full), abs=1e-12
    )


@pytest.mark.parametrize(
    "mode", ["seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
)
def test_local_counts_equal_sizes_exact_for_seq_modes(mode):
    x, m = batch(4, B=4)
    full = float(agg.aggregate(x, m, mode))
    assert float(agg.accumulated(x, m, mode, (2, 2))) == pytest.approx(full, abs=1e-12)
    assert float(agg.accumulated(x, m, mode, (1, 3))) != pytest.approx(full, abs=1e-6)


def test_local_counts_token_mean_is_mean_of_ratios():
    x, m = batch(5, B=4)
    m[0, :, 1:] = False  # the first half has fewer tokens than the second
    halves = [reference(x[:2], m[:2], "token-mean"), reference(x[2:], m[2:], "token-mean")]
    want = float(np.mean(halves))
    assert float(agg.accumulated(x, m, "token-mean", (2, 2))) == pytest.approx(want, abs=1e-12)
    assert want != pytest.approx(reference(x, m, "token-mean"), abs=1e-6)


def test_rloo_reference_by_hand():
    np.testing.assert_allclose(
        agg.rloo_advantages_reference([[1.0, 0.0, 0.0]]), [[1.0, -0.5, -0.5]]
    )


def test_zero_variance_probability():
    assert agg.zero_variance_probability(0.5, 2) == pytest.approx(0.5)
    assert agg.zero_variance_probability(0.0, 5) == 1.0
    np.testing.assert_allclose(agg.zero_variance_probability([0.1, 0.9], 3), [0.73, 0.73])


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda x, m: agg.aggregate(x, m, "mean"),
            "must be one of 'seq-mean-token-mean', .*'token-sum', got 'mean'",
        ),
        (lambda x, m: agg.aggregate(x[0], m[0]), "x_t must have shape"),
        (lambda x, m: agg.aggregate(x, m[:, :, :2]), "mask_t must have the shape"),
        (lambda x, m: agg.aggregate(x, torch.zeros_like(m)), "at least one token"),
        (lambda x, m: agg.aggregate(x, m, n_tokens=0), "n_tokens must be > 0"),
        (lambda x, m: agg.aggregate(x, m, "seq-mean-token-sum-norm", norm=0), "norm must be > 0"),
        (lambda x, m: agg.accumulated(x, m, "token-mean", (1, 1)), "sizes must be positive"),
        (lambda x, m: agg.group_aggregate(x, m, "token-sum-norm"), "must be one of"),
        (lambda x, m: agg.zero_variance_probability(1.5, 2), "p must be in"),
        (lambda x, m: agg.zero_variance_probability(0.5, 0), "group_size must be"),
    ],
)
def test_bad_inputs(call, match):
    x, m = batch(0)
    with pytest.raises(ValueError, match=match):
        call(x, m)
