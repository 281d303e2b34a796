r"""Advantage estimators on rollouts: returns, k-step advantages, GAE and lambda-returns.

Chapters 7-9 (notes sections 7-9; Schulman et al. 2016). Every function is pure and works on
a **time-major** rollout of ``N`` environments run for ``T`` steps: arrays of shape ``(T, N)``
whose row ``t`` is step ``t`` of every environment.

The rollout
-----------
* ``r_t[t, n]`` is the reward of step t; ``v_t[t, n]`` is :math:`\hat V(s_t)`, the value of the
  observation the step started from.
* ``terminated_t[t, n]`` (bool) is True when step t entered a terminal state: the episode
  ended and the value of what follows is 0 (no bootstrap).
* ``truncated_t[t, n]`` (bool) is True when the episode was cut after step t by a time limit
  (or any reason other than a terminal state): the episode would have continued, so the
  estimators bootstrap from ``v_final_t[t, n]`` :math:`= \hat V(s^{\text{final}}_{t+1})`, the
  value of the final observation (before the environment reset). If both flags are set,
  termination wins (the final state is terminal, its value is 0).
* ``v_T[n]`` is :math:`\hat V(s_T)`, the value of the observation after the last row; it is
  used when the episode is still running at the end of the rollout.

:class:`Transitions` holds these six arrays under these names; :func:`gae` and
:func:`gae_reference` take one (``gae(tr, gamma=0.99, lam=0.95)``), the other estimators take the
arrays as keyword arguments of the same names (``lambda_returns(**vars(tr), gamma=0.99,
lam=0.95)``).

So the value of the next observation that every estimator uses is

.. math::
    \hat v^{\text{next}}_t = \begin{cases}
      0 & \text{terminated}_t \\
      \hat V(s^{\text{final}}_{t+1}) = \texttt{v\_final\_t}[t] & \text{truncated}_t \text{ (and not terminated}_t) \\
      \texttt{v\_T} & t = T - 1 \text{ and the episode goes on} \\
      \texttt{v\_t}[t + 1] & \text{otherwise,}
    \end{cases}

and the recursions stop (``continue_t = 0``) wherever the episode ended or the rollout does.
The bootstrap value is never folded into the rewards.

Each public function validates its inputs (shapes, dtypes, ranges, NaN) and raises
``ValueError`` naming the argument. The result has the floating dtype of the inputs
(float32 stays float32).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlviz import _validate as validate

__all__ = [
    "Transitions",
    "next_values",
    "td_errors",
    "discounted_returns",
    "k_step_advantages",
    "gae_reference",
    "gae",
    "lambda_returns",
    "linear_scan",
]


# ---------------------------------------------------------------- the rollout record


@dataclass(frozen=True, kw_only=True, eq=False)
class Transitions:
    r"""A time-major rollout of N environments for T steps, as :func:`gae` reads it.

    The fields are the arrays of the module docstring, under the names the estimators use:

    ``r_t``, ``v_t``: float arrays ``(T, N)``
        Rewards :math:`r_t` and values :math:`\hat V(s_t)` of the observations acted on.
    ``v_T``: float array ``(N,)``
        :math:`\hat V(s_T)`, the bootstrap at the end of the rollout.
    ``terminated_t``, ``truncated_t``: bool arrays ``(T, N)``
        The episode ended at step t in a terminal state (no bootstrap) / by a time limit
        (bootstrap from ``v_final_t``). Two arrays: a truncation is not a termination.
    ``v_final_t``: float array ``(T, N)`` or None
        :math:`\hat V(s^{\text{final}}_{t+1})`, the value of the final observation, read where
        ``truncated_t``; required if any step is truncated.

    Keyword-only, so the two flags cannot be swapped by position; ``Transitions(**ro)`` takes
    a dict of these six names. A record, not a check: the estimators check its arrays at
    their door (``ValueError`` naming the field, e.g. ``v_T must have shape (4,) ...``).
    """

    r_t: np.ndarray
    v_t: np.ndarray
    v_T: np.ndarray
    terminated_t: np.ndarray
    truncated_t: np.ndarray
    v_final_t: np.ndarray | None = None


# ---------------------------------------------------------------- validation at the door


@dataclass(frozen=True)
class _Rollout:
    r: np.ndarray
    v: np.ndarray
    v_T: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    v_final: np.ndarray  # zeros where unused

    @property
    def ended(self) -> np.ndarray:
        return self.terminated | self.truncated


def _floats(name: str, x, shape: tuple) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool or not (
        np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    ):
        raise ValueError(f"{name} must be an array of real numbers, got dtype {a.dtype}")
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    if a.shape != shape:
        raise ValueError(
            f"{name} must have shape {shape} (time-major (T, N) rollout), got {a.shape}"
        )
    if not np.isfinite(a).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"{name} must be finite (no NaN or inf), got {a[bad]} at index {bad}")
    return a


def _flags(name: str, x, shape: tuple) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != bool:
        raise ValueError(f"{name} must be a boolean array (use .astype(bool)), got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape} like r_t, got {a.shape}")
    return a


def _check_rollout(r_t, v_t, v_T, terminated_t, truncated_t, v_final_t) -> _Rollout:
    r = np.asarray(r_t)
    if r.ndim != 2:
        raise ValueError(
            f"r_t must be time-major with shape (T, N), got shape {r.shape}; "
            f"for a single environment pass r_t[:, None]"
        )
    T, N = r.shape
    if T == 0 or N == 0:
        raise ValueError(f"r_t must have T >= 1 rows and N >= 1 columns, got shape {r.shape}")
    r = _floats("r_t", r, (T, N))
    v = _floats("v_t", v_t, (T, N))
    v_T = _floats("v_T", v_T, (N,))
    term = _flags("terminated_t", terminated_t, (T, N))
    trunc = _flags("truncated_t", truncated_t, (T, N))
    dtype = np.result_type(r, v, v_T)
    if v_final_t is None:
        if trunc.any():
            t, n = (int(i) for i in np.argwhere(trunc)[0])
            raise ValueError(
                f"truncated_t is True at (t, n) = ({t}, {n}) but v_final_t is None: "
                f"on truncation the estimators bootstrap from the value of the final "
                f"observation, so pass v_final_t (shape {(T, N)})"
            )
        v_final = np.zeros((T, N), dtype)
    else:
        v_final = _floats("v_final_t", v_final_t, (T, N))
        dtype = np.result_type(dtype, v_final)

    def cast(a):
        return a.astype(dtype, copy=False)

    return _Rollout(cast(r), cast(v), cast(v_T), term, trunc, cast(v_final))


def _check_transitions(tr) -> _Rollout:
    if not isinstance(tr, Transitions):
        raise ValueError(
            f"tr must be a rlviz.fn.returns.Transitions (r_t, v_t, v_T, terminated_t, "
            f"truncated_t, v_final_t), got {type(tr).__name__}"
        )
    return _check_rollout(tr.r_t, tr.v_t, tr.v_T, tr.terminated_t, tr.truncated_t, tr.v_final_t)


def _coefficient(name: str, x, n_columns: int | None = None):
    """A coefficient in [0, 1]: a number (one for every column) or an array ``(N,)`` (one per
    column, e.g. one gamma per setting when a grid of settings shares one rollout)."""
    if np.ndim(x) == 0:
        return validate.unit_interval(name, x)
    c = np.asarray(x)
    if c.ndim != 1 or (n_columns is not None and c.shape[0] != n_columns):
        raise ValueError(
            f"{name} must be a number in [0, 1] or an array of shape "
            f"({n_columns},) (one per column), got shape {c.shape}"
        )
    if not np.issubdtype(c.dtype, np.number) or np.any(~((c >= 0) & (c <= 1))):
        raise ValueError(f"{name} must be in [0, 1] in every column, got {c!r}")
    return c.astype(np.float64)


# ---------------------------------------------------------------- building blocks


def _next_values(ro: _Rollout) -> np.ndarray:
    nxt = np.empty_like(ro.v)
    nxt[:-1] = ro.v[1:]
    nxt[-1] = ro.v_T
    np.copyto(nxt, ro.v_final, where=ro.truncated)
    np.copyto(nxt, 0, where=ro.terminated)
    return nxt


def _continues(ro: _Rollout) -> np.ndarray:
    """continue_t = 1 when row t + 1 is the same episode (not ended, not the last row)."""
    cont = ~ro.ended
    cont[-1] = False
    return cont


def next_values(v_t, *, v_T, terminated_t, truncated_t, v_final_t=None) -> np.ndarray:
    r"""The value of the next observation, :math:`\hat v^{\text{next}}_t` of the module docstring.

    Shapes: ``v_t``, flags, ``v_final_t`` ``(T, N)``; ``v_T`` ``(N,)``; result ``(T, N)``.
    """
    ro = _check_rollout(
        np.zeros_like(np.asarray(v_t)), v_t, v_T, terminated_t, truncated_t, v_final_t
    )
    return _next_values(ro)


def td_errors(r_t, v_t, *, v_T, terminated_t, truncated_t, gamma, v_final_t=None) -> np.ndarray:
    r"""TD residuals :math:`\delta_t = r_t + \gamma \hat v^{\text{next}}_t - \hat V(s_t)`, shape ``(T, N)``.

    :math:`\delta_t` is the one-step advantage :math:`\hat A^{(1)}_t` (notes section 7).
    """
    ro = _check_rollout(r_t, v_t, v_T, terminated_t, truncated_t, v_final_t)
    return _deltas(ro, _coefficient("gamma", gamma, ro.r.shape[1]))


def _deltas(ro: _Rollout, gamma) -> np.ndarray:
    g = np.asarray(gamma, dtype=ro.v.dtype)
    delta = _next_values(ro)
    delta *= g
    delta += ro.r
    delta -= ro.v
    return delta


def discounted_returns(r_t, *, v_T, terminated_t, truncated_t, gamma, v_final_t=None) -> np.ndarray:
    r"""Bootstrapped discounted returns :math:`G_t = r_t + \gamma\,(G_{t+1} \text{ or bootstrap})`.

    .. math::
        G_t = r_t + \gamma \begin{cases} 0 & \text{terminated}_t \\
        \texttt{v\_final\_t}[t] & \text{truncated}_t \\ \texttt{v\_T} & t = T-1 \\
        G_{t+1} & \text{otherwise,} \end{cases}

    i.e. :math:`G_t = \sum_{l=0}^{n-1} \gamma^l r_{t+l} + \gamma^n \hat v^{\text{next}}_{t+n-1}`
    where step :math:`t + n - 1` is the last of the episode in the rollout. For an episode
    that terminates inside the rollout this is the Monte-Carlo return of notes section 1.
    Shapes: ``r_t`` and flags ``(T, N)``, ``v_T`` ``(N,)``; result ``(T, N)``.
    """
    ro = _check_rollout(
        r_t, np.zeros_like(np.asarray(r_t)), v_T, terminated_t, truncated_t, v_final_t
    )
    gamma = _coefficient("gamma", gamma, ro.r.shape[1])
    # with v = 0 the TD residual is r_t + gamma * (bootstrap or 0) and G solves G = delta + gamma c G
    delta = _deltas(ro, gamma)
    return _discounted_sum(delta, _continues(ro), gamma)


def k_step_advantages(
    r_t, v_t, *, k: int, v_T, terminated_t, truncated_t, gamma, v_final_t=None
) -> np.ndarray:
    r"""The k-step advantage estimate :math:`\hat A^{(k)}_t` (notes section 7), shape ``(T, N)``.

    .. math::
        \hat A^{(k)}_t = \sum_{l=0}^{m-1} \gamma^l r_{t+l} + \gamma^{m} \hat v^{\text{next}}_{t+m-1}
        - \hat V(s_t), \qquad m = \min(k, n_t),

    where :math:`n_t` is the number of steps from t to the end of its episode or of the rollout
    (inclusive). For :math:`m = k` the last term is :math:`\gamma^k \hat V(s_{t+k})`; when the
    episode ends first, :math:`\hat A^{(k)}_t` uses the full (bootstrapped) return, as
    :math:`k = \infty` does. Computed directly, step by step over l (vectorised over t and n), so
    it is an independent check of the telescoping sum of chapter 8.
    """
    k = validate.positive("k", k, integer=True)
    ro = _check_rollout(r_t, v_t, v_T, terminated_t, truncated_t, v_final_t)
    gamma = _coefficient("gamma", gamma, ro.r.shape[1])
    T, N = ro.r.shape
    nxt = _next_values(ro)
    cont = _continues(ro)
    acc = np.zeros((T, N), dtype=ro.r.dtype)
    alive = np.ones((T, N), dtype=bool)  # step t + l still belongs to t's episode and rollout
    for l in range(min(k, T)):
        rows = slice(0, T - l)
        a = alive[rows]
        acc[rows] += np.where(a, gamma**l * ro.r[l:], 0.0).astype(acc.dtype)
        last = a & ((l == k - 1) | ~cont[l:])  # step t + l is where the k-step sum stops
        acc[rows] += np.where(last, gamma ** (l + 1) * nxt[l:], 0.0).astype(acc.dtype)
        alive[rows] = a & cont[l:] & (l < k - 1)
    return acc - ro.v


# ---------------------------------------------------------------- GAE


def gae_reference(tr: Transitions, *, gamma, lam) -> np.ndarray:
    r"""GAE by the plain backward loop, one environment and one step at a time (the test oracle).

    .. math::
        \delta_t = r_t + \gamma \hat v^{\text{next}}_t - \hat V(s_t), \qquad
        \hat A_t = \delta_t + \gamma \lambda \,\text{continue}_t\, \hat A_{t+1},

    with :math:`\text{continue}_t = 0` where the episode ended at t or t = T - 1.
    Written to be read, not to be fast. Arguments and shapes as :func:`gae`.
    """
    ro = _check_transitions(tr)
    gamma = _coefficient("gamma", gamma, ro.r.shape[1])
    lam = _coefficient("lam", lam, ro.r.shape[1])
    T, N = ro.r.shape
    adv = np.zeros((T, N), dtype=ro.r.dtype)
    gamma_n, lam_n = np.broadcast_to(gamma, (N,)), np.broadcast_to(lam, (N,))
    for n in range(N):
        gamma, lam = gamma_n[n], lam_n[n]  # column n's coefficients
        a_next = 0.0  # A_{t+1} of the same episode
        for t in reversed(range(T)):
            if ro.terminated[t, n]:  # episode over: nothing follows
                v_next, same_episode = 0.0, False
            elif ro.truncated[t, n]:  # cut by a time limit: bootstrap from the final obs
                v_next, same_episode = ro.v_final[t, n], False
            elif t == T - 1:  # rollout over, episode goes on: bootstrap from s_T
                v_next, same_episode = ro.v_T[n], False
            else:
                v_next, same_episode = ro.v[t + 1, n], True
            delta = ro.r[t, n] + gamma * v_next - ro.v[t, n]
            a_next = delta + (gamma * lam * a_next if same_episode else 0.0)
            adv[t, n] = a_next
    return adv


def gae(tr: Transitions, *, gamma, lam) -> np.ndarray:
    r"""Generalised advantage estimates :math:`\hat A^{\text{GAE}(\gamma,\lambda)}_t`, shape ``(T, N)``.

    .. math::
        \hat A_t = \sum_{l=0}^{n_t - 1} (\gamma\lambda)^l \delta_{t+l}
                 = \delta_t + \gamma\lambda\,\text{continue}_t\,\hat A_{t+1},

    (notes sections 8-9; Schulman et al. 2016, eq. 16), where :math:`n_t` counts the steps
    to the end of t's episode or of the rollout and :math:`\delta_t` are :func:`td_errors`.

    Parameters
    ----------
    tr : Transitions
        The rollout: ``r_t``, ``v_t``, the flags and ``v_final_t`` ``(T, N)``, ``v_T``
        ``(N,)``; a truncated step bootstraps from ``v_final_t``, a terminated one from 0.
    gamma, lam : floats in [0, 1], or float arrays (N,) in [0, 1]
        Discount and GAE parameter: one for all columns, or one per column (a grid of
        settings in one rollout, as the PPO trainer of chapter 13 runs it).

    Notes
    -----
    Vectorised: the recursion is run by the blocked scan of :func:`linear_scan`. Agrees with
    :func:`gae_reference` to rounding (tests/fn/test_returns.py).
    """
    ro = _check_transitions(tr)
    gamma = _coefficient("gamma", gamma, ro.r.shape[1])
    lam = _coefficient("lam", lam, ro.r.shape[1])
    return _discounted_sum(_deltas(ro, gamma), _continues(ro), gamma * lam)


def lambda_returns(
    r_t, v_t, *, v_T, terminated_t, truncated_t, gamma, lam, v_final_t=None
) -> np.ndarray:
    r"""The lambda-return value targets :math:`G^\lambda_t`, by their own recursion, ``(T, N)``.

    .. math::
        G^\lambda_t = r_t + \gamma \begin{cases}
          \hat v^{\text{next}}_t & \text{episode or rollout ends at } t \\
          (1-\lambda) \hat V(s_{t+1}) + \lambda G^\lambda_{t+1} & \text{otherwise,}
        \end{cases}

    the geometric mixture :math:`(1-\lambda)\sum_k \lambda^{k-1} G^{(k)}_t` of k-step returns
    (Sutton and Barto 2018, section 12.1). Chapter 9 checks
    :math:`G^\lambda_t = \hat A^{\text{GAE}}_t + \hat V(s_t)`.
    """
    ro = _check_rollout(r_t, v_t, v_T, terminated_t, truncated_t, v_final_t)
    gamma = _coefficient("gamma", gamma, ro.r.shape[1])
    lam = _coefficient("lam", lam, ro.r.shape[1])
    cont = _continues(ro)
    nxt = _next_values(ro)
    # G = b + gamma*lam*cont*G_{t+1} with b = r + gamma * (next value, weighted 1-lam if continuing)
    b = ro.r + gamma * np.where(cont, (1 - lam) * nxt, nxt)
    return _discounted_sum(b.astype(ro.r.dtype), cont, gamma * lam)


# ---------------------------------------------------------------- the fast recursion

_LEAF = 32  # below this many rows the plain loop is cheapest
_BLOCK = 16  # block length of the blocked scan (measured: 8-32 are within noise)


def linear_scan(x_t, a_t) -> np.ndarray:
    r"""Solve :math:`y_t = x_t + a_t\, y_{t+1}` backwards from :math:`y_T = 0`; shapes ``(T, N)``.

    GAE is the case :math:`x_t = \delta_t`, :math:`a_t = \gamma\lambda\,\text{continue}_t`;
    the lambda-return and the discounted return are others. ``a_t[T-1]`` is ignored.

    Blocked over time so numpy, not Python, loops over most rows. Cut the T rows into
    :math:`n_b` blocks of :math:`B` rows (a remainder at the end is run by the plain loop first).

    1. Inside every block at once (vectorised over the blocks and the N environments), run the
       recursion with a zero carry-in, and turn :math:`a` into the products
       :math:`p_i = \prod_{m=i}^{B-1} a_m` (in place, as the loop walks back).
    2. The true values at the blocks' first rows obey the same kind of recursion,
       :math:`S_b = y^{\text{local}}_{b,0} + p_{b,0} S_{b+1}`, on :math:`n_b` rows: solve it by
       calling this function again (recursively blocked).
    3. Add the carry: :math:`y_{b,i} = y^{\text{local}}_{b,i} + p_{b,i} S_{b+1}`, in one pass.

    About :math:`3B \log_B T` small numpy calls instead of :math:`2T`. The products are those
    of the plain loop, regrouped: no division, no underflow-prone rescaling.
    """
    x = np.asarray(x_t)
    if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"x_t must be a float array of shape (T, N), got dtype {x.dtype} and shape {x.shape}"
        )
    a = _floats("a_t", a_t, x.shape)
    y = x.copy()
    _scan_inplace(y, a.astype(x.dtype, copy=True))
    return y


def _discounted_sum(x: np.ndarray, cont: np.ndarray, kappa) -> np.ndarray:
    """y_t = x_t + kappa * cont_t * y_{t+1}, overwriting and returning ``x`` (owned by the caller);
    ``kappa`` a number or one per column ``(N,)``."""
    a = np.multiply(cont, np.asarray(kappa, dtype=x.dtype), dtype=x.dtype)
    _scan_inplace(x, a)
    return x


def _scan_inplace(y: np.ndarray, a: np.ndarray) -> None:
    """linear_scan on arrays it may overwrite: ``y`` becomes the solution, ``a`` is destroyed."""
    T = y.shape[0]
    if T <= _LEAF or T < 2 * _BLOCK:  # short: the plain loop (also ends the recursion)
        tmp = np.empty_like(y[0])
        for t in range(T - 2, -1, -1):
            np.multiply(a[t], y[t + 1], out=tmp)
            y[t] += tmp
        return
    B = _BLOCK
    nb, rem = divmod(T, B)
    end = nb * B
    tail = np.zeros_like(y[0])  # true y at row `end` (0 when there is no remainder)
    if rem:
        _scan_inplace(y[end:], a[end:])
        tail = y[end]
    y3 = y[:end].reshape(nb, B, -1)
    a3 = a[:end].reshape(nb, B, -1)
    tmp = np.empty_like(y3[:, 0])
    for i in range(B - 2, -1, -1):  # 1. every block at once, zero carry-in
        np.multiply(a3[:, i], y3[:, i + 1], out=tmp)
        y3[:, i] += tmp
        a3[:, i] *= a3[:, i + 1]
    starts = y3[:, 0].copy()  # 2. the recursion between block starts
    starts[-1] += a3[-1, 0] * tail
    _scan_inplace(starts, a3[:, 0].copy())
    carry = np.concatenate([starts[1:], tail[None]])  # S_{b+1} for every block b
    a3 *= carry[:, None]  # 3. carry into every row
    y3 += a3
