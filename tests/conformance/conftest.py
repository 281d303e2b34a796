"""Shared batch and comparison helper of the conformance tests (rlviz against TRL and verl).

These tests need TRL and verl, which live in their own venv (``bash scripts/conformance.sh``,
lock ``conformance/requirements.txt``). In the book's ``.venv`` they are not collected; with
``RLVIZ_CONFORMANCE=1`` (set by the script) a missing library is an error, not a skip.

The tests get the helpers as fixtures (``assert_close``, ``make_batch``, ``batch``; pytest's
importlib import mode does not let test modules import conftest). Every comparison goes through
``assert_close``, which records the case and its max |rlviz - library| in a table printed at
the end of the session.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import pytest
import torch

# float64 throughout; agreement required to TOL in max absolute difference (the values are
# O(1): losses, advantages, weights and their gradients).
TOL = 1e-12

_MISSING = [m for m in ("trl", "verl") if importlib.util.find_spec(m) is None]
if _MISSING:
    if os.environ.get("RLVIZ_CONFORMANCE") == "1":
        raise ImportError(
            f"tests/conformance needs {', '.join(_MISSING)}: run bash scripts/conformance.sh"
        )
    collect_ignore_glob = ["test_*.py"]

# TRL's rollout_func hook (used by test_trl) warns that it is experimental
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

_TABLE: list[tuple[str, str, str, float]] = []


def _assert_close(lib: str, pair: str, case: str, ours, theirs, tol: float = TOL) -> float:
    """Max |ours - theirs| (tensors of the same shape after broadcasting) <= tol; record it."""
    ours = torch.as_tensor(ours, dtype=torch.float64).detach()
    theirs = torch.as_tensor(theirs, dtype=torch.float64).detach()
    assert ours.shape == theirs.shape, f"{pair} [{case}]: shapes {ours.shape} != {theirs.shape}"
    diff = float((ours - theirs).abs().max()) if ours.numel() else 0.0
    _TABLE.append((lib, pair, case, diff))
    assert diff <= tol, f"{pair} [{case}]: max |rlviz - {lib}| = {diff:.3g} > {tol:g}"
    return diff


def pytest_terminal_summary(terminalreporter):
    if not _TABLE:
        return
    tr = terminalreporter
    tr.section("conformance: max |rlviz - library| per function pair, float64 unless marked")
    rows: dict[tuple[str, str], list] = {}
    for lib, pair, case, diff in _TABLE:
        rows.setdefault((lib, pair), []).append((case, diff))
    for (lib, pair), cases in rows.items():
        worst = max(d for _, d in cases)
        f32 = " (float32)" if any("float32" in c for c, _ in cases) else ""
        tr.write_line(f"{lib:4s} | {pair} | {len(cases):3d} cases{f32} | max {worst:.1e}")
    path = os.environ.get("RLVIZ_CONFORMANCE_TABLE")
    if path:  # every case, for the record
        with open(path, "w") as f:
            f.write(
                "| library | rlviz ~ library | case | max abs difference |\n|---|---|---|---|\n"
            )
            for lib, pair, case, diff in _TABLE:
                f.write(f"| {lib} | {pair} | {case} | {diff:.1e} |\n")


# ---------------------------------------------------------------- the perturbed run
@pytest.fixture(autouse=True, scope="session")
def _perturbed_rlviz():
    """RLVIZ_CONFORMANCE_PERTURB=drop-length-norm: the whole suite runs against an rlviz whose
    per-answer token mean forgets 1/|y_i| (seq-mean-token-mean summed instead, in
    grpo_aggregation and in chapter 14's length_normalised): the comparisons that use it must
    FAIL:
    ``RLVIZ_CONFORMANCE_PERTURB=drop-length-norm bash scripts/conformance.sh`` shows it."""
    if os.environ.get("RLVIZ_CONFORMANCE_PERTURB") != "drop-length-norm":
        yield
        return
    from rlviz.fn import grpo_aggregation as agg
    from rlviz.fn import grpo_loss as gl

    reduce, length_normalised = agg._reduce, gl.length_normalised

    def bad_reduce(x_t, mask_t, mode, *args):
        mode = "seq-mean-token-sum" if mode == "seq-mean-token-mean" else mode
        return reduce(x_t, mask_t, mode, *args)

    def bad_length_normalised(x_t, mask_t, norm):
        if norm == "sequence":
            return (x_t * torch.as_tensor(mask_t)).sum(-1).mean(1)
        return length_normalised(x_t, mask_t, norm)

    agg._reduce, gl.length_normalised = bad_reduce, bad_length_normalised
    try:
        yield
    finally:
        agg._reduce, gl.length_normalised = reduce, length_normalised


@dataclass
class Batch:
    """B groups of G answers, padded to L tokens, float64: rlviz's (B, G, L) layout, and the
    libraries' flat (B*G, L) layout (row b*G + i is answer i of group b)."""

    logp_t: torch.Tensor
    logp_old_t: torch.Tensor
    logp_ref_t: torch.Tensor
    mask_t: torch.Tensor
    r: torch.Tensor

    @property
    def B(self) -> int:
        return self.r.shape[0]

    @property
    def G(self) -> int:
        return self.r.shape[1]

    def flat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.B * self.G, *x.shape[2:])

    def unflat(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(self.B, self.G, *x.shape[1:])


def _make_batch(seed: int = 0, B: int = 3, G: int = 4, L: int = 7, spread: float = 0.3) -> Batch:
    """Random answers of lengths 1..L (one of length L and one of length 1 per batch), log-probs
    of the current policy in (-3, -0.05), old and reference log-probs within ``spread`` of them
    (ratios in about (0.74, 1.35): both clip sides of epsilon = 0.2 are active), rewards:
    group 0 binary, group 1 all equal (zero variance), the others continuous."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, L + 1, (B, G), generator=g)
    lengths[0, 0], lengths[-1, -1] = L, 1
    mask_t = torch.arange(L)[None, None, :] < lengths[..., None]
    logp_t = -0.05 - 2.95 * torch.rand(B, G, L, generator=g, dtype=torch.float64)

    def shifted():
        return logp_t + spread * (2 * torch.rand(B, G, L, generator=g, dtype=torch.float64) - 1)

    r = torch.rand(B, G, generator=g, dtype=torch.float64)
    r[0] = torch.tensor([1.0, 0.0, 1.0, 1.0] * G)[:G]
    if B > 1:
        r[1] = 0.5
    return Batch(logp_t=logp_t, logp_old_t=shifted(), logp_ref_t=shifted(), mask_t=mask_t, r=r)


def _registry_covered(lib: str, cases: dict, axis: str, name: str) -> None:
    """``name`` of the registry ``axis`` (rlviz.fn.grpo_practice.REGISTRIES) is compared with
    library ``lib`` ("trl" or "verl") in ``cases[axis]``, or its entry says why the library has
    no counterpart (NotInLibrary), never both."""
    from rlviz.fn.grpo_practice import REGISTRIES
    from rlviz.fn.registry import NotInLibrary

    entry = REGISTRIES[axis][name]
    said = getattr(entry, lib)
    if isinstance(said, NotInLibrary):
        assert name not in cases[axis], f"{axis} {name!r}: NotInLibrary for {lib} but compared"
    else:
        assert name in cases[axis], (
            f"{axis} {name!r} is registered with {lib}={said!r} but has no {lib} case"
        )


@pytest.fixture
def registry_covered():
    """``registry_covered(lib, cases, axis, name)``: see :func:`_registry_covered`."""
    return _registry_covered


@pytest.fixture
def assert_close():
    """``assert_close(lib, pair, case, ours, theirs, tol=TOL)``: max |ours - theirs| <= tol, recorded."""
    return _assert_close


@pytest.fixture
def make_batch():
    """``make_batch(seed=0, B=3, G=4, L=7, spread=0.3)``: a :class:`Batch`."""
    return _make_batch


@pytest.fixture
def batch() -> Batch:
    return _make_batch(0)
