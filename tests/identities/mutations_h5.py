"""Mutations for the rows of chapter 16 (issue 14; merged by test_mutations.py)."""

from __future__ import annotations

import dataclasses
import importlib

import numpy as np
import torch


def _mod(name: str):
    return importlib.import_module(f"rlviz.{name}")


def _wrap(mp, mod, name, make):
    mp.setattr(mod, name, make(getattr(mod, name)))


def _symmetric_clip(mp, where: str):
    """The upper clip uses eps_low: clip-higher forgotten."""
    _wrap(
        mp,
        _mod(where),
        "asymmetric_clipped_surrogate",
        lambda f: lambda ratio, adv, lo, hi: f(ratio, adv, lo, lo),
    )


def _uncentred(mp):
    _wrap(
        mp,
        _mod("identities.ch16"),
        "entropy_covariance",
        lambda f: lambda th, d, centred=True: f(th, d, centred=False),
    )


def _uncentred_errors(mp):
    _wrap(
        mp,
        _mod("identities.ch16"),
        "first_order_errors",
        lambda f: lambda th, d, steps, centred=True: f(th, d, steps, centred=False),
    )


def _replace_term(mp, name: str, fn):
    """Replace the function of the registered policy term ``name``
    (:data:`rlviz.fn.ratios.POLICY_TERMS`, which chapter 16's per-answer objectives look up)
    for the test: its entry is swapped for one with ``fn``."""
    terms = _mod("fn.ratios").POLICY_TERMS
    mp.setitem(terms._entries, name, dataclasses.replace(terms[name], fn=fn))


def _cispo_not_detached(mp):
    def cispo(logp_t, logp_old_t, adv_t, mask_t, eps_low, eps_high, clip_c=None):
        w = torch.clamp(torch.exp(logp_t - logp_old_t), 1 - eps_low, 1 + eps_high)
        return w * adv_t * logp_t

    _replace_term(mp, "cispo", cispo)


def _gspo_without_power(mp):
    """GSPO's ratio is the sequence ratio: in the registered term (the expected gradients) and
    where chapter 16 computes the ratios themselves (their variances)."""
    _replace_term(mp, "gspo", _mod("fn.ratios").POLICY_TERMS["sequence"].fn)
    mp.setattr(_mod("experiments.ch16"), "gspo_ratios", _mod("fn.grpo_loss").sequence_ratios)


MUTATIONS = {
    "ch16.clip_stops_exactly": (
        "the upper clip uses eps_low (clip-higher forgotten)",
        lambda mp: _symmetric_clip(mp, "identities.ch16"),
    ),
    "ch16.entropy_rule_one_token": (
        "the threshold 1/n (the uniform probability) instead of e^{-H}",
        lambda mp: mp.setattr(
            _mod("identities.ch16"),
            "raises_entropy",
            lambda z: (lambda p: p < 1.0 / len(p))(np.exp(z - np.logaddexp.reduce(z))),
        ),
    ),
    "ch16.dual_clip_stops_exactly": (
        "the dual clip caps A > 0 terms instead of A < 0 ones",
        lambda mp: _wrap(
            mp,
            _mod("identities.ch16"),
            "dual_clipped_surrogate",
            lambda f: lambda ratio, adv, lo, hi, c: -f(ratio, -adv, hi, lo, c),
        ),
    ),
    "ch16.clip_higher_entropy_sign": (
        "the upper clip uses eps_low (clip-higher forgotten)",
        lambda mp: _symmetric_clip(mp, "experiments.ch16"),
    ),
    "ch16.clip_cov_raises_entropy": (
        "the covariance score with its sign flipped (the lowest-covariance tokens detached)",
        lambda mp: _wrap(
            mp, _mod("experiments.ch16"), "covariance_scores", lambda f: lambda lp, a: -f(lp, a)
        ),
    ),
    "ch16.entropy_covariance_exact": ("the covariance without its mean-centring", _uncentred),
    "ch16.entropy_first_order_slope": (
        "the covariance without its mean-centring",
        _uncentred_errors,
    ),
    "ch16.softmax_pg_closed_form": (
        "the prefix probability P_pi(h) dropped",
        lambda mp: _wrap(
            mp,
            _mod("tabular.entropy_dynamics"),
            "prefix_advantages",
            lambda f: lambda th, ans, r: (f(th, ans, r)[0], 1.0 + 0 * f(th, ans, r)[1]),
        ),
    ),
    "ch16.ratios_unbiased_at_old": ("CISPO's clipped weight not detached", _cispo_not_detached),
    "ch16.gspo_length_weighted": ("GSPO's ratio without the power 1/|y|", _gspo_without_power),
    "ch16.gspo_not_grad_j": ("GSPO's ratio without the power 1/|y|", _gspo_without_power),
    "ch16.sequence_is_unbiased_off_policy": (
        "the ratio's denominator taken at theta (a ratio of 1, no importance weight)",
        lambda mp: _wrap(
            mp,
            _mod("experiments.ch16"),
            "sequence_ratios",
            lambda f: lambda lt, lo, m: f(lt, lt.detach(), m),
        ),
    ),
    "ch16.clipped_ratios_biased_off_policy": (
        "theta never leaves theta_old",
        lambda mp: mp.setattr(
            _mod("identities.ch16"), "off_policy_theta", lambda th, t, seed=0: th
        ),
    ),
    "ch16.sequence_ratio_mean_one": (
        "the ratio upside down, pi_old / pi",
        lambda mp: _wrap(
            mp,
            _mod("experiments.ch16"),
            "sequence_ratios",
            lambda f: lambda lt, lo, m: f(lo, lt, m),
        ),
    ),
    "ch16.sequence_ratio_variance_grows": (
        "GSPO's ratio without the power 1/|y|",
        _gspo_without_power,
    ),
}
