"""Mutations for the rows of chapters 1-7 added in issue 13 (merged by test_mutations.py)."""

from __future__ import annotations

import importlib


def _mdp_module():
    return importlib.import_module("rlviz.tabular.mdp")


def _value_iteration_with_mean(mdp, *, tol=1e-12, max_iter=100_000):
    """Value iteration whose backup averages over actions instead of maximising: it computes
    the action values of the uniform policy, not Q*."""
    mdp_mod = _mdp_module()
    pi = mdp_mod.uniform_policy(mdp)
    return mdp_mod.state_values(mdp, pi), mdp_mod.action_values(mdp, pi)


MUTATIONS = {
    "ch2.value_iteration_optimal": (
        "value iteration backs up the mean over actions, not the max",
        lambda mp: mp.setattr(
            importlib.import_module("rlviz.identities.ch02"),
            "value_iteration",
            _value_iteration_with_mean,
        ),
    ),
}
