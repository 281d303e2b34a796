"""rlviz.experiments.ch16: the settings of chapter 16 behave as the chapter says."""

from __future__ import annotations

import numpy as np
import pytest

from rlviz.experiments import ch16
from rlviz.experiments.answer_trees import tree_setting
from rlviz.tabular.answer_tree import enumerate_answers, exact_gradient


def test_clip_batch_rewards_and_advantages():
    for good in ("rare", "common"):
        b = ch16.clip_batch(good)
        assert b["tokens"].shape == (ch16.CLIP_GROUP,)
        assert abs(b["adv"].mean()) < 1e-14
    with pytest.raises(ValueError, match="good must be"):
        ch16.clip_batch("often")


def test_no_clip_at_theta_old_and_monotone_effects():
    b = ch16.clip_batch("rare")
    c0 = ch16.clip_entropy_rates(b, 0)
    assert np.allclose(c0["ratio"], 1.0) and not c0["upper"].any() and not c0["lower"].any()
    assert np.ptp(c0["dH"]) < 1e-15  # no clip active: eps_high changes nothing
    for good, sign in (("rare", 1), ("common", -1)):
        for m in (1, 2, 3):
            d = ch16.clip_entropy_rates(ch16.clip_batch(good), m)["dH"]
            assert (sign * np.diff(d) >= -1e-15).all()


def test_unclipped_sequence_ratio_unbiased_everywhere():
    ans, theta_old, r = tree_setting(0)
    theta = ch16.off_policy_theta(theta_old, 0.5)
    e = ch16.expected_ratio_gradient("sequence (unclipped)", theta, theta_old, ans, r)
    assert np.abs(e - exact_gradient(theta, ans, r)).max() < 1e-12


def test_gspo_equals_grad_j_over_length_for_constant_length():
    # one-token answers: |y| = 1, GSPO is the sequence ratio
    _, theta, r = tree_setting(0)
    ans1 = enumerate_answers(3, 1)
    th1 = theta[:, :1]
    e = ch16.expected_ratio_gradient("GSPO", th1, th1, ans1, r[:, :3])
    assert np.abs(e - exact_gradient(th1, ans1, r[:, :3])).max() < 1e-12


def test_ratio_variances_exact_against_mc():
    exact = ch16.ratio_variances(4, 0.3)
    mc = ch16.ratio_variances_mc(4, 0.3, n=4000)
    for name, (var, se) in mc.items():
        assert abs(var - exact[name][1]) < 4 * se
    assert exact["sequence"][1] > exact["GSPO"][1]


def test_bad_kind_raises():
    ans, theta, r = tree_setting(0)
    with pytest.raises(ValueError, match="kind must be one of"):
        ch16.expected_ratio_gradient("tokens", theta, theta, ans, r)


def test_clip_cov_raises_entropy_change_monotonically():
    for good in ("rare", "common"):
        c = ch16.clip_cov_entropy_rates(ch16.clip_batch(good), 0)
        assert (np.diff(c["dH"]) >= -1e-15).all() and c["cos"][0] == pytest.approx(1.0)


def test_the_ratio_kinds_use_the_registered_terms():
    from rlviz.fn.ratios import POLICY_TERMS

    assert set(ch16.RATIO_TERMS) | {"sequence (unclipped)"} == set(ch16.RATIO_KINDS)
    for term, tokens in ch16.RATIO_TERMS.values():
        assert term in POLICY_TERMS and tokens in ("sum", "mean")


def test_trained_variants_are_valid_configs():
    assert list(ch16.TRAINED_VARIANTS) == [
        "token-2",
        "cispo-2",
        "token-8",
        "clip-higher-8",
        "gspo-8",
        "cispo-8",
    ]
    terms = set()
    for vid, v in ch16.TRAINED_VARIANTS.items():
        assert v.id == vid and v.trainer == "grpo"
        assert v.config.updates_per_batch == int(vid.rsplit("-", 1)[1])
        assert v.config.updates_per_batch in ch16.TRAINED_INNER_STEPS
        terms.add(v.config.term)
    assert terms == {"token", "gspo", "cispo"}
    assert ch16.TRAINED_VARIANTS["clip-higher-8"].config.eps_high == 0.28
    assert ch16.TRAINED_VARIANTS["token-8"].config.eps_high is None
