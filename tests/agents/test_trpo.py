"""rlviz.agents.trpo: a tiny TRPO run respects the KL limit of its line search, leaves the critic
out of the policy step, logs what it should, and rejects bad input."""

import numpy as np
import pytest
import torch

from rlviz.agents import trpo
from rlviz.agents.actor_critic import ActorCritic, TrainResult
from rlviz.agents.trpo import TRPOConfig, train


def test_tiny_run_respects_the_kl_limit():
    cfg = TRPOConfig(total_steps=4 * 32 * 3, n_envs=4, n_steps=32, hidden=8, delta=0.005)
    res = train(cfg)
    assert isinstance(res, TrainResult) and res.log("steps").tolist() == [128, 256, 384]
    kl, frac = res.log("kl")[:, 0], res.log("step_fraction")[:, 0]
    assert kl.shape == (3,) and np.all(kl <= cfg.delta + 1e-7)
    assert np.all((frac >= 0) & (frac <= 1)) and frac.max() > 0
    assert np.all(res.log("improvement")[:, 0][frac > 0] > 0)  # an accepted step improves L
    assert np.isfinite(res.log("value_loss")).all()


def test_a_rejected_step_leaves_the_actor_at_theta_old(monkeypatch):
    """When the line search accepts nothing, the actor keeps its weights (the line search's
    trial parameters are undone) while the critic's Adam epochs still train the critic."""

    def reject_all(step, objective_fn, kl_fn, delta, *, max_backtracks, theta_old):
        kl_fn(theta_old + step)  # a trial point, as the real search evaluates
        return 0.0, {"accepted": None, "kls": [], "improvements": []}

    monkeypatch.setattr(trpo, "backtracking_line_search", reject_all)
    cfg = TRPOConfig(total_steps=4 * 16 * 2, n_envs=4, n_steps=16, hidden=8)
    res = train(cfg)
    initial = ActorCritic.init([cfg.seed], cfg.hidden).flat
    assert (res.log("step_fraction") == 0).all() and (res.log("kl") == 0).all()
    torch.testing.assert_close(res.agent.flat[0], initial[0], rtol=0, atol=0)
    assert not torch.equal(res.agent.flat[1], initial[1])


@pytest.mark.parametrize(
    "change,match",
    [
        ({"delta": 0}, "delta"),
        ({"delta": "0.01"}, "delta"),
        ({"damping": -0.1}, "damping"),
        ({"gamma": 1.2}, "gamma"),
        ({"lam": float("nan")}, "lam"),
        ({"vf_lr": 0}, "vf_lr"),
        ({"cg_iters": 0}, "cg_iters"),
        ({"max_backtracks": 2.0}, "max_backtracks"),
        ({"vf_epochs": -1}, "vf_epochs"),
        ({"hidden": True}, "hidden"),
        ({"seed": -3}, "seed"),
        ({"n_envs": 1, "n_steps": 1}, "at least 2"),
    ],
)
def test_config_rejects_every_bad_field(change, match):
    with pytest.raises(ValueError, match=match):
        TRPOConfig(**change)


def test_train_rejects_bad_input():
    with pytest.raises(ValueError, match="cfg must be a TRPOConfig"):
        train({"delta": 0.01})
    with pytest.raises(ValueError, match="callback"):
        train(TRPOConfig(), callback="print")
