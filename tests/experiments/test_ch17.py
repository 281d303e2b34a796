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
