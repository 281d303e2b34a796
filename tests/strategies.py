"""Hypothesis strategies that several test files draw from (one copy each).

Test modules import it as ``from strategies import ...``: pyproject.toml's pytest
``pythonpath`` puts tests/ on the path (the importlib import mode does not let a test module
import conftest.py). It needs hypothesis, so only property tests import it; tests/conftest.py
stays importable without hypothesis (the conformance venv has none).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

__all__ = ["seeds", "coefficients", "MDPDraw", "mdp_draws"]

seeds = st.integers(0, 2**31 - 1)
"""Seeds of ``np.random.default_rng`` and ``torch.Generator().manual_seed``."""

coefficients = st.floats(0, 1)
"""A discount :math:`\\gamma` or a GAE :math:`\\lambda`, both ends included."""


class MDPDraw(NamedTuple):
    """What a random small tabular problem is built from: a generator seeded from the draw,
    numbers of states and actions, a horizon and a discount."""

    rng: np.random.Generator
    S: int
    A: int
    H: int
    gamma: float


def mdp_draws(
    *, S=(1, 5), A=(2, 3), H=(1, 4), gammas=(0.0, 0.5, 0.9)
) -> st.SearchStrategy[MDPDraw]:
    """:class:`MDPDraw` with ``S``, ``A`` and ``H`` in the inclusive ranges given and
    ``gamma`` one of ``gammas``: the random-MDP problems of the tabular tests (the test builds
    its MDP, e.g. ``random_mdp(d.rng, d.S, d.A, d.gamma)``, and its policy from ``d.rng``)."""
    return st.builds(
        lambda seed, s, a, h, gamma: MDPDraw(np.random.default_rng(seed), s, a, h, gamma),
        seeds,
        st.integers(*S),
        st.integers(*A),
        st.integers(*H),
        st.sampled_from(gammas),
    )
