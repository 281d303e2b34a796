"""rlviz.experiments.ch14 and what chapters 14-17 share: the answer trees
(rlviz.experiments.answer_trees), the exact quantities of chapter 14 (against values known in
closed form), and the trained runs (rlviz.experiments.addition_runs: variants, spreads, summaries;
with a small reference in place of the book's, so they stay short)."""

import math

import numpy as np
import pytest
import torch

from rlviz.agents.addition_task import TrainLog
from rlviz.agents.grpo import GRPOConfig
from rlviz.agents.token_ppo import PPOConfig
from rlviz.experiments import addition_runs as runs
from rlviz.experiments import answer_trees, ch14, run_spec
from rlviz.experiments.addition_runs import Spread, Variant, variant, variant_table
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
    ans, theta, r = answer_trees.book_tree()
    words = answer_trees.answer_words(ans)
    assert len(set(words)) == 15 and "abE" in words and "E" in words
    assert all(w.endswith("E") or len(w) == 3 for w in words)
    p = answer_probs(torch.tensor(theta), ans).numpy()
    np.testing.assert_allclose((p * r).sum(-1), [1 / 3, 1 / 27], atol=1e-15)


def test_settings_are_seeded():
    for make in (answer_trees.bandit_setting, answer_trees.tree_setting):
        a, b, c = make(0), make(0), make(1)
        assert np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
        assert not np.array_equal(a[1], c[1])
    ans, theta, r = answer_trees.tree_setting(0)
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
def test_book_task_is_cached(monkeypatch):
    real = run_spec.pretrain_reference
    monkeypatch.setattr(run_spec, "pretrain_reference", lambda task: real(task, steps=5))
    task, ref = run_spec.book_task()
    task2, ref2 = run_spec.book_task()
    assert task2 is task and ref2 is not ref
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), ref2.parameters()))


def test_variant_checks_its_config_when_made():
    v = variant("loo-8", "leave-one-out, G = 8", advantage="loo")
    assert v == Variant("loo-8", "leave-one-out, G = 8", GRPOConfig(advantage="loo"))
    assert v.trainer == "grpo" and variant("ppo", "PPO", "ppo").trainer == "ppo"
    assert isinstance(variant("ppo", "PPO", "ppo").config, PPOConfig)
    for bad, message in (
        ({"term": "word"}, "term must be one of"),
        ({"group_size": 1}, "group_size must be >= 2"),
        ({"term": "gspo"}, "without loss_agg"),
        ({"term": "dual-clip", "loss_agg": "token-mean"}, "clip_c"),
    ):
        with pytest.raises(ValueError, match=message):
            variant("bad", "bad", **bad)
    with pytest.raises(TypeError, match="ratio"):  # an old option name is no option
        variant("old", "old", ratio="token")
    with pytest.raises(ValueError, match="trainer must be one of"):
        variant("sac", "SAC", "sac")


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "a.b", 3, None])
def test_variant_refuses_a_bad_id(bad):
    with pytest.raises(ValueError, match="id must be a short name"):
        variant(bad, "label")


def test_variant_table_keys_by_id_and_refuses_a_repeated_id():
    a, b = variant("a", "A"), variant("b_2", "B", advantage="std")
    assert variant_table(a, b) == {"a": a, "b_2": b} and list(variant_table(b, a)) == ["b_2", "a"]
    with pytest.raises(ValueError, match="variant id 'a' is used twice"):
        variant_table(a, b, variant("a", "another label"))
    with pytest.raises(ValueError, match="variants must be Variant values"):
        variant_table(a, ("grpo", {}))


def test_every_spread_variant_is_a_valid_config():
    assert list(ch14.SPREAD_VARIANTS) == ["notes", "drgrpo", "deepseekmath", "ppo"]
    for vid, v in ch14.SPREAD_VARIANTS.items():
        assert isinstance(v, Variant) and v.id == vid and v.label
        assert isinstance(v.config, PPOConfig if vid == "ppo" else GRPOConfig)
    assert ch14.SPREAD_VARIANTS["notes"].config == GRPOConfig()
    deepseek = ch14.SPREAD_VARIANTS["deepseekmath"].config
    assert (deepseek.advantage, deepseek.term, deepseek.length_norm, deepseek.beta) == (
        "std",
        "token",
        "sequence",
        0.04,
    )


def test_run_spread_one_run_per_split_and_seed(small_book):
    logs = runs.run_spread(steps=2, splits=(0, 3), seeds=(0, 1), prompts_per_step=4)
    assert list(logs) == [(0, 0), (0, 1), (3, 0), (3, 1)]
    assert all(log.step == [0, 2] for log in logs.values())
    assert logs[(0, 0)].held_out[0] != logs[(3, 0)].held_out[0]  # other held-out prompts
    assert logs[(0, 0)].held_out[-1] != logs[(0, 1)].held_out[-1]  # other seed
    ppo = runs.run_spread(steps=1, splits=(1,), seeds=(2,), trainer="ppo")
    assert list(ppo) == [(1, 2)] and ppo[(1, 2)].samples[-1] == 256
    with pytest.raises(ValueError, match="trainer must be"):
        runs.run_spread(steps=1, splits=(0,), seeds=(0,), trainer="sac")
    # run_config of a variant's config is the same run
    again = runs.run_config(
        variant("x", "x", prompts_per_step=4).config, steps=2, splits=(3,), seeds=(1,)
    )
    assert again[(3, 1)].held_out == logs[(3, 1)].held_out


def test_run_variants_reuses_known_runs(small_book):
    known = runs.run_spread(steps=20, splits=(0, 1), seeds=(0,), prompts_per_step=2)
    variants = variant_table(
        variant("notes", "the notes", prompts_per_step=2),
        variant("loo", "leave-one-out", advantage="loo", prompts_per_step=2),
    )
    out = runs.run_variants(variants, 10, splits=(0, 1), seeds=(0,), known={"notes": known})
    assert list(out) == ["notes", "loo"]
    assert all(isinstance(s, Spread) and s.variant is variants[k] for k, s in out.items())
    assert out["notes"].label == "the notes"
    assert out["notes"].logs[(1, 0)].step == [0, 10] and out["notes"].logs[(1, 0)].held_out == [
        known[(1, 0)].held_out[0],
        known[(1, 0)].held_out[1],
    ]
    assert sorted(out["loo"].logs) == [(0, 0), (1, 0)] and out["loo"].logs[(0, 0)].step == [0, 10]
    assert out["loo"].summary()["runs"] == 2


def test_live_variant_run_takes_a_grpo_config(small_book):
    seen = []
    cfg = GRPOConfig(prompts_per_step=4, group_size=2, term="token", loss_agg="token-mean")
    log = runs.live_variant_run(cfg, steps=2, split=1, callback=lambda s, n: seen.append((s, n)))
    assert seen == [(1, 2), (2, 2)] and log.step == [0, 2] and log.samples[-1] == 2 * 4 * 2
    with pytest.raises(ValueError, match="config must be a GRPOConfig, got dict"):
        runs.live_variant_run({"epsilon": 0.2})
    with pytest.raises(ValueError, match="config must be a GRPOConfig, got PPOConfig"):
        runs.live_variant_run(PPOConfig())


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
    cut = runs.truncate_log(log, 10)
    assert cut.step == [0, 10] and cut.held_out == [0.5, 0.96] and cut.reached_step == 10
    assert runs.truncate_log(_log([0.5, 0.6, 0.97]), 10).reached_step is None
    with pytest.raises(ValueError, match="must reach update 30"):
        runs.truncate_log(log, 30)


def test_spread_summary():
    logs = [_log([0.5, 0.96, 0.90]), _log([0.5, 0.80, 0.85]), _log([0.5, 0.95, 0.97])]
    s = runs.spread_summary(logs)
    assert s["runs"] == 3 and s["final_median"] == 0.90 and s["final_worst"] == 0.85
    assert s["peak_median"] == 0.96 and s["peak_worst"] == 0.85
    assert (
        s["reached"] == 2 and s["reached_step_median"] == 10 and s["reached_samples_median"] == 2560
    )
    assert s["capped_median"] is None and s["entropy_final_median"] is None
    assert runs.spread_summary(logs[1:2])["reached_step_median"] is None
    with pytest.raises(ValueError, match="at least one"):
        runs.spread_summary({})
    # a Spread, its dict of logs and its list of logs summarise alike
    spread = Spread(variant("v", "V"), {(0, s): log for s, log in enumerate(logs)})
    assert runs.spread_summary(spread) == s == spread.summary()
    capped = [_log([0.5, 0.9, 0.9]) for _ in range(3)]
    for log, c in zip(capped, (0.1, 0.3, 0.2)):
        log.capped = c
    assert runs.spread_summary(capped)["capped_median"] == pytest.approx(0.2)


def test_run_grid_keys_and_live_run(small_book):
    grid = ch14.run_grid(epsilons=(0.1, 0.2), betas=(0.0,), group_sizes=(2, 8), steps=1)
    assert sorted(grid) == sorted([(0.1, 0.0, 8), (0.2, 0.0, 8), (0.2, 0.0, 2)])
    assert grid[(0.2, 0.0, 2)].samples[-1] == 32 * 2
    seen = []
    log = ch14.live_run(group_size=2, steps=2, callback=lambda s, n: seen.append(s))
    assert seen == [1, 2] and log.step == [0, 2] and log.samples[-1] == 2 * 32 * 2


def test_spread_table_has_a_row_per_group():
    logs = [_log([0.5, 0.96, 0.90]), _log([0.5, 0.80, 0.85])]
    lines = runs.spread_table({"a": logs, "b": logs[1:]}).splitlines()
    assert len(lines) == 3 and lines[1].startswith("a ") and lines[2].startswith("b ")
    assert "0.88" in lines[1] and "0.85" in lines[1] and "1 of 2" in lines[1]
    # a Spread's row is named by its label, not its id
    spread = Spread(variant("v", "the label"), dict(enumerate(logs)))
    (_, row) = runs.spread_table({"v": spread}).splitlines()
    assert row.startswith("the label ") and "1 of 2" in row
    # the capped column: the median share, "-" without a correction
    logs[0].capped, logs[1].capped = 0.25, 0.5
    head, row = runs.spread_table({"a": logs}, capped=True).splitlines()
    assert head.endswith("capped") and row.endswith("0.375")
    assert runs.spread_table({"b": [_log([0.5, 0.9, 0.9])]}, capped=True).endswith("-")
    assert math.isclose(runs.spread_summary(logs)["capped_median"], 0.375)
