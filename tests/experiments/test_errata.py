"""rlviz.experiments.errata: the evidence of the errata appendix, against what must hold exactly
(enumeration, closed forms) and the trainer's logs."""

import itertools

import numpy as np
import pytest

from rlviz._threads import torch_threads
from rlviz.agents.ppo import PPOConfig
from rlviz.experiments import errata as E
from rlviz.tabular.advantage_moments import kstep_moments, pair_weights, value_error
from rlviz.tabular.examples import book_grid_policy
from rlviz.tabular.mdp import state_values

TINY = PPOConfig(total_steps=8 * 32 * 3, hidden=8)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    with torch_threads(1):
        yield


def test_past_reward_term_has_mean_zero_but_is_not_zero():
    out = E.past_reward_term(0.9)
    assert out["mean_abs"] < 1e-12
    assert out["total_variance"] > 1e-3 and out["max_abs"] > 0.1


def test_gae_bias_at_lambda_one_is_minus_the_value_error():
    grid, pi = book_grid_policy(0.9)
    e = value_error(grid, 0.2)
    w = pair_weights(grid, pi)
    expected = float((w * e[:, None] ** 2).sum())
    assert E.gae_bias_by_lambda(0.9, 0.2, (1.0,))[1.0] == pytest.approx(expected, rel=1e-10)


def test_gae_bias_is_zero_with_the_true_values():
    assert max(E.gae_bias_by_lambda(0.9, 0.0).values()) < 1e-20


def test_kstep_extremes_counts_and_the_example_pair():
    out = E.kstep_extremes(0.9, 0.2, ks=range(1, 6))
    grid, pi = book_grid_policy(0.9)
    assert 0 < out["pairs"] <= grid.n_states * grid.n_actions
    for key in ("td_max_bias", "td_min_var", "td_max_var"):
        assert 0 <= out[key] <= out["pairs"]
    v_hat = state_values(grid, pi) + value_error(grid, 0.2)
    assert out["pair_std"][1] == pytest.approx(np.sqrt(kstep_moments(grid, pi, v_hat, 2).var[3, 1]))
    assert out["bias2"].shape == out["var"].shape == (5,)


def test_kstep_extremes_with_the_true_values_has_no_bias():
    out = E.kstep_extremes(0.9, 0.0, ks=range(1, 4))
    assert np.abs(out["bias2"]).max() < 1e-20


def test_bound_step_is_far_shorter_than_the_trpo_step():
    out = E.bound_step_vs_trpo_step(0.01)
    assert 0 < out["t_bound"] < out["trpo_length"]
    assert 0 < out["guaranteed_gain"] <= out["actual_gain_bound"]
    assert out["trpo_gain"] > out["actual_gain_bound"] and out["C"] > 1


def test_clip_ratio_table_reads_the_trainer_logs():
    table = E.clip_ratio_table(epochs=(1, 2), base=TINY)
    assert sorted(table) == [1, 2]
    for row in table.values():
        assert row["updates"] == 3 and row["batch"] == 256
        assert 0 <= row["mean_outside"] <= row["max_outside"] <= 1
        assert row["largest_ratio"] >= 1


def test_mid_update_peak_is_on_the_grid():
    out = E.mid_update_peak(updates=2, base=TINY)
    assert 0 <= out["alpha_peak"] <= 2
    assert round(out["alpha_peak"] / 0.05, 9) == int(round(out["alpha_peak"] / 0.05))
    assert 0 <= out["outside_at_1"] <= 1 and out["kl_at_1"] >= 0


def test_importance_sampling_without_support_misses_the_unseen_mass():
    out = E.importance_sampling_without_support()
    assert out["target"] - out["estimate"] == pytest.approx(out["missing"] * 3.0)
    assert out["missing"] > 0


def test_sequence_ratio_variance_matches_enumeration():
    per_token, by_length = E.sequence_ratio_variance(lengths=(1, 2, 3), t=0.3, n=4, seed=1)
    rng = np.random.default_rng(1)
    z, d = rng.normal(size=4), rng.normal(size=4)
    old = np.exp(z) / np.exp(z).sum()
    new = np.exp(z + 0.3 * d) / np.exp(z + 0.3 * d).sum()
    for length in (1, 2, 3):
        p = np.array([np.prod(old[list(y)]) for y in itertools.product(range(4), repeat=length)])
        r = np.array(
            [
                np.prod(new[list(y)] / old[list(y)])
                for y in itertools.product(range(4), repeat=length)
            ]
        )
        assert p @ r == pytest.approx(1.0, abs=1e-12)
        assert by_length[length] == pytest.approx(p @ r**2 - 1.0, abs=1e-12)
    assert by_length[1] == pytest.approx(per_token)
    assert by_length[1] < by_length[2] < by_length[3]
