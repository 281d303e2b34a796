"""Input checks at the door of every public function.

Each check raises ``ValueError`` with a message that names the argument, says what it got
and what is allowed (STYLE.md, habit 3). Deep code trusts its inputs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np


def _shape_str(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def unit_interval(name: str, value, *, open_right: bool = False, open_left: bool = False) -> float:
    """Return ``value`` as a float after checking it lies in [0, 1] (ends optionally open)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from None
    lo = "(" if open_left else "["
    hi = ")" if open_right else "]"
    ok = (v > 0 if open_left else v >= 0) and (v < 1 if open_right else v <= 1)
    if not ok or math.isnan(v):
        raise ValueError(f"{name} must be in {lo}0, 1{hi}, got {value!r}")
    return v


def _is_integer(value) -> bool:
    """A Python or numpy integer; not a bool (``True`` is not a count)."""
    return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def positive(name: str, value, *, integer: bool = False, inf_ok: bool = False) -> float | int:
    """Check ``value > 0`` (and integrality if asked); ``inf_ok``: ``inf`` is allowed (no limit)."""
    if integer:
        if not _is_integer(value) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
        return int(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if inf_ok:
        if not v > 0:
            raise ValueError(f"{name} must be a number > 0 or inf (no limit), got {value!r}")
    elif not v > 0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def integer(name: str, value, *, minimum: int | None = None) -> int:
    """Check that ``value`` is an integer (Python or numpy, not a bool) ``>= minimum`` if given;
    return it as an ``int``: ``seed must be an integer >= 0, got -1``."""
    if not _is_integer(value) or (minimum is not None and value < minimum):
        allowed = "an integer" if minimum is None else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def real(name: str, value) -> float:
    """Check that ``value`` is a real number (Python or numpy; not a bool, a string or an array)
    and return it as a float. The range is for :func:`positive`, :func:`non_negative` or
    :func:`unit_interval`, which convert whatever ``float()`` accepts."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return float(value)


def boolean(name: str, value) -> bool:
    """Check that ``value`` is True or False (a Python or numpy bool, not 0, 1 or a string)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(name: str, value, allowed):
    """Check that ``value`` is one of ``allowed`` (any container of names: a tuple, a dict, a
    registry) and return it: ``level must be one of 'token', 'sequence', got 'word'``."""
    try:
        ok = value in allowed
    except TypeError:  # an unhashable value is in no dict
        ok = False
    if not ok:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def non_negative(name: str, value) -> float:
    """Check ``value`` is a finite number ``>= 0`` and return it as a float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}") from None
    if not v >= 0 or math.isinf(v):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def array(
    name: str,
    value,
    *,
    ndim: int | None = None,
    shape: Sequence[int | None] | None = None,
    dtype=np.float64,
    finite: bool = True,
) -> np.ndarray:
    """Convert ``value`` to an array of ``dtype`` and check its shape and finiteness.

    ``shape`` may hold ``None`` for a free axis. A mismatch raises instead of broadcasting.
    """
    try:
        a = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be an array of numbers, got {type(value).__name__}"
        ) from None
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {_shape_str(a.shape)}")
    if shape is not None:
        want = tuple(shape)
        if a.ndim != len(want) or any(w is not None and w != g for w, g in zip(want, a.shape)):
            shown = "(" + ", ".join("*" if w is None else str(w) for w in want) + ")"
            raise ValueError(f"{name} must have shape {shown}, got {_shape_str(a.shape)}")
    if finite and np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{name} must be finite (no NaN or inf), got {a[tuple(bad)]} at index "
            f"{tuple(int(i) for i in bad)}"
        )
    return a


def distribution_rows(name: str, a: np.ndarray, *, atol: float = 1e-9) -> None:
    """Check that the last axis of ``a`` holds probability distributions."""
    if np.any(a < -atol):
        idx = tuple(int(i) for i in np.argwhere(a < -atol)[0])
        raise ValueError(f"{name} must be non-negative probabilities, got {a[idx]} at index {idx}")
    sums = a.sum(axis=-1)
    bad = np.abs(sums - 1.0) > atol
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must sum to 1 over its last axis, got sum {sums[idx]:.6g} at index {idx}"
        )


def same_shape_tensors(**tensors):
    """Check that every keyword is a floating-point ``torch.Tensor`` and that all have the shape
    of the first (no silent broadcasting); return that shape. The message names the argument:
    ``adv must have the shape of ratio (4, 3), got (4,)``."""
    import torch  # here, so that the array-only checks above do not load torch

    names = list(tensors)
    for n in names:
        if not isinstance(tensors[n], torch.Tensor):
            raise ValueError(f"{n} must be a torch.Tensor, got {type(tensors[n]).__name__}")
        if not tensors[n].is_floating_point():
            raise ValueError(f"{n} must be a floating-point tensor, got dtype {tensors[n].dtype}")
    shape = tensors[names[0]].shape
    for n in names[1:]:
        if tensors[n].shape != shape:
            raise ValueError(
                f"{n} must have the shape of {names[0]} {tuple(shape)}, got "
                f"{tuple(tensors[n].shape)} (no silent broadcasting)"
            )
    return shape
