"""rlviz.experiments.ch13: the grid and the ablations are the configs the chapter describes,
and first_sustained finds the first step from which a curve stays above the threshold."""

import numpy as np
import pytest

from rlviz.agents.ppo import PPOConfig
from rlviz.experiments.ch13 import (
    ABLATIONS,
    EPSILONS,
    GAMMAS,
    LAMBDAS,
    ablation_configs,
    first_sustained,
    grid_configs,
)


def test_grid_is_every_combination_gamma_slowest_epsilon_fastest():
    configs = grid_configs()
    assert len(configs) == 27
    assert [(c.gamma, c.lam, c.clip_eps) for c in configs] == [
        (g, l, e) for g in GAMMAS for l in LAMBDAS for e in EPSILONS
    ]
    assert (configs[1].clip_eps, configs[3].lam, configs[9].gamma) == (0.2, 0.8, 0.98)
    book = PPOConfig()
    assert all(
        c.total_steps == book.total_steps and c.seed == 0 and c.lr == book.lr for c in configs
    )
    small = grid_configs(PPOConfig(total_steps=512), gammas=(0.9,), lams=(0.5, 0.9), seed=3)
    assert [(c.lam, c.clip_eps) for c in small] == [(l, e) for l in (0.5, 0.9) for e in EPSILONS]
    assert all(c.total_steps == 512 and c.seed == 3 for c in small)


def test_ablations_change_one_detail_each_ablation_slowest():
    configs = ablation_configs(seeds=(0, 1))
    assert len(configs) == 2 * len(ABLATIONS)
    book = PPOConfig()
    for i, (name, change) in enumerate(ABLATIONS.items()):
        for j, seed in enumerate((0, 1)):
            c = configs[2 * i + j]
            assert c.seed == seed
            differs = {
                f
                for f in PPOConfig.__dataclass_fields__
                if f != "seed" and getattr(c, f) != getattr(book, f)
            }
            assert differs == set(change), name


@pytest.mark.parametrize(
    "values,expected",
    [
        ([480, 490, 500, 500], 0),  # sustained from the start
        ([100, 480, 300, 476, 500], 300),  # the last dip decides
        ([100, 200, 480, 500], 200),
        ([480, 500, 474.9], float("inf")),  # below at the end: never sustained
        ([100, 200, 300], float("inf")),
        ([np.nan, 480, 490], 100),  # NaN (no finished episode yet) counts as below
        ([475, 475], 0),  # the threshold itself counts
    ],
)
def test_first_sustained(values, expected):
    steps = 100 * np.arange(len(values))
    assert first_sustained(values, steps) == expected


def test_first_sustained_rejects_mismatched_input():
    with pytest.raises(ValueError, match="one length"):
        first_sustained([500, 500], [0])
    with pytest.raises(ValueError, match="one length"):
        first_sustained([], [])


def test_study_groups_change_one_thing_from_the_book_setting():
    from rlviz.experiments.ch13 import BOOK_SEEDS, SEEDS, SENSITIVITY, study

    s = study()
    book = PPOConfig()
    assert [s.configs[k].seed for k in s.rows("book setting")] == list(BOOK_SEEDS)
    assert len(BOOK_SEEDS) >= 10 and len(SEEDS) >= 5
    expected = {"book setting"} | {n for n, c in ABLATIONS.items() if c}
    for coef, values in SENSITIVITY.items():
        expected |= {n for n, c in values.items() if c[coef] != getattr(book, coef)}
    assert set(s.groups) == expected
    for name, rows in s.groups.items():
        seeds = BOOK_SEEDS if name == "book setting" else SEEDS
        assert [s.configs[k].seed for k in rows] == list(seeds)
        changed = {
            f
            for k in rows
            for f in PPOConfig.__dataclass_fields__
            if f != "seed" and getattr(s.configs[k], f) != getattr(book, f)
        }
        assert len(changed) == (0 if name == "book setting" else 1), name
    assert sorted(k for rows in s.groups.values() for k in rows) == list(range(len(s.configs)))
    assert s.rows("book setting", seeds=(0, 1)) == s.rows("book setting")[:2]
    with pytest.raises(ValueError, match="name must be one of"):
        s.rows("nope")


def test_seed_summary():
    from rlviz.experiments.ch13 import seed_summary

    assert seed_summary([500, 160, 490]) == {"median": 490.0, "worst": 160.0, "best": 500.0, "n": 3}
    with pytest.raises(ValueError, match="1-d array"):
        seed_summary([1.0, float("nan")])


def test_book_value_is_the_config_default():
    from rlviz.experiments.ch13 import book_value

    book = PPOConfig()
    assert [book_value(f) for f in ("gamma", "lam", "clip_eps")] == [
        book.gamma,
        book.lam,
        book.clip_eps,
    ]
    with pytest.raises(ValueError, match="field must be one of"):
        book_value("lambda")


def test_live_run_trains_its_setting_and_reports_each_update():
    from rlviz.experiments.ch13 import live_run

    seen = []
    result = live_run(0.9, 0.5, 0.1, seed=3, total_steps=768, progress=seen.append)
    (cfg,) = result.configs
    assert (cfg.gamma, cfg.lam, cfg.clip_eps, cfg.seed, cfg.total_steps) == (0.9, 0.5, 0.1, 3, 768)
    assert cfg.updates == 3 and seen == [1 / 3, 2 / 3, 1.0]
    assert len(result.log("return")) == 3
