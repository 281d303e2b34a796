"""Shared builders of the unit tests (one copy each), and a guard on torch's global state."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

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


def random_rollout(
    rng: np.random.Generator,
    T: int,
    N: int,
    p_term: float = 0.05,
    p_trunc: float = 0.05,
    dtype=np.float64,
) -> dict:
    """A random time-major rollout ``(T, N)`` in the keyword form of :mod:`rlviz.fn.returns`:
    rewards, values, ``v_T``, final-observation values and the two end flags."""
    return {
        "r_t": rng.normal(size=(T, N)).astype(dtype),
        "v_t": rng.normal(size=(T, N)).astype(dtype),
        "v_T": rng.normal(size=N).astype(dtype),
        "v_final_t": rng.normal(size=(T, N)).astype(dtype),
        "terminated_t": rng.random((T, N)) < p_term,
        "truncated_t": rng.random((T, N)) < p_trunc,
    }


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
