"""Statistics on arrays for the book's Monte-Carlo checks and its comparisons of directions.

Pure numpy: z-scores, log-log slopes, sample means and variances with standard errors, and
the angle and norm ratio between two vectors.
"""

from __future__ import annotations

import math

import numpy as np

from rlviz import _validate as validate

__all__ = [
    "loglog_slope",
    "z_scores",
    "sample_mean_se",
    "sample_variance_se",
    "angle_and_norm_ratio",
    "angle_deg",
    "false_alarm_probability",
]


def loglog_slope(x, y) -> tuple[float, float]:
    r"""Least-squares fit of :math:`\log y = a + b \log x`; returns ``(b, a)``."""
    x = validate.array("x", x, ndim=1)
    y = validate.array("y", y, shape=(x.shape[0],))
    if np.any(x <= 0) or np.any(y <= 0):
        raise ValueError("x and y must be positive for a log-log fit")
    b, a = np.polyfit(np.log(x), np.log(y), 1)
    return float(b), float(a)


def z_scores(mean, se, exact, *, bias_bound: float = 0.0) -> np.ndarray:
    r"""How many standard errors each estimate lies from the exact value.

    :math:`z = \max(|\hat x - x| - b, 0) / \mathrm{se}`, where :math:`b` (``bias_bound``,
    default 0) bounds a known bias of the estimator (e.g. from cutting episodes at a horizon).
    Where the standard error is 0 (a deterministic estimate) it must be exact: z is 0 if it is
    and inf otherwise. Shapes: ``mean``, ``se`` and ``exact`` alike.
    """
    mean = validate.array("mean", mean)
    se = validate.array("se", se, shape=mean.shape)
    exact = validate.array("exact", exact, shape=mean.shape)
    gap = np.maximum(np.abs(mean - exact) - float(bias_bound), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, gap / se, np.where(gap > 1e-12, np.inf, 0.0))


def sample_mean_se(est) -> tuple[np.ndarray, np.ndarray]:
    """Monte-Carlo mean of sampled estimates ``(N, D)`` and its standard error ``std / sqrt(N)``."""
    est = validate.array("est", est, ndim=2)
    n = est.shape[0]
    if n < 2:
        raise ValueError(f"est needs at least 2 samples for a standard error, got {n}")
    return est.mean(axis=0), est.std(axis=0, ddof=1) / np.sqrt(n)


def sample_variance_se(x) -> tuple[float, float]:
    r"""The sample variance :math:`s^2` of ``x`` (shape ``(n,)``) and its large-:math:`n` standard error.

    :math:`\operatorname{se}(s^2) \approx \sqrt{(m_4 - s^4)/n}` with :math:`m_4` the fourth
    central sample moment (the delta method; valid when the fourth moment is finite).
    """
    x = validate.array("x", x, ndim=1)
    if x.size < 2:
        raise ValueError(f"x must have at least 2 samples, got {x.size}")
    c = x - x.mean()
    var = float(np.mean(c**2))
    m4 = float(np.mean(c**4))
    return var, float(np.sqrt(max(m4 - var**2, 0.0) / x.size))


def angle_and_norm_ratio(u, v) -> tuple[float, float]:
    r"""The angle between two vectors in degrees (0 = same direction) and the norm ratio
    :math:`\|u\| / \|v\|`. A zero vector has no direction: ``ValueError``."""
    u = validate.array("u", u, ndim=1)
    v = validate.array("v", v, shape=(u.shape[0],))
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        raise ValueError("u and v must be non-zero vectors to have an angle")
    cos = np.clip(u @ v / (nu * nv), -1.0, 1.0)
    return float(np.degrees(np.arccos(cos))), float(nu / nv)


def angle_deg(u, v) -> float:
    """The angle between two vectors in degrees (:func:`angle_and_norm_ratio` without the ratio)."""
    return angle_and_norm_ratio(u, v)[0]


def false_alarm_probability(n: int, z: float) -> float:
    r"""Probability that at least one of ``n`` independent standard normal statistics has
    :math:`|Z| > z`: the false-alarm rate of a rule "every estimate within ``z`` standard
    errors" applied to ``n`` independent estimates that are exactly right on average.

    .. math:: 1 - \bigl(1 - \operatorname{erfc}(z / \sqrt 2)\bigr)^n
    """
    n = validate.positive("n", n, integer=True)
    z = validate.positive("z", z)
    tail = math.erfc(z / math.sqrt(2.0))
    return float(-math.expm1(n * math.log1p(-tail)))
