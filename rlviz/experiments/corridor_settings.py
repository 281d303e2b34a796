r"""The corridor with the book's logits, and the random episodic MDPs checked beside it.

:func:`book_setting` is the corridor of :func:`rlviz.tabular.episodic.corridor` with softmax
logits :data:`THETA` and episodes cut at :data:`HORIZON` steps: chapters 3, 5 and 6 and the
errata appendix compute on it. Their identities run on :func:`settings`, the corridor at each
of :data:`GAMMAS` and five random episodic MDPs (:data:`SETTINGS_DETAIL` says so in one line);
:func:`enumerated_settings` adds every trajectory and the exact :math:`\nabla J_H`. Chapters 4
and 10-12 put :data:`THETA` on the discounted corridor, without a horizon.
"""

from __future__ import annotations

import numpy as np

from rlviz.tabular.episodic import corridor, random_episodic_mdp
from rlviz.tabular.policy_gradient import exact_gradient, softmax_policy
from rlviz.tabular.trajectories import enumerate_trajectories

__all__ = [
    "THETA",
    "HORIZON",
    "GAMMAS",
    "book_setting",
    "random_settings",
    "settings",
    "enumerated_settings",
    "SETTINGS_DETAIL",
]

THETA = np.array([[0.3, -0.2], [-0.4, 0.5], [0.2, 0.1], [0.0, 0.0]])


HORIZON = 6


GAMMAS = (0.5, 0.9, 1.0)


def book_setting(gamma: float = 0.9):
    """The chapters' setting: (corridor MDP, logits theta, policy pi, horizon H)."""
    mdp = corridor(gamma)
    return mdp, THETA, softmax_policy(THETA), HORIZON


def random_settings(n: int = 5, seed: int = 0, horizon: int = 3):
    """``n`` random episodic MDPs (S=4, A=3) with random logits, for the identity rows."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        mdp = random_episodic_mdp(rng, 4, 3, float(rng.choice([0.5, 0.9, 1.0])))
        theta = rng.normal(size=(4, 3))
        out.append((mdp, theta, softmax_policy(theta), horizon))
    return out


def settings():
    return [book_setting(g) for g in GAMMAS] + random_settings()


def enumerated_settings():
    """Each setting of :func:`settings` with its enumerated trajectories and exact grad J_H:
    yields ``(mdp, theta, pi, H, tr, grad)``."""
    for mdp, theta, pi, H in settings():
        yield mdp, theta, pi, H, enumerate_trajectories(mdp, pi, H), exact_gradient(mdp, theta, H)


SETTINGS_DETAIL = "corridor H=6, gamma in {0.5, 0.9, 1} + 5 random MDPs (S=4, A=3, H=3)"
