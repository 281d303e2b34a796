"""Mutations for the rows of chapter 17 (sampler vs learner; merged by test_mutations.py)."""

from __future__ import annotations

import importlib
import math

import torch


def _sm():
    return importlib.import_module("rlviz.tabular.sampler_mismatch")


def _wrap_weights(mp, make):
    """Replace the weights the exact moments use by ``make(original)``."""
    mod = _sm()
    mp.setattr(mod, "correction_weights", make(mod.correction_weights))


def _inverted(f):
    """The importance ratio written upside down: mu / pi instead of pi / mu."""
    return lambda logp, logp_mu, mask, c="tis", lv="token", cap=math.inf: f(
        logp_mu, logp, mask, c, lv, cap
    )


def _two_sided(f):
    """Truncation that also lifts small weights to 1/C (clip to [1/C, C])."""

    def g(logp, logp_mu, mask, c="tis", lv="token", cap=math.inf):
        w = f(logp, logp_mu, mask, c, lv, cap)
        return torch.clamp(w, min=1.0 / cap) if c == "tis" else w

    return g


def _floor(f):
    """max(rho, C): the cap applied from below."""

    def g(logp, logp_mu, mask, c="tis", lv="token", cap=math.inf):
        if c != "tis":
            return f(logp, logp_mu, mask, c, lv, cap)
        return torch.clamp(f(logp, logp_mu, mask, "is", lv, cap), min=cap)

    return g


def _length_normalised(mp):
    """The surrogate averages its tokens instead of summing them."""
    mod = _sm()
    f = mod.corrected_pg_objective
    mp.setattr(
        mod,
        "corrected_pg_objective",
        lambda logp, w, adv, mask: f(logp, w, adv, mask) / torch.as_tensor(mask).sum(-1),
    )


def _on_policy_setting(mp):
    """The sampler is the learner: the perturbation delta is dropped."""
    ch17 = importlib.import_module("rlviz.experiments.ch17")
    f = ch17.mismatch_setting
    mp.setattr(ch17, "mismatch_setting", lambda delta, seed=0: f(0.0, seed))


MUTATIONS = {
    "ch17.is_unbiased": (
        "the importance ratio inverted (mu / pi)",
        lambda mp: _wrap_weights(mp, _inverted),
    ),
    "ch17.on_policy_agree": (
        "the surrogate averages the answer's tokens instead of summing them",
        _length_normalised,
    ),
    "ch17.truncation_bias_formula": (
        "TIS clips to [1/C, C] instead of truncating from above",
        lambda mp: _wrap_weights(mp, _two_sided),
    ),
    "ch17.naive_biased": (
        "the sampler is the learner (delta dropped)",
        _on_policy_setting,
    ),
    "ch17.token_is_biased": (
        "the level ignored: token weights are the sequence weight",
        lambda mp: _wrap_weights(
            mp,
            lambda f: (
                lambda lp, lm, m, c="tis", lv="token", cap=math.inf: f(
                    lp, lm, m, c, "sequence", cap
                )
            ),
        ),
    ),
    "ch17.finite_cap_biased": (
        "the cap ignored (C = inf)",
        lambda mp: _wrap_weights(
            mp,
            lambda f: (
                lambda lp, lm, m, c="tis", lv="token", cap=math.inf: f(lp, lm, m, c, lv, math.inf)
            ),
        ),
    ),
    "ch17.truncation_lowers_variance": (
        "the cap applied from below: max(rho, C)",
        lambda mp: _wrap_weights(mp, _floor),
    ),
}
