"""Paired comparisons of spreads that share splits and seeds (rlviz.experiments.addition_runs)."""

from __future__ import annotations

import pytest

from rlviz.agents.addition_task import TrainLog
from rlviz.experiments.addition_runs import Spread, paired, paired_table, variant


def _log(final: float, train: float = 0.5) -> TrainLog:
    return TrainLog(
        step=[0, 10],
        seconds=[0.0, 1.0],
        samples=[0, 256],
        held_out=[0.5, final],
        train=[0.5, train],
    )


def _spread(vid: str, finals: dict) -> Spread:
    return Spread(variant(vid, vid.upper()), {k: _log(v) for k, v in finals.items()})


A = _spread("a", {(0, 0): 0.9, (0, 1): 0.8, (1, 0): 0.7, (1, 1): 0.95})
B = _spread("b", {(0, 0): 0.8, (0, 1): 0.8, (1, 0): 0.9, (1, 1): 0.85})


def test_paired_differences_by_hand():
    p = paired(A, B)  # differences +0.1, 0, -0.2, +0.1
    assert p["pairs"] == 4 and (p["wins"], p["ties"], p["losses"]) == (2, 1, 1)
    assert p["median"] == pytest.approx(0.05) and p["mean"] == pytest.approx(0.0)
    assert p["worst"] == pytest.approx(-0.2)


def test_paired_is_antisymmetric():
    p, q = paired(A, B), paired(B, A)
    assert (p["wins"], p["losses"]) == (q["losses"], q["wins"])
    assert p["median"] == pytest.approx(-q["median"])


def test_pairs_follow_split_and_seed_not_order():
    """A pair is the same (split, seed): reordering one spread's dict changes nothing."""
    reordered = Spread(B.variant, dict(reversed(list(B.logs.items()))))
    assert paired(A, reordered) == paired(A, B)


def test_paired_refuses_unmatched_runs_and_bad_metric():
    short = _spread("c", {(0, 0): 0.9})
    with pytest.raises(ValueError, match="same \\(split, seed\\) pairs"):
        paired(A, short)
    with pytest.raises(ValueError, match="metric must be"):
        paired(A, B, "entropy")


def test_paired_table_prints_each_variant_against_the_baseline():
    text = paired_table({"a": A, "b": B}, "b")
    lines = text.splitlines()
    assert lines[0].startswith("minus B") and len(lines) == 2
    assert lines[1].split()[0] == "A" and lines[1].split()[-1] == "2/1/1"
    with pytest.raises(ValueError, match="against must be one of"):
        paired_table({"a": A}, "z")
