"""rlviz.fn.stats.false_alarm_probability: the false-alarm rate of the book's z rules."""

import math

import numpy as np
import pytest

from rlviz.fn.stats import false_alarm_probability


def test_one_statistic_is_the_two_sided_normal_tail():
    assert false_alarm_probability(1, 1.959963984540054) == pytest.approx(0.05, rel=1e-12)
    assert false_alarm_probability(1, 4.0) == pytest.approx(6.334248366623996e-05, rel=1e-12)


def test_n_independent_statistics_against_the_product_formula_and_the_union_bound():
    tail = math.erfc(4.0 / math.sqrt(2.0))
    for n in (1, 6, 19, 1000):
        p = false_alarm_probability(n, 4.0)
        assert p == pytest.approx(1 - (1 - tail) ** n, rel=1e-12)
        assert p <= n * tail


def test_matches_simulation():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((200_000, 6))
    freq = np.mean(np.abs(z).max(axis=1) > 2.0)
    p = false_alarm_probability(6, 2.0)
    assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / 200_000)


@pytest.mark.parametrize(("n", "z"), [(0, 4.0), (2.5, 4.0), (3, 0.0), (3, -1.0)])
def test_bad_inputs(n, z):
    with pytest.raises(ValueError, match="must be"):
        false_alarm_probability(n, z)
