r"""The old policies :math:`\pi_{\theta_{\text{old}}}` of the trust-region chapters (10-12).

:func:`book_old` is the corridor read as a discounted MDP (:data:`GAMMA`) with the logits
:data:`rlviz.experiments.corridor_settings.THETA`, frozen by
:func:`rlviz.tabular.surrogate.old_policy`; :func:`random_olds` are seeded random dense MDPs
(:math:`S = 5`, :math:`A = 3`) with random logits. Chapters 10 and 11 check their identities on
both (:data:`DETAIL` says so in one line); chapter 12 and the errata appendix compute on
:func:`book_old`.
"""

from __future__ import annotations

import numpy as np

from rlviz.experiments.corridor_settings import THETA
from rlviz.tabular.episodic import corridor
from rlviz.tabular.examples import random_mdp
from rlviz.tabular.surrogate import old_policy

__all__ = ["GAMMA", "book_old", "RANDOM_GAMMAS", "random_olds", "DETAIL"]

GAMMA = 0.9


def book_old(gamma: float = GAMMA):
    """The book's old policy: the corridor discounted by ``gamma`` with the logits
    :data:`rlviz.experiments.corridor_settings.THETA`."""
    return old_policy(corridor(gamma), THETA)


RANDOM_GAMMAS = (0.5, 0.9, 0.95)


def random_olds(n: int = 5, seed: int = 10, gammas=RANDOM_GAMMAS):
    """``n`` seeded random dense MDPs (S=5, A=3, gamma drawn from ``gammas``) with random
    logits, each frozen as an old policy."""
    rng = np.random.default_rng(seed)
    return [
        old_policy(random_mdp(rng, 5, 3, float(rng.choice(gammas))), rng.normal(size=15))
        for _ in range(n)
    ]


DETAIL = "corridor (gamma 0.9) + 5 random MDPs (S=5, A=3, gamma in {0.5, 0.9, 0.95})"
