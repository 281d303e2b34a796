"""rlviz.experiments.ch14: the exact settings and quantities of chapter 14 (against values known
in closed form), and the runners (with a small reference in place of the book's, so they stay
short)."""

import numpy as np
import pytest
import torch

from rlviz.agents.addition_task import AdditionTask, TrainLog, pretrain_reference
from rlviz.agents.grpo import GRPOConfig
from rlviz.experiments import ch14
from rlviz.tabular.answer_tree import answer_probs


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny tensors: one thread is faster and does not fight other jobs for the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- exact settings and quantities
def test_book_tree_success_rates():
    ans, theta, r = ch14.book_tree()
    words = ch14.answer_words(ans)
    assert len(set(words)) == 15 and "abE" in words and "E" in words
    assert all(w.endswith("E") or len(w) == 3 for w in words)
    p = answer_probs(torch.tensor(theta), ans).numpy()
    np.testing.assert_allclose((p * r).sum(-1), [1 / 3, 1 / 27], atol=1e-15)


def test_settings_are_seeded():
    for make in (ch14.bandit_setting, ch14.tree_setting):
        a, b, c = make(0), make(0), make(1)
        assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
        assert not np.array_equal(a[1], c[1])
    ans, theta, r = ch14.tree_setting(0)
    assert theta.shape == (2, 7, 3) and set(np.unique(r)) <= {0.0, 1.0}
    pairs = list(ch14.random_pairs(3, 4))
    assert len(pairs) == 3 and all(
        abs(p.sum() - 1) < 1e-12 and abs(q.sum() - 1) < 1e-12 for p, q in pairs
    )


@pytest.mark.parametrize("p", [0.1, 0.37, 0.9])
def test_prompt_gain_closed_forms(p):
    for G in (2, 3, 5):
        assert ch14.prompt_gain(p, G, "mean") == pytest.approx((G - 1) / G, abs=1e-12)
        assert ch14.prompt_gain(p, G, "loo") == pytest.approx(1.0, abs=1e-12)
    # G = 2: a mixed group has std 1/sqrt(2), so each advantage is +-(1/2) / (1/sqrt(2) + eps)
    assert ch14.prompt_gain(p, 2) == pytest.approx(0.5 / (2**-0.5 + 1e-4), abs=1e-12)
    # binary rewards: swapping right and wrong gives the same gain
    assert ch14.prompt_gain(p, 8) == pytest.approx(ch14.prompt_gain(1 - p, 8), abs=1e-12)


def test_std_gain_depends_on_difficulty_and_p_is_checked():
    assert ch14.prompt_gain(0.1, 8) / ch14.prompt_gain(0.5, 8) > 1.1
    with pytest.raises(ValueError, match="p must be in"):
        ch14.prompt_gain(0.0, 4)


def test_gradient_angles_and_ratios_on_the_book_tree():
    angle, ratio = ch14.gradient_angle_and_ratio(3)
    assert angle < 1e-4 and ratio == pytest.approx(2 / 3, abs=1e-12)
    angle, ratio = ch14.gradient_angle_and_ratio(3, "mean", "token", "constant")
    assert angle < 1e-4 and ratio == pytest.approx(2 / 9, abs=1e-12)  # (G-1)/(G L)
    assert ch14.gradient_angle_and_ratio(3, "mean", "token", "sequence")[0] > 5
    with pytest.raises(ValueError, match="group_size must be >= 2, got 1"):
        ch14.gradient_angle_and_ratio(1)


def test_a_zero_expected_gradient_has_no_angle(monkeypatch):
    monkeypatch.setattr(ch14, "expected_group_gradient", lambda *args: np.zeros(42))
    angle, ratio = ch14.gradient_angle_and_ratio(2)
    assert np.isnan(angle) and ratio == 0.0


def test_normalisation_table_covers_the_variants():
    table = ch14.normalisation_table((2,))
    assert list(table) == [2] and list(table[2]) == list(ch14.NORMALISATION_VARIANTS)
    assert table[2]["leave-one-out"] == ch14.gradient_angle_and_ratio(2, "loo")


def test_variance_along_and_k3_gap():
    rows = ch14.variance_along([0.0, 0.1, 2.0])
    assert rows[0]["kl"] == pytest.approx(0, abs=1e-15) and rows[0]["var_k1"] == pytest.approx(
        0, abs=1e-15
    )
    assert rows[1]["var_k3"] / rows[1]["var_k1"] < 0.1
    assert rows[2]["kl"] > rows[1]["kl"] > 0
    assert ch14.k3_gradient_gap(0) > 0.1


# ---------------------------------------------------------------- trained runs
@pytest.fixture()
def small_book(monkeypatch):
    """The runners with a small reference (20 pretraining steps) in place of the book's."""
    task = AdditionTask.make()
    monkeypatch.setattr(ch14, "book_task", lambda: (task, pretrain_reference(task, steps=20)))
    return task


def test_book_task_is_cached(monkeypatch):
    real = ch14.pretrain_reference
    monkeypatch.setattr(ch14, "pretrain_reference", lambda task: real(task, steps=5))
    task, ref = ch14.book_task()
    task2, ref2 = ch14.book_task()
    assert task2 is task and ref2 is not ref
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), ref2.parameters()))


def test_every_spread_variant_is_a_valid_config():
    from rlviz.agents.token_ppo import PPOConfig

    for trainer, change in ch14.SPREAD_VARIANTS.values():
        (GRPOConfig if trainer == "grpo" else PPOConfig)(**change)


def test_run_spread_one_run_per_split_and_seed(small_book):
    logs = ch14.run_spread(steps=2, splits=(0, 3), seeds=(0, 1), prompts_per_step=4)
    assert list(logs) == [(0, 0), (0, 1), (3, 0), (3, 1)]
    assert all(log.step == [0, 2] for log in logs.values())
    assert logs[(0, 0)].held_out[0] != logs[(3, 0)].held_out[0]  # other held-out prompts
    assert logs[(0, 0)].held_out[-1] != logs[(0, 1)].held_out[-1]  # other seed
    ppo = ch14.run_spread(steps=1, splits=(1,), seeds=(2,), trainer="ppo")
    assert list(ppo) == [(1, 2)] and ppo[(1, 2)].samples[-1] == 256
    with pytest.raises(ValueError, match="trainer must be"):
        ch14.run_spread(steps=1, splits=(0,), seeds=(0,), trainer="sac")


def test_run_variant_spread_reuses_known_runs(small_book):
    known = ch14.run_spread(steps=20, splits=(0, 1), seeds=(0,), prompts_per_step=2)
    variants = {"notes": ("grpo", {}), "loo": ("grpo", {"advantage": "loo"})}
    out = ch14.run_variant_spread(
        steps=10, splits=(0, 1), variants=variants, known={"notes": known}
    )
    assert list(out) == ["notes", "loo"]
    assert out["notes"][(1, 0)].step == [0, 10] and out["notes"][(1, 0)].held_out == [
        known[(1, 0)].held_out[0],
        known[(1, 0)].held_out[1],
    ]
    assert out["loo"][(0, 0)].step == [0, 10]


def _log(held_out, step=(0, 10, 20), train=None):
    return TrainLog(
        step=list(step),
        seconds=[0.1 * s for s in step],
        samples=[256 * s for s in step],
        held_out=list(held_out),
        train=list(train or held_out),
    )


def test_truncate_log_keeps_the_first_updates():
    log = _log([0.5, 0.96, 0.9])
    log.reached_step, log.reached_seconds = 10, 1.0
    cut = ch14.truncate_log(log, 10)
    assert cut.step == [0, 10] and cut.held_out == [0.5, 0.96] and cut.reached_step == 10
    assert ch14.truncate_log(_log([0.5, 0.6, 0.97]), 10).reached_step is None
    with pytest.raises(ValueError, match="must reach update 30"):
        ch14.truncate_log(log, 30)


def test_spread_summary():
    logs = [_log([0.5, 0.96, 0.90]), _log([0.5, 0.80, 0.85]), _log([0.5, 0.95, 0.97])]
    s = ch14.spread_summary(logs)
    assert s["runs"] == 3 and s["final_median"] == 0.90 and s["final_worst"] == 0.85
    assert s["peak_median"] == 0.96 and s["peak_worst"] == 0.85
    assert (
        s["reached"] == 2 and s["reached_step_median"] == 10 and s["reached_samples_median"] == 2560
    )
    assert ch14.spread_summary(logs[1:2])["reached_step_median"] is None
    with pytest.raises(ValueError, match="at least one"):
        ch14.spread_summary({})


def test_run_grid_keys_and_live_run(small_book):
    grid = ch14.run_grid(epsilons=(0.1, 0.2), betas=(0.0,), group_sizes=(2, 8), steps=1)
    assert sorted(grid) == sorted([(0.1, 0.0, 8), (0.2, 0.0, 8), (0.2, 0.0, 2)])
    assert grid[(0.2, 0.0, 2)].samples[-1] == 32 * 2
    seen = []
    log = ch14.live_run(group_size=2, steps=2, callback=lambda s, n: seen.append(s))
    assert seen == [1, 2] and log.step == [0, 2] and log.samples[-1] == 2 * 32 * 2


def test_spread_table_has_a_row_per_group():
    logs = [_log([0.5, 0.96, 0.90]), _log([0.5, 0.80, 0.85])]
    lines = ch14.spread_table({"a": logs, "b": logs[1:]}).splitlines()
    assert len(lines) == 3 and lines[1].startswith("a ") and lines[2].startswith("b ")
    assert "0.88" in lines[1] and "0.85" in lines[1] and "1 of 2" in lines[1]
