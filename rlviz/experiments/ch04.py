"""The settings and runs of chapter 4 that its identities, figures and notebook share."""

from __future__ import annotations

import numpy as np

from rlviz.experiments.corridor_settings import THETA
from rlviz.fn.stats import angle_and_norm_ratio
from rlviz.tabular.episodic import corridor, random_episodic_mdp
from rlviz.tabular.policy_gradient import (
    exact_gradient,
    jacobian_asymmetry,
    notes_direction,
    notes_direction_torch,
)

GAMMAS = (0.5, 0.8, 0.9, 0.95, 0.99)


def settings(gammas=GAMMAS, n_random: int = 5, seed: int = 4):
    out = [(corridor(g), THETA) for g in gammas]
    rng = np.random.default_rng(seed)
    for _ in range(n_random):
        out.append(
            (
                random_episodic_mdp(rng, 5, 3, float(rng.choice([0.5, 0.9, 0.99]))),
                rng.normal(size=(5, 3)),
            )
        )
    return out


DETAIL = "corridor, gamma in {0.5, 0.8, 0.9, 0.95, 0.99} + 5 random episodic MDPs (S=5, A=3)"


def notes_comparison(gammas=GAMMAS) -> list[dict]:
    """For each gamma: grad J, the notes' direction (gamma^t dropped), angle, norm ratio, asymmetry."""
    rows = []
    for g in gammas:
        m = corridor(g)
        grad = exact_gradient(m, THETA)
        notes = notes_direction(m, THETA)
        angle, ratio = angle_and_norm_ratio(notes, grad)
        asym, _ = jacobian_asymmetry(lambda th, m=m: notes_direction_torch(m, th), THETA)
        rows.append(
            {
                "gamma": g,
                "grad": grad,
                "notes": notes,
                "angle": angle,
                "norm_ratio": ratio,
                "asymmetry": asym,
            }
        )
    return rows
