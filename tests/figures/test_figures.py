"""Figures: every slider step shows exactly one block of traces, and the blocks cover the figure.

The chapters' figures are built with :func:`rlviz.figures.common.slider_steps`; a slider whose
visibility list does not match the figure's traces would show the wrong curves on the static
site. The figures below are the ones cheap enough to build in a unit test (the training
figures are checked in the browser test of the built site).
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from rlviz.figures import ch01, ch02, ch04, ch06, ch07, ch08, ch09, ch10, ch11, ch12, ch14
from rlviz.figures.common import slider_steps
from rlviz.tabular.examples import book_grid_policy, two_state_chain
from rlviz.tabular.mdp import uniform_policy


def test_slider_steps_shows_one_block_per_step():
    s = slider_steps(["a", "b", "c"], 2, prefix="x = ")
    assert [st["label"] for st in s["steps"]] == ["a", "b", "c"]
    assert [st["args"][0]["visible"] for st in s["steps"]] == [
        [True, True, False, False, False, False],
        [False, False, True, True, False, False],
        [False, False, False, False, True, True],
    ]
    assert s["currentvalue"]["prefix"] == "x = "


@pytest.mark.parametrize(
    "labels, per, message",
    [
        ([], 1, "at least one label"),
        (["a"], 0, "positive integer"),
        (["a"], 1.5, "positive integer"),
    ],
)
def test_slider_steps_rejects_bad_arguments(labels, per, message):
    with pytest.raises(ValueError, match=message):
        slider_steps(labels, per)


def _grid():
    return book_grid_policy()


FIGURES = {
    "ch01 discount": lambda: ch01.discount_figure(),
    "ch01 returns": lambda: ch01.returns_figure(*_grid(), n=3, horizon=10),
    "ch02 values": lambda: ch02.value_heatmaps(*_grid()),
    "ch02 advantages": lambda: ch02.advantage_heatmaps(*_grid()),
    "ch04 distribution": lambda: ch04.distribution_figure(),
    "ch06 advantages": lambda: ch06.advantage_distribution_figure(),
    "ch07 bias/variance": lambda: ch07.bias_variance_figure(),
    "ch08 weights": lambda: ch08.weights_figure(),
    "ch09 target bias": lambda: ch09.target_bias_figure(
        two_state_chain(0.9), uniform_policy(two_state_chain(0.9))
    ),
    "ch10 J and L along lines": lambda: ch10.line_figure(),
    "ch11 bound": lambda: ch11.bound_figure(),
    "ch11 tabular TRPO": lambda: ch11.trpo_figure(),
    "ch12 clip": lambda: ch12.clip_objective_figure(),
    "ch14 prompt gain": lambda: ch14.prompt_gain_figure(),
}


@pytest.mark.parametrize("name", FIGURES)
def test_each_slider_step_shows_one_whole_block_of_traces(name):
    fig = FIGURES[name]()
    assert isinstance(fig, go.Figure)
    sliders = fig.layout.sliders
    assert sliders, f"{name} has no slider"
    for slider in sliders:
        shown = [step.args[0]["visible"] for step in slider.steps]
        assert all(len(v) == len(fig.data) for v in shown), (
            f"{name}: slider visibility lists do not match the {len(fig.data)} traces"
        )
        # every trace is shown by exactly one step, and the first step is what loads
        assert [sum(col) for col in zip(*shown)] == [1] * len(fig.data)
        initial = [t.visible is not False for t in fig.data]
        assert initial == list(shown[slider.active or 0])


def test_titles_sit_below_the_mode_bar_strip():
    # plotly draws its mode bar in the top ~30 px, at the right; a title placed from the top of
    # the container with this padding starts below it (before, long titles ran under it)
    import plotly.io as pio

    from rlviz.figures.common import MODEBAR_STRIP

    title = pio.templates["rlviz"].layout.title
    assert MODEBAR_STRIP >= 30
    assert title.yref == "container" and title.y == 1 and title.yanchor == "top"
    assert title.pad.t == MODEBAR_STRIP
    assert "rlviz" in pio.templates.default  # every figure of the book gets it


def test_band_figure_draws_median_and_range_of_each_group():
    from rlviz.experiments.ch13 import Study
    from rlviz.figures.ch13 import band_figure

    class Result:  # two groups of two seeds, three updates
        def log(self, key):
            if key == "steps":
                return np.array([10, 20, 30])
            return np.array([[1.0, 3.0, 10.0, 30.0], [2.0, 4.0, 20.0, 40.0], [5, 7, 50, 70]])

    from rlviz.agents.ppo import PPOConfig

    configs = [PPOConfig(seed=s) for s in (0, 1, 0, 1)]
    fig = band_figure(
        Result(), Study(configs, {"a": [0, 1], "b": [2, 3]}), ["a", "b"], seeds=(0, 1), title="t"
    )
    band_a, med_a, band_b, med_b = fig.data
    assert list(med_a.y) == [2.0, 3.0, 6.0] and list(med_b.y) == [20.0, 30.0, 60.0]
    assert list(band_a.y) == [3.0, 4.0, 7.0, 5.0, 2.0, 1.0]  # max forward, min backward


def test_sensitivity_figure_slider_shows_one_coefficient_at_a_time():
    from rlviz.agents.ppo import train
    from rlviz.experiments.ch13 import study
    from rlviz.figures.ch13 import sensitivity_figure

    s = study(total_steps=512, book_seeds=(0, 1), seeds=(0, 1))
    fig = sensitivity_figure(train(s.configs), s, seeds=(0, 1))
    steps = fig.layout.sliders[0].steps
    assert [st.label for st in steps] == ["gamma", "lambda", "epsilon"]
    for st in steps:
        shown = [fig.data[i].name for i, v in enumerate(st.args[0]["visible"]) if v]
        named = [n for n in shown if n]
        assert len(shown) == 6 and len(named) == 3
        assert sum("(book setting)" in n for n in named) == 1


def test_ch14_band_figure_median_and_range_over_runs():
    from rlviz.agents.addition_task import TrainLog
    from rlviz.figures.training_curves import band_figure

    def log(h):
        return TrainLog(step=[0, 10], seconds=[0, 1], samples=[0, 2560], held_out=h, train=h)

    fig = band_figure([("a", [log([0.5, 0.9]), log([0.5, 0.7]), log([0.5, 1.0])], "held_out")], "t")
    band, median = fig.data
    assert list(median.y) == [0.5, 0.9] and list(median.x) == [0, 2560]
    assert list(band.y) == [0.5, 1.0, 0.7, 0.5]
    assert median.name == "a (3 runs)" and band.showlegend is False
    with pytest.raises(ValueError, match="key must be"):
        band_figure([("a", [log([0.5, 0.9])], "loss")], "t")
    with pytest.raises(ValueError, match="x must be one of"):
        band_figure([("a", [log([0.5, 0.9])], "held_out")], "t", x="steps")
    other = TrainLog(step=[0, 5], seconds=[0, 1], samples=[0, 1], held_out=[0, 1], train=[0, 1])
    with pytest.raises(ValueError, match="same updates"):
        band_figure([("a", [log([0.5, 0.9]), other], "train")], "t")


def test_band_figure_takes_a_spread():
    from rlviz.agents.addition_task import TrainLog
    from rlviz.experiments.addition_runs import Spread, variant
    from rlviz.figures.training_curves import band_figure

    logs = {
        (k, 0): TrainLog(step=[0, 10], seconds=[0, 1], samples=[0, 5], held_out=h, train=h)
        for k, h in enumerate(([0.5, 0.9], [0.5, 0.7]))
    }
    from_spread = band_figure([("a", Spread(variant("v", "V"), logs), "held_out")], "t")
    from_dict = band_figure([("a", logs, "held_out")], "t")
    assert [list(tr.y) for tr in from_spread.data] == [list(tr.y) for tr in from_dict.data]


def test_metric_slider_figure_one_block_per_metric():
    from rlviz.agents.addition_task import TrainLog
    from rlviz.experiments.addition_runs import Spread, variant
    from rlviz.figures.training_curves import X_AXES, metric_slider_figure

    def log(h):
        return TrainLog(
            step=[0, 10], seconds=[0, 1], samples=[0, 10], held_out=h, train=h, entropy=[2.0, 1.5]
        )

    groups = {"a": [log([0.5, 0.9])], "b": [log([0.5, 0.8])]}
    fig = metric_slider_figure(groups, "t")
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == [
        f"{m} / {x}" for m in ("held-out", "training", "entropy") for x in ("answers", "seconds")
    ]
    assert steps[4].args[1]["yaxis.title.text"] == "held-out entropy (nats)"
    # the legend sits at the figure's bottom edge, below the slider, not over the title
    assert fig.layout.legend.yref == "container" and fig.layout.legend.y == 0
    assert len(fig.data) == 3 * 2 * 4
    # step 4: entropy against samples; step 5: entropy against seconds
    for k, xs in ((4, [0, 10]), (5, [0, 1])):
        shown = [fig.data[i] for i, v in enumerate(steps[k].args[0]["visible"]) if v][1::2]
        assert [list(tr.y) for tr in shown] == [[2.0, 1.5], [2.0, 1.5]]
        assert [list(tr.x) for tr in shown] == [xs, xs]
        assert steps[k].args[1]["xaxis.title.text"] == X_AXES[["samples", "seconds"][k - 4]]
    # id -> Spread: each group named by its variant's label
    spreads = {
        "a": Spread(variant("a", "label A"), {(0, 0): log([0.5, 0.9])}),
        "b": Spread(variant("b", "label B"), {(0, 0): log([0.5, 0.8])}),
    }
    named = [tr.name for tr in metric_slider_figure(spreads, "t").data if tr.name]
    assert named[:2] == ["label A (1 runs)", "label B (1 runs)"]


def test_band_figure_seconds_axis_is_the_median_over_runs():
    from rlviz.agents.addition_task import TrainLog
    from rlviz.figures.training_curves import band_figure

    def log(sec):
        return TrainLog(step=[0, 10], seconds=sec, samples=[0, 10], held_out=[0, 1], train=[0, 1])

    fig = band_figure(
        [("a", [log([0, 1.0]), log([0, 3.0]), log([0, 2.5])], "train")], "t", x="seconds"
    )
    assert list(fig.data[1].x) == [0.0, 2.5]


def test_live_variant_figure_refuses_an_unknown_or_a_ppo_variant():
    from rlviz.experiments.ch14 import SPREAD_VARIANTS
    from rlviz.experiments.ch15 import TRAINED_VARIANTS
    from rlviz.figures.training_curves import live_variant_figure

    with pytest.raises(ValueError, match="variant must be one of .*'token-mean'"):
        live_variant_figure(TRAINED_VARIANTS, "token-mean (DAPO)")  # a label, not an id
    with pytest.raises(ValueError, match="trains GRPO variants, 'ppo' is 'ppo'"):
        live_variant_figure(SPREAD_VARIANTS, "ppo")
