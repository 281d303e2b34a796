r"""Tabular MDPs and their exact quantities (chapters 1, 2 and 4).

A finite MDP :math:`M = (\mathcal S, \mathcal A, P, r, \gamma)` with start distribution
:math:`\rho_0`. Everything here is exact linear algebra in float64: no sampling.

Conventions
-----------
* ``P[s, a, s']`` is :math:`P(s' \mid s, a)`, shape ``(S, A, S)``.
* ``r[s, a]`` is the expected immediate reward :math:`r(s, a)`, shape ``(S, A)``.
* A policy is a table ``pi[s, a]`` :math:`= \pi(a \mid s)`, shape ``(S, A)``.
* Terminal states (optional, boolean mask of shape ``(S,)``) are absorbing with zero reward:
  an episode ends on reaching one. Their value is 0 and with them ``gamma = 1`` is allowed
  (an episodic problem), provided the policy reaches a terminal state with probability 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlviz import _validate as validate

__all__ = [
    "TabularMDP",
    "check_policy",
    "uniform_policy",
    "policy_transition",
    "policy_reward",
    "state_values",
    "action_values",
    "advantages",
    "objective",
    "finite_horizon_objective",
    "discounted_state_distribution",
    "state_visitation",
    "bellman_residuals",
    "value_iteration",
    "epsilon_greedy",
    "time_unrolled",
    "unrolled_policy",
]


@dataclass(frozen=True, eq=False)
class TabularMDP:
    r"""A validated finite MDP :math:`(\mathcal S, \mathcal A, P, r, \rho_0, \gamma)`.

    Parameters
    ----------
    P : array, shape (S, A, S)
        Transition probabilities :math:`P(s' \mid s, a)`; every ``P[s, a]`` sums to 1.
    r : array, shape (S, A)
        Expected immediate rewards :math:`r(s, a)`, finite.
    rho0 : array, shape (S,)
        Start-state distribution :math:`\rho_0`.
    gamma : float in [0, 1]
        Discount. ``gamma = 1`` requires terminal states.
    terminal : bool array, shape (S,), optional
        Absorbing zero-reward states at which an episode ends.
    state_names, action_names : sequences of str, optional
        Labels for figures.
    name : str
        A label.
    layout : dict, optional
        Drawing information (e.g. a gridworld's cells) for figures.

    Raises
    ------
    ValueError
        Naming the argument, what it got and what is allowed.
    """

    P: np.ndarray
    r: np.ndarray
    rho0: np.ndarray
    gamma: float
    terminal: np.ndarray | None = None
    state_names: tuple[str, ...] | None = None
    action_names: tuple[str, ...] | None = None
    name: str = field(default="MDP")
    layout: dict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        P = validate.array("P", self.P, ndim=3)
        S, A, S2 = P.shape
        if S != S2 or S == 0 or A == 0:
            raise ValueError(f"P must have shape (S, A, S) with S, A >= 1, got {P.shape}")
        validate.distribution_rows("P", P)
        r = validate.array("r", self.r, shape=(S, A))
        rho0 = validate.array("rho0", self.rho0, shape=(S,))
        validate.distribution_rows("rho0", rho0)
        gamma = validate.unit_interval("gamma", self.gamma)
        if self.terminal is None:
            term = np.zeros(S, dtype=bool)
        else:
            term = np.asarray(self.terminal)
            if term.shape != (S,) or term.dtype != bool:
                raise ValueError(
                    f"terminal must be a boolean array of shape ({S},), got "
                    f"dtype {term.dtype} and shape {term.shape}"
                )
        for s in np.flatnonzero(term):
            if not np.allclose(P[s, :, s], 1.0, atol=1e-12):
                raise ValueError(
                    f"terminal state {s} must be absorbing (P[{s}, a, {s}] = 1 for "
                    f"every a), got {P[s, :, s]}"
                )
            if np.any(r[s] != 0):
                raise ValueError(f"terminal state {s} must have zero reward, got r[{s}] = {r[s]}")
        if gamma == 1.0 and not term.any():
            raise ValueError(
                "gamma = 1 needs terminal states (an episodic MDP); with no "
                "terminal state allowed values are gamma in [0, 1)"
            )
        for label, names, n in (
            ("state_names", self.state_names, S),
            ("action_names", self.action_names, A),
        ):
            if names is not None and len(names) != n:
                raise ValueError(f"{label} must have {n} entries, got {len(names)}")
        for arr in (P, r, rho0, term):
            arr.setflags(write=False)
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "r", r)
        object.__setattr__(self, "rho0", rho0)
        object.__setattr__(self, "gamma", gamma)
        object.__setattr__(self, "terminal", term)

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    def with_gamma(self, gamma: float) -> TabularMDP:
        """The same MDP with another discount (validated)."""
        return TabularMDP(
            self.P,
            self.r,
            self.rho0,
            gamma,
            self.terminal,
            self.state_names,
            self.action_names,
            self.name,
            self.layout,
        )

    def __repr__(self) -> str:
        return (
            f"TabularMDP({self.name!r}, S={self.n_states}, A={self.n_actions}, "
            f"gamma={self.gamma}, terminal={int(self.terminal.sum())})"
        )


def check_policy(mdp: TabularMDP, pi) -> np.ndarray:
    r"""Validate a policy table :math:`\pi(a \mid s)` of shape ``(S, A)`` and return it as float64."""
    pi = validate.array("pi", pi, shape=(mdp.n_states, mdp.n_actions))
    validate.distribution_rows("pi", pi)
    return pi


def uniform_policy(mdp: TabularMDP) -> np.ndarray:
    """The policy that picks every action with probability 1/A."""
    return np.full((mdp.n_states, mdp.n_actions), 1.0 / mdp.n_actions)


def policy_transition(mdp: TabularMDP, pi) -> np.ndarray:
    r""":math:`P_\pi[s, s'] = \sum_a \pi(a \mid s) P(s' \mid s, a)`, shape ``(S, S)``."""
    pi = check_policy(mdp, pi)
    return np.einsum("sa,sat->st", pi, mdp.P)


def policy_reward(mdp: TabularMDP, pi) -> np.ndarray:
    r""":math:`r_\pi[s] = \sum_a \pi(a \mid s) r(s, a)`, shape ``(S,)``."""
    pi = check_policy(mdp, pi)
    return np.einsum("sa,sa->s", pi, mdp.r)


def _solve_nonterminal(
    mdp: TabularMDP, P_pi: np.ndarray, rhs: np.ndarray, *, left: bool
) -> np.ndarray:
    """Solve (I - gamma P_pi) x = rhs on the non-terminal states (x = 0 on terminal ones).

    ``left=True`` solves the row-vector system x (I - gamma P_pi) = rhs instead.
    """
    live = ~mdp.terminal
    M = np.eye(int(live.sum())) - mdp.gamma * P_pi[np.ix_(live, live)]
    if np.linalg.cond(M) > 1e12:
        raise ValueError(
            "I - gamma P_pi is singular: with gamma = 1 the policy must reach a "
            "terminal state with probability 1 from every state; use gamma < 1 "
            "or a policy that terminates"
        )
    x = np.zeros(mdp.n_states)
    x[live] = np.linalg.solve(M.T if left else M, rhs[live])
    return x


def state_values(mdp: TabularMDP, pi) -> np.ndarray:
    r"""Exact :math:`V^\pi = (I - \gamma P_\pi)^{-1} r_\pi` (notes section 2), shape ``(S,)``.

    Solved on the non-terminal states; terminal states have value 0.
    """
    P_pi, r_pi = policy_transition(mdp, pi), policy_reward(mdp, pi)
    return _solve_nonterminal(mdp, P_pi, r_pi, left=False)


def action_values(mdp: TabularMDP, pi) -> np.ndarray:
    r"""Exact :math:`Q^\pi(s, a) = r(s, a) + \gamma \sum_{s'} P(s' \mid s, a) V^\pi(s')`, shape ``(S, A)``."""
    v = state_values(mdp, pi)
    return mdp.r + mdp.gamma * np.einsum("sat,t->sa", mdp.P, v)


def advantages(mdp: TabularMDP, pi) -> np.ndarray:
    r"""Exact :math:`A^\pi(s, a) = Q^\pi(s, a) - V^\pi(s)`, shape ``(S, A)``."""
    return action_values(mdp, pi) - state_values(mdp, pi)[:, None]


def objective(mdp: TabularMDP, pi) -> float:
    r"""Exact :math:`J(\pi) = \mathbb E_{s_0 \sim \rho_0}[V^\pi(s_0)] = \mathbb E[G_0]`."""
    return float(mdp.rho0 @ state_values(mdp, pi))


def finite_horizon_objective(mdp: TabularMDP, pi, horizon: int) -> float:
    r"""Exact :math:`J_H = \sum_{t=0}^{H-1} \gamma^t \rho_0^\top P_\pi^t r_\pi` by forward recursion.

    The return of an episode cut after ``horizon`` steps (fewer if it terminates).
    """
    H = validate.positive("horizon", horizon, integer=True)
    P_pi, r_pi = policy_transition(mdp, pi), policy_reward(mdp, pi)
    p, J = mdp.rho0.copy(), 0.0
    for t in range(H):
        J += mdp.gamma**t * float(p @ r_pi)
        p = p @ P_pi
    return J


def state_visitation(mdp: TabularMDP, pi) -> np.ndarray:
    r"""Discounted visitation :math:`\eta(s) = \sum_{t \ge 0} \gamma^t \Pr(s_t = s)` of non-terminal states.

    :math:`\eta^\top = \rho_0^\top (I - \gamma P_\pi)^{-1}` restricted to non-terminal states;
    0 on terminal states. Defined for ``gamma = 1`` too in an episodic MDP (expected visits).
    """
    return _solve_nonterminal(mdp, policy_transition(mdp, pi), mdp.rho0, left=True)


def discounted_state_distribution(mdp: TabularMDP, pi) -> np.ndarray:
    r"""Exact :math:`d^\pi_\gamma(s) = (1 - \gamma) \sum_{t \ge 0} \gamma^t \Pr(s_t = s)` (notes section 4).

    :math:`d^\top = (1-\gamma)\, \rho_0^\top (I - \gamma P_\pi)^{-1}` over all states, terminal
    (absorbing) ones included, so it sums to 1. Requires ``gamma < 1``.
    """
    if not mdp.gamma < 1:
        raise ValueError(
            f"the discounted state distribution needs gamma in [0, 1), got "
            f"{mdp.gamma}; for an episodic MDP with gamma = 1 use state_visitation"
        )
    P_pi = policy_transition(mdp, pi)
    M = np.eye(mdp.n_states) - mdp.gamma * P_pi
    return (1 - mdp.gamma) * np.linalg.solve(M.T, mdp.rho0)


def bellman_residuals(mdp: TabularMDP, pi, v=None, q=None) -> tuple[np.ndarray, np.ndarray]:
    r"""Residuals of the two Bellman expectation equations.

    :math:`V(s) - \sum_a \pi(a|s) Q(s,a)` and
    :math:`Q(s,a) - r(s,a) - \gamma \sum_{s'} P(s'|s,a) V(s')`; both zero for the exact
    :math:`V^\pi, Q^\pi` (on non-terminal states; terminal states have V = Q = 0).
    """
    pi = check_policy(mdp, pi)
    v = state_values(mdp, pi) if v is None else validate.array("v", v, shape=(mdp.n_states,))
    q = (
        action_values(mdp, pi)
        if q is None
        else validate.array("q", q, shape=(mdp.n_states, mdp.n_actions))
    )
    res_v = v - np.einsum("sa,sa->s", pi, q)
    res_q = q - mdp.r - mdp.gamma * np.einsum("sat,t->sa", mdp.P, v)
    live = ~mdp.terminal
    return res_v[live], res_q[live]


def value_iteration(
    mdp: TabularMDP, *, tol: float = 1e-12, max_iter: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    r"""Optimal :math:`V^*` and :math:`Q^*` by value iteration, to ``tol`` in the max norm."""
    v = np.zeros(mdp.n_states)
    for _ in range(max_iter):
        q = mdp.r + mdp.gamma * np.einsum("sat,t->sa", mdp.P, v)
        v_new = np.where(mdp.terminal, 0.0, q.max(axis=1))
        if np.max(np.abs(v_new - v)) < tol:
            return v_new, q
        v = v_new
    raise ValueError(
        f"value iteration did not converge in {max_iter} iterations (gamma = "
        f"{mdp.gamma}); with gamma = 1 every policy must terminate"
    )


def epsilon_greedy(q, epsilon: float) -> np.ndarray:
    r"""The policy that takes :math:`\arg\max_a Q(s, a)` w.p. :math:`1 - \epsilon` and a uniform action otherwise."""
    q = validate.array("q", q, ndim=2)
    eps = validate.unit_interval("epsilon", epsilon)
    S, A = q.shape
    pi = np.full((S, A), eps / A)
    pi[np.arange(S), q.argmax(axis=1)] += 1 - eps
    return pi


def time_unrolled(mdp: TabularMDP, horizon: int) -> TabularMDP:
    r"""The finite-horizon problem as an episodic MDP on states :math:`(t, s)`.

    State ``t * S + s`` is "at time t in state s" for :math:`t < H`; the last state is a
    terminal one reached after step :math:`H - 1` (or from a terminal state of ``mdp``).
    Its value function solves the H-step problem exactly, for any :math:`\gamma \le 1`, so a
    linear solve on it must equal enumeration of every H-step trajectory. Use
    :func:`unrolled_policy` for the matching policy table.
    """
    H = validate.positive("horizon", horizon, integer=True)
    S, A = mdp.n_states, mdp.n_actions
    n = H * S + 1
    end = n - 1
    P = np.zeros((n, A, n))
    r = np.zeros((n, A))
    for t in range(H):
        for s in range(S):
            i = t * S + s
            if mdp.terminal[s] or t == H - 1:
                P[i, :, end] = 1.0
            else:
                P[i, :, (t + 1) * S : (t + 2) * S] = mdp.P[s]
            if not mdp.terminal[s]:
                r[i] = mdp.r[s]
    P[end, :, end] = 1.0
    rho0 = np.zeros(n)
    rho0[:S] = mdp.rho0
    term = np.zeros(n, dtype=bool)
    term[end] = True
    return TabularMDP(P, r, rho0, mdp.gamma, term, name=f"{mdp.name} unrolled to H={H}")


def unrolled_policy(pi, horizon: int) -> np.ndarray:
    """The stationary policy ``pi`` as a table on the states of :func:`time_unrolled`."""
    pi = validate.array("pi", pi, ndim=2)
    H = validate.positive("horizon", horizon, integer=True)
    A = pi.shape[1]
    return np.vstack([np.tile(pi, (H, 1)), np.full((1, A), 1.0 / A)])
