"""Mutations for the rows of chapters 8-12 added by issue 13 (merged into test_mutations.py).

Each plants a plausible bug in what the row is about and the row must FAIL with it.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch


def module(name: str):
    return importlib.import_module(f"rlviz.{name}")


def wrap(mp, mod, name, make):
    """Replace ``mod.name`` by ``make(original)``."""
    mp.setattr(mod, name, make(getattr(mod, name)))


def _normalised_undiscounted(mdp, pi):
    """The undiscounted visitation normalised to sum 1: the states a time-step average sees."""
    eta = module("tabular.surrogate").undiscounted_visitation(mdp, pi)
    return eta / eta.sum()


def _score_without_mean(f):
    """The softmax score as e_a, its -pi(.|s) part dropped (the score no longer has mean 0)."""
    return lambda pi: np.eye(pi.size).reshape(*pi.shape, pi.size)


def _total_variation(old, th):
    """Mean total variation 1/2 sum_a |pi_old - pi_theta| in place of the mean KL."""
    S, A = old.mdp.n_states, old.mdp.n_actions
    p = torch.softmax(th.reshape(S, A), 1)
    p_old = torch.tensor(old.pi, dtype=p.dtype)
    return (torch.tensor(old.d, dtype=p.dtype) * 0.5 * (p - p_old).abs().sum(1)).sum()


MUTATIONS = {
    # chapter 12: the clip
    "ch12.clip_equality_case": (
        "the two-sided clip without the min (the notes' wording)",
        lambda mp: wrap(
            mp,
            module("identities.ch12"),
            "clipped_surrogate",
            lambda f: lambda r, a, e: torch.clamp(r, 1 - e, 1 + e) * a,
        ),
    ),
    # chapter 12: the surrogate as practice computes it
    "ch12.exact_surrogate_gradient": (
        "the exact surrogate's states weighted by the undiscounted visitation",
        lambda mp: mp.setattr(
            module("tabular.surrogate"), "discounted_state_distribution", _normalised_undiscounted
        ),
    ),
    "ch12.step_average_reweights_states": (
        "the time-step average weighted by the discounted visitation (the gap hidden)",
        lambda mp: mp.setattr(
            module("tabular.surrogate"),
            "undiscounted_visitation",
            module("tabular.mdp").state_visitation,
        ),
    ),
    "ch12.gae_bias_with_wrong_value": (
        "GAE's deltas computed with the true V instead of V-hat",
        lambda mp: wrap(
            mp,
            module("tabular.surrogate"),
            "gae_moments",
            lambda f: (
                lambda mdp, pi, v_hat, lam: f(
                    mdp, pi, module("tabular.mdp").state_values(mdp, pi), lam
                )
            ),
        ),
    ),
    "ch12.lambda_one_value_is_a_baseline": (
        "GAE's lambda ignored (0.95 used)",
        lambda mp: wrap(
            mp,
            module("tabular.surrogate"),
            "gae_moments",
            lambda f: lambda mdp, pi, v_hat, lam: f(mdp, pi, v_hat, 0.95),
        ),
    ),
    "ch12.normalisation_keeps_direction": (
        "the score e_a without its -pi(.|s) (no longer mean 0)",
        lambda mp: wrap(mp, module("tabular.surrogate"), "score_table", _score_without_mean),
    ),
    "ch12.kl_quadratic_in_alpha": (
        "the total variation in place of the KL",
        lambda mp: mp.setattr(module("experiments.ch12"), "mean_kl_torch", _total_variation),
    ),
}
