"""rlviz.experiments.ch12: the surrogates and the KL along one real PPO update, and the ratio
spread of a run, against what must hold exactly (alpha = 0 is theta_old) and the trainer's logs."""

import dataclasses

import numpy as np
import pytest
import torch

from rlviz.agents.actor_critic import ActorCritic, TrainResult
from rlviz.agents.ppo import PPOConfig, train
from rlviz.experiments.ch12 import (
    GAP_LAMBDAS,
    interpolation_curves,
    kl_slopes,
    ratio_spread,
    surrogate_gap_table,
    wrong_values,
)

TINY = PPOConfig(total_steps=8 * 32 * 2, hidden=8)
ALPHAS = np.linspace(0, 2, 9)


@pytest.fixture(scope="module")
def runs():
    """Two settings in one run: advantages normalised (setting 0) and raw (setting 1)."""
    return train([TINY, dataclasses.replace(TINY, norm_adv=False, seed=1)])


def test_at_alpha_zero_the_surrogates_are_the_mean_advantage_and_the_kl_is_zero(runs):
    for k, mean_adv in ((0, 0.0), (1, float(runs.last_batch["adv"][1].double().mean()))):
        c = interpolation_curves(runs, ALPHAS, k=k)
        assert c["alpha"][0] == 0
        assert c["L_pg"][0] == pytest.approx(mean_adv, abs=1e-12)
        assert c["L_clip"][0] == pytest.approx(mean_adv, abs=1e-12)
        assert c["kl"][0] == 0 and c["outside"][0] == 0
        assert (c["kl"][1:] > 0).all()
        assert np.all(c["L_clip"] <= c["L_pg"] + 1e-12)  # the clip is a lower bound
        assert c["epsilon"] == pytest.approx(TINY.clip_eps)


def test_at_alpha_one_the_clip_fraction_is_the_trainers_log(runs):
    c = interpolation_curves(runs, [1.0], k=1)
    B = runs.last_batch["adv"].shape[1]
    # the log is computed in float32, the curve in float64: a ratio at the edge may flip
    assert abs(c["outside"][0] - runs.log("clip_fraction")[-1, 1]) <= 1 / B


def test_interpolation_rejects_bad_input(runs):
    with pytest.raises(ValueError, match="k must be a setting index"):
        interpolation_curves(runs, ALPHAS, k=2)
    with pytest.raises(ValueError, match="alphas"):
        interpolation_curves(runs, [[0.0, 1.0]])
    empty = TrainResult(ActorCritic.init([0], 8), [TINY], {})
    with pytest.raises(ValueError, match="no last_batch"):
        interpolation_curves(empty, ALPHAS)
    with pytest.raises(ValueError, match="result must be"):
        ratio_spread({"logs": {}})


def test_ratio_spread_summarises_the_logs(runs):
    s = ratio_spread(runs, k=1)
    np.testing.assert_array_equal(s["outside"], runs.log("clip_fraction")[:, 1])
    assert s["mean_outside"] == pytest.approx(runs.log("clip_fraction")[:, 1].mean())
    assert s["largest_ratio"] == runs.log("max_ratio")[:, 1].max()
    assert s["max_kl"] == runs.log("approx_kl")[:, 1].max()
    assert s["steps"].tolist() == [256, 512]


def test_the_curves_use_the_last_updates_parameters(runs):
    """theta(1) is the trained agent: its log-probabilities on the batch give the logged KL."""
    lb = runs.last_batch
    c = interpolation_curves(runs, [1.0], k=0)
    with torch.no_grad():
        logits, _ = runs.agent(lb["obs"])
    logp = torch.log_softmax(logits[0].double(), -1)
    with torch.no_grad():
        old, _ = ActorCritic(lb["flat_before"], runs.agent.hidden)(lb["obs"])
    logp_old = torch.log_softmax(old[0].double(), -1)
    exact = float((logp_old.exp() * (logp_old - logp)).sum(-1).mean())
    assert c["kl"][0] == pytest.approx(exact, rel=1e-6)  # theta_old + (new - old) rounds in float32


def test_surrogate_gap_table_rows_and_invariants():
    rows = surrogate_gap_table()
    names = [(r["name"], r["lam"]) for r in rows]
    assert names[:2] == [("exact", None), ("undiscounted", None)]
    assert names[2:] == [(n, lam) for lam in GAP_LAMBDAS for n in ("gae", "normalised")]
    assert rows[0]["angle"] < 1e-6 and rows[0]["norm_ratio"] == pytest.approx(1, abs=1e-12)
    for r in rows:
        if r["name"] == "normalised":  # same direction, length divided by sigma
            assert r["angle_prev"] < 1e-5 and r["sigma"] > 0
            prev = next(p for p in rows if p["name"] == "gae" and p["lam"] == r["lam"])
            assert r["norm_ratio"] == pytest.approx(prev["norm_ratio"] / r["sigma"], rel=1e-10)
    # with the true V, GAE adds no bias for any lambda
    exact_v = surrogate_gap_table(v_hat=wrong_values(scale=0.0))
    assert all(r["max_diff_prev"] < 1e-12 for r in exact_v if r["name"] == "gae")


def test_kl_slopes_tend_to_two_and_are_one_for_a_linear_quantity():
    slopes = kl_slopes(n_random=2)
    assert set(slopes) == {"gradient", "random 1", "random 2"}
    assert all(abs(s - 2) < 0.01 for s in slopes.values())
    far = kl_slopes(n_random=0, alphas=np.geomspace(1, 10, 5))  # far from theta_old: not 2
    assert abs(far["gradient"] - 2) > 0.1
