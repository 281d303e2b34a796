"""rlviz.agents.trpo: a tiny TRPO run respects the KL limit of its line search and logs what it should."""

import numpy as np
import pytest

from rlviz.agents.trpo import TRPOConfig, train


def test_tiny_run_respects_the_kl_limit():
    cfg = TRPOConfig(total_steps=4 * 32 * 3, n_envs=4, n_steps=32, hidden=8, delta=0.005)
    res = train(cfg)
    kl, frac = res.log("kl")[:, 0], res.log("step_fraction")[:, 0]
    assert kl.shape == (3,) and np.all(kl <= cfg.delta + 1e-7)
    assert np.all((frac >= 0) & (frac <= 1)) and frac.max() > 0
    assert np.isfinite(res.log("value_loss")).all()


def test_bad_config():
    with pytest.raises(ValueError, match="delta"):
        TRPOConfig(delta=0)
    with pytest.raises(ValueError, match="cfg must be a TRPOConfig"):
        train({"delta": 0.01})
