"""Shared builders of the unit tests (one copy each), the markers of whole test folders, and a
guard on torch's global state. Hypothesis strategies shared by several test files are in
tests/strategies.py (this file must import without hypothesis)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from rlviz.fn.returns import Transitions

try:  # not in the conformance venv (scripts/conformance.sh), which has no property tests
    from hypothesis import settings
except ImportError:
    settings = None

# Property tests draw the same examples on every run (the test command is reproducible, a red
# CI is never a fresh draw); HYPOTHESIS_PROFILE=explore draws new ones, to hunt for cases.
if settings is not None:
    settings.register_profile("repeatable", derandomize=True)
    settings.register_profile("explore", derandomize=False)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


# Tests in these folders carry the folder's marker (registered in pyproject.toml): `-m "not
# browser"` leaves them out. A `pytestmark` in a conftest.py would mark nothing: pytest reads
# it from test modules only.
FOLDER_MARKERS = {"browser": pytest.mark.browser, "conformance": pytest.mark.conformance}


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            marker = FOLDER_MARKERS.get(item.path.relative_to(here).parts[0])
            if marker is not None:
                item.add_marker(marker)


def random_rollout(
    rng: np.random.Generator,
    T: int,
    N: int,
    p_term: float = 0.05,
    p_trunc: float = 0.05,
    dtype=np.float64,
) -> Transitions:
    """A random time-major rollout ``(T, N)`` as :class:`rlviz.fn.returns.Transitions`:
    rewards, values, ``v_T``, final-observation values and the two end flags (independent
    draws: a step may be both terminated and truncated, termination wins)."""
    return Transitions(
        r_t=rng.normal(size=(T, N)).astype(dtype),
        v_t=rng.normal(size=(T, N)).astype(dtype),
        v_T=rng.normal(size=N).astype(dtype),
        v_final_t=rng.normal(size=(T, N)).astype(dtype),
        terminated_t=rng.random((T, N)) < p_term,
        truncated_t=rng.random((T, N)) < p_trunc,
    )


@pytest.fixture
def make_rollout():
    """:func:`random_rollout` as a fixture (a pure function: safe under hypothesis)."""
    return random_rollout


@pytest.fixture(autouse=True)
def torch_state_is_restored():
    """Every test leaves torch's thread count and default dtype as it found them."""
    threads, dtype = torch.get_num_threads(), torch.get_default_dtype()
    yield
    changed = []
    if torch.get_num_threads() != threads:
        changed.append(f"threads {threads} -> {torch.get_num_threads()}")
    if torch.get_default_dtype() != dtype:
        changed.append(f"default dtype {dtype} -> {torch.get_default_dtype()}")
    torch.set_num_threads(threads)
    torch.set_default_dtype(dtype)
    assert not changed, "the test changed torch's global state: " + ", ".join(changed)
