"""rlviz.experiments.ch15: the settings and tables of chapter 15."""

import numpy as np
import pytest

from rlviz.experiments import ch15


def test_length_setting_controls_wrong_length():
    lengths = [ch15.wrong_answer_length(c) for c in ch15.WRONG_STOP_LOGITS]
    assert all(a < b for a, b in zip(lengths, lengths[1:]))
    assert 1 < lengths[0] and lengths[-1] <= ch15.MAX_LEN
    ans, theta, r, wrong = ch15.length_setting(0.0)
    assert theta.shape == (1, ans.n_prefix, 3) and r.shape == wrong.shape == (1, ans.n)
    assert not np.any(r.astype(bool) & wrong)


def test_aggregation_table_token_sum_modes_keep_direction():
    t = ch15.aggregation_table(0.0, 2)
    assert set(t) == set(ch15.AGG_MODES)
    for mode in ("seq-mean-token-sum", "seq-mean-token-sum-norm"):
        assert t[mode][0] < 1e-3 and abs(t[mode][2]) < 1e-12
    assert t["seq-mean-token-sum"][1] == pytest.approx(0.5)
    assert t["seq-mean-token-mean"][0] > 3 and t["seq-mean-token-mean"][2] > 0


def test_accumulation_gaps_shape_and_global_counts():
    gaps = ch15.accumulation_gaps(0)
    assert set(gaps) == set(ch15.AGG_MODES)
    assert gaps["token-mean"][(2, 2)] > 0.01
    glob = ch15.accumulation_gaps(0, global_counts=True)
    assert max(v for row in glob.values() for v in row.values()) < 1e-12


def test_kl_table_exact_rows():
    tab = ch15.kl_table(0, (0.0,))
    assert tab["k1 in the reward"][0.0] < 1e-12
    assert tab["k1 in the loss"][0.0] == pytest.approx(1.0)


def test_advantage_table_mean_keeps_direction():
    t = ch15.advantage_table()
    assert list(t) == list(ch15.ADVANTAGE_KINDS) == ["mean", "std", "batch-std"]
    assert t["mean"][0] < 1e-3 and t["mean"][1] == pytest.approx(0.5)
    assert t["batch-std"][0] > 0.1  # one std for the batch tilts the direction (the row's bound)


def test_trained_variants_are_valid_configs_and_run_over_splits_and_seeds(small_book):
    from rlviz.experiments import addition_runs

    assert list(ch15.TRAINED_VARIANTS) == [
        "smtm",
        "token-mean",
        "drgrpo",
        "drop-zero-var",
        "kl-loss",
        "kl-reward",
    ]
    for vid, v in ch15.TRAINED_VARIANTS.items():
        assert v.id == vid and v.trainer == "grpo" and v.config.loss_agg is not None
    cfg = {vid: v.config for vid, v in ch15.TRAINED_VARIANTS.items()}
    assert cfg["smtm"].loss_agg == "seq-mean-token-mean" and cfg["drgrpo"].term == "token"
    assert cfg["drop-zero-var"].dynamic_sampling and not cfg["token-mean"].dynamic_sampling
    assert (cfg["kl-loss"].kl_placement, cfg["kl-reward"].kl_placement) == ("loss", "reward")
    assert cfg["kl-reward"].beta == cfg["kl-loss"].beta == 0.04
    two = dict(list(ch15.TRAINED_VARIANTS.items())[:2])
    out = addition_runs.run_variants(two, 1, (0, 2), seeds=(0, 1))
    assert list(out) == list(two)
    assert all(sorted(s.logs) == [(0, 0), (0, 1), (2, 0), (2, 1)] for s in out.values())
    assert all(len(log.entropy) == len(log.step) for s in out.values() for log in s.logs.values())
