"""The registry of identity checks behind ``python -m rlviz verify`` and the chapters.

Every identity of the book is a function registered here with :func:`identity`. The chapters
call :func:`check` with its key and print the same result the command line prints, so the book
and the CLI cannot disagree.

An identity function returns a :class:`Measure`: the quantity compared with the tolerance (a
maximum absolute error for an *exact* check; a test statistic such as the largest absolute
z-score for a *statistical* one; an exactly computed quantity that must stay on one side of
a threshold for a *bound*, e.g. "asymmetry >= 0.01") and a short, stable detail string.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Measure",
    "Identity",
    "Result",
    "identity",
    "check",
    "run",
    "run_all",
    "registry",
    "format_table",
    "stable_error",
]


@dataclass(frozen=True)
class Measure:
    """What an identity function measured: ``value`` is compared with the tolerance."""

    value: float
    detail: str = ""


@dataclass(frozen=True)
class Identity:
    key: str
    chapter: int
    title: str
    kind: str  # "exact", "statistical", "bound" or "sanity" (see :data:`KINDS`)
    tol: float
    statistic: str  # what ``value`` is, e.g. "max |lhs - rhs|" or "max |z|"
    fn: Callable[[], Measure]
    at_least: bool = False  # a bound that must be >= tol (otherwise value <= tol)


@dataclass(frozen=True)
class Result:
    identity: Identity
    value: float
    detail: str
    seconds: float

    @property
    def ok(self) -> bool:
        if not math.isfinite(self.value):
            return False
        if self.identity.at_least:
            return self.value >= self.identity.tol
        return self.value <= self.identity.tol

    def line(self) -> str:
        """One stable line for the notebooks (nbval compares it across runs and platforms)."""
        idt = self.identity
        if idt.kind in ("exact", "sanity"):
            shown = f"{idt.statistic} {stable_error(self.value)}"
            rule = f"tolerance {idt.tol:g}"
        elif idt.kind == "bound":
            shown = f"{idt.statistic} = {self.value:.3g}"
            rule = f"must be {'>=' if idt.at_least else '<='} {idt.tol:g}"
        else:
            shown = f"{idt.statistic} = {self.value:.2f}"
            rule = f"tolerance {idt.tol:g}"
        verdict = "OK" if self.ok else "FAIL"
        detail = f" [{self.detail}]" if self.detail else ""
        label = "sanity check (true by construction): " if idt.kind == "sanity" else ""
        return f"{label}{idt.title}: {shown} ({rule}): {verdict}{detail}"


_REGISTRY: dict[str, Identity] = {}

KINDS = {
    "exact": "an identity of the derivation, computed exactly (linear algebra, enumeration)",
    "statistical": "a Monte-Carlo test against an exact value, with a stated confidence rule",
    "bound": "an exactly computed quantity that must stay on one side of a threshold",
    "sanity": "a control that holds by construction (e.g. probabilities sum to 1); a test of "
    "the code, never cited as evidence for a claim",
}


def identity(
    key: str,
    *,
    chapter: int,
    title: str,
    kind: str = "exact",
    tol: float = 1e-10,
    statistic: str | None = None,
    at_least: bool = False,
):
    """Register ``fn`` (no arguments, returns a :class:`Measure`) as an identity check.

    The check passes when the measured value is ``<= tol`` (or ``>= tol`` for a bound with
    ``at_least=True``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if at_least and kind != "bound":
        raise ValueError("at_least=True is only meaningful for kind='bound'")
    if statistic is None:
        statistic = {
            "exact": "max |lhs - rhs|",
            "statistical": "max |z|",
            "bound": "value",
            "sanity": "max |lhs - rhs|",
        }[kind]

    def register(fn: Callable[[], Measure]) -> Callable[[], Measure]:
        if key in _REGISTRY and _REGISTRY[key].fn.__qualname__ != fn.__qualname__:
            raise ValueError(f"identity key {key!r} is registered twice")
        _REGISTRY[key] = Identity(key, chapter, title, kind, tol, statistic, fn, at_least)
        return fn

    return register


def registry() -> dict[str, Identity]:
    """The identities registered so far, by key, in chapter order.

    This module imports no checks: :mod:`rlviz.identities` registers them when imported
    (``import rlviz.identities`` loads every chapter's module), as the command line does.
    """
    return dict(sorted(_REGISTRY.items(), key=lambda kv: kv[1].chapter))


def _run(idt: Identity) -> Result:
    t0 = time.perf_counter()
    m = idt.fn()
    if not isinstance(m, Measure):
        raise TypeError(f"identity {idt.key!r} returned {type(m).__name__}, not Measure")
    return Result(idt, float(m.value), m.detail, time.perf_counter() - t0)


def run(key: str) -> Result:
    """Run one identity and return its :class:`Result`."""
    reg = registry()
    if key not in reg:
        raise ValueError(f"no identity {key!r}; known: {', '.join(reg)}")
    return _run(reg[key])


def check(key: str) -> None:
    """Run one identity and print its stable line (what the chapters show and nbval compares).

    Returns None, so a notebook cell ending in ``check(...)`` shows the line only once.
    """
    print(run(key).line())


def run_all(chapters=None) -> list[Result]:
    """Run every registered identity (optionally only those of the given chapters)."""
    return [_run(idt) for idt in registry().values() if chapters is None or idt.chapter in chapters]


def stable_error(err: float) -> str:
    """An error shown as a power-of-ten bound, so the text is stable across platforms.

    ``3.1e-16 -> '< 1e-12'``, ``4e-11 -> '< 1e-10'``; NaN and inf are shown as they are.
    """
    if not math.isfinite(err):
        return f"= {err}"
    if err < 1e-12:
        return "< 1e-12"
    return f"< 1e{math.floor(math.log10(err)) + 1}"


def format_table(results: list[Result]) -> str:
    """A plain-text table: chapter, identity, kind, measured value, tolerance, OK/FAIL."""
    rows = [("ch", "identity", "kind", "statistic", "value", "rule", "")]
    for r in results:
        i = r.identity
        rows.append(
            (
                str(i.chapter),
                i.title,
                i.kind,
                i.statistic,
                f"{r.value:.2e}",
                f"{'>=' if i.at_least else '<='} {i.tol:g}",
                "OK" if r.ok else "FAIL",
            )
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
