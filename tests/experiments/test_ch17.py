"""rlviz.experiments.ch17: the sampler settings and the sweeps the chapter prints and plots."""

import math

import numpy as np
import pytest

from rlviz.experiments.ch17 import (
    CAPPED,
    CAPS,
    cap_sweep,
    mismatch_setting,
    moments,
    uncapped_table,
)


def test_delta_zero_is_on_policy():
    ans, theta, theta_mu, r = mismatch_setting(0.0)
    np.testing.assert_array_equal(theta, theta_mu)
    assert r.shape == (2, ans.n)
    with pytest.raises(ValueError, match="delta must be >= 0"):
        mismatch_setting(-0.1)


def test_cap_sweep_limits():
    s = cap_sweep(0.5, caps=(0.5, 1e6))
    assert set(s["bias"]) == {f"{c} {lv}" for c, lv in CAPPED} | {
        "none token",
        "is token",
        "is sequence",
    }
    # a cap above every weight is plain IS, at each level
    for c, lv in CAPPED:
        assert math.isclose(s["bias"][f"{c} {lv}"][1], s["bias"][f"is {lv}"], abs_tol=1e-12)
        assert math.isclose(s["var"][f"{c} {lv}"][1], s["var"][f"is {lv}"], rel_tol=1e-12)
    assert s["bias"]["is sequence"] < 1e-10
    assert s["max_w"]["sequence"] > s["max_w"]["token"] > 1
    assert len(CAPS) == 15


def test_uncapped_table_grows_with_delta():
    rows = uncapped_table((0.0, 0.5, 1.0))
    assert rows[0]["bias none token"] < 1e-12
    naive = [row["bias none token"] for row in rows]
    assert naive == sorted(naive)
    assert all(row["bias is sequence"] < 1e-10 for row in rows)
    assert moments(0.5, "none", "token")["rel_bias"] == pytest.approx(rows[1]["bias none token"])


def test_mean_squared_error_best_cap_and_mis_vs_tis():
    from rlviz.experiments.ch17 import best_cap, mean_squared_error, mis_vs_tis

    s = cap_sweep(0.5, caps=(0.5, 2.0, 1e6))
    mse = mean_squared_error(s, "tis sequence", 4)
    assert mse[1] == pytest.approx(
        s["bias"]["tis sequence"][1] ** 2 + s["var"]["tis sequence"][1] / 4
    )
    assert mean_squared_error(s, "none token", 1) == pytest.approx(
        s["bias"]["none token"] ** 2 + s["var"]["none token"]
    )
    # with a huge batch only the bias counts: the cap above every weight wins at sequence level
    assert best_cap(s, "tis sequence", 10**9) == 1e6
    assert mis_vs_tis([s]) == {"more_biased": True, "less_variable": True}
    with pytest.raises(ValueError, match="batch must be a positive integer"):
        mean_squared_error(s, "tis sequence", 0)


# ---------------------------------------------------------------- in training
def test_trained_variants_are_valid_configs():
    from rlviz.experiments.ch17 import TRAINED_DELTA, TRAINED_VARIANTS
    from rlviz.fn.offpolicy import OffPolicy

    assert list(TRAINED_VARIANTS) == [
        "on-policy",
        "naive",
        "is-seq",
        "tis-seq-1",
        "tis-seq-2",
        "mis-seq-2",
        "tis-token-2",
    ]
    for vid, v in TRAINED_VARIANTS.items():
        cfg = v.config
        assert v.id == vid and v.trainer == "grpo"
        assert (cfg.term, cfg.loss_agg) == ("token", "token-mean")
        assert cfg.sampler_delta == (0.0 if vid == "on-policy" else TRAINED_DELTA)
        assert cfg.off_policy.active == (vid not in ("on-policy", "naive"))
        if cfg.off_policy.active:  # the label says the correction
            assert v.label.startswith(cfg.off_policy.label), (v.label, cfg.off_policy.label)
    assert TRAINED_VARIANTS["tis-seq-2"].config.off_policy == OffPolicy(
        correction="tis", level="sequence", cap=2.0
    )
    assert TRAINED_VARIANTS["is-seq"].config.off_policy.cap == math.inf


def test_live_trained_run_gives_the_corrected_and_the_naive_run(small_book):
    from rlviz.experiments.ch17 import LiveRuns, live_trained_run

    seen = []
    runs = live_trained_run(
        2.0, "tis", "token", 1e-9, steps=2, callback=lambda s, n: seen.append((s, n))
    )
    assert isinstance(runs, LiveRuns) and runs._fields == ("corrected", "naive")
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # the second run is the second half
    assert runs.corrected.step == runs.naive.step == [0, 2]
    assert runs.corrected.capped == 1.0 and runs.naive.capped is None  # a cap below every weight
    assert runs.corrected.held_out != runs.naive.held_out


@pytest.mark.parametrize(
    "correction, level, cap, want",
    [
        ("tis", "sequence", 2.0, ("tis", "sequence", 2.0)),
        ("is", "sequence", 2.0, ("is", "sequence", math.inf)),  # IS has no cap: dropped
        ("none", "sequence", 2.0, ("none", "token", math.inf)),  # naive: no level, no cap
    ],
)
def test_live_trained_run_configs(monkeypatch, correction, level, cap, want):
    from rlviz.agents.addition_task import TrainLog
    from rlviz.experiments import ch17
    from rlviz.fn.offpolicy import OffPolicy

    made = []

    def fake(cfg, steps, split, seed, callback=None):
        made.append((cfg, steps, split, seed))
        return TrainLog()

    monkeypatch.setattr(ch17, "live_variant_run", fake)
    ch17.live_trained_run(0.5, correction, level, cap, steps=3, split=2, seed=1)
    (corrected, *args), (naive, *args2) = made
    assert args == args2 == [3, 2, 1]
    assert corrected.off_policy == OffPolicy(correction=want[0], level=want[1], cap=want[2])
    assert naive.off_policy == OffPolicy()
    assert corrected.sampler_delta == naive.sampler_delta == 0.5
    assert corrected.term == naive.term == "token" and naive.loss_agg == "token-mean"
