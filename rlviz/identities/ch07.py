"""Chapter 7: k-step advantages and GAE, exact bias and variance on a tabular MDP."""

from __future__ import annotations

import numpy as np

from rlviz.tabular.advantage_moments import (
    gae_moments,
    gae_moments_by_enumeration,
    kstep_moments,
    kstep_moments_by_enumeration,
    value_error,
)
from rlviz.tabular.examples import book_grid_policy, random_mdp, random_policy
from rlviz.tabular.mdp import policy_transition, state_values, time_unrolled, unrolled_policy
from rlviz.verify import Measure, identity

LAMBDAS = (0.0, 0.3, 0.7, 0.95, 1.0)


@identity(
    "ch7.unbiased_with_true_v",
    chapter=7,
    title="with the true V, E[A^(k) | s, a] = A(s, a) for every k, and so does GAE",
)
def unbiased_with_true_v() -> Measure:
    grid, pi = book_grid_policy()
    rng = np.random.default_rng(7)
    mdp = random_mdp(rng, 5, 3, 0.9)
    cases = [(grid, pi), (mdp, random_policy(rng, 5, 3))]
    errs = []
    for m, p in cases:
        v = state_values(m, p)
        errs += [np.abs(kstep_moments(m, p, v, k).bias).max() for k in range(1, 21)]
        errs += [np.abs(gae_moments(m, p, v, lam).bias).max() for lam in LAMBDAS]
    return Measure(
        float(max(errs)), "gridworld + random MDP, k = 1..20, lambda in {0, .3, .7, .95, 1}"
    )


@identity(
    "ch7.kstep_bias_formula",
    chapter=7,
    title="V-hat = V + e: bias of A^(k) = gamma^k E[e(s_{t+k}) | s, a] - e(s) for every k (eq-kstep-bias)",
)
def kstep_bias_formula() -> Measure:
    grid, pi = book_grid_policy()
    rng = np.random.default_rng(17)
    mdp = random_mdp(rng, 5, 3, 0.9)
    errs = []
    for m, p in ((grid, pi), (mdp, random_policy(rng, 5, 3))):
        e = value_error(m, 0.3)
        v_hat = state_values(m, p) + e
        P_pi = policy_transition(m, p)
        after = e.copy()  # E[e(s_{t+k}) | s_{t+1} = s'] for k = 1: e itself
        for k in range(1, 21):
            predicted = m.gamma**k * np.einsum("sat,t->sa", m.P, after) - e[:, None]
            errs.append(np.abs(kstep_moments(m, p, v_hat, k).bias - predicted).max())
            after = P_pi @ after
    return Measure(float(max(errs)), "gridworld + random MDP, V-hat error 0.3, k = 1..20")


@identity(
    "ch7.kstep_moments_enumeration",
    chapter=7,
    title="mean and variance of A^(k) by moment recursion = by enumerating trajectories",
)
def kstep_moments_enumeration() -> Measure:
    grid, pi = book_grid_policy()
    v_hat = state_values(grid, pi) + value_error(grid, 0.2)
    errs = []
    for k in (1, 2, 3):
        mom = kstep_moments(grid, pi, v_hat, k)
        mean, var = kstep_moments_by_enumeration(grid, pi, v_hat, k)
        errs += [np.abs(mom.mean - mean).max(), np.abs(mom.var - var).max()]
    return Measure(float(max(errs)), "gridworld, V-hat error 0.2, k = 1, 2, 3, every (s, a)")


@identity(
    "ch7.gae_moments_enumeration",
    chapter=7,
    title="mean and variance of GAE by linear solves = by enumerating whole episodes",
)
def gae_moments_enumeration() -> Measure:
    grid, pi = book_grid_policy()
    H = 3
    U, upi = time_unrolled(grid, H), unrolled_policy(pi, H)
    v_hat = np.append(np.tile(state_values(grid, pi) + value_error(grid, 0.2), H), 0.0)
    errs = []
    for lam in (0.0, 0.6, 1.0):
        mom = gae_moments(U, upi, v_hat, lam)
        first = np.arange(grid.n_states - 1)  # (t=0, s) for every live s: the longest episodes
        mean, var = gae_moments_by_enumeration(U, upi, v_hat, lam, H, states=first)
        errs += [np.abs(mom.mean - mean)[first].max(), np.abs(mom.var - var)[first].max()]
    return Measure(
        float(max(errs)),
        f"gridworld cut at H={H} (every episode ends), lambda in "
        f"{{0, .6, 1}}, every (s, a) at t = 0",
    )


@identity(
    "ch7.gae_mixture_of_kstep_means",
    chapter=7,
    title="E[GAE] = (1 - lambda) sum_k lambda^(k-1) E[A^(k)] (tail weight < 1e-13 dropped)",
)
def gae_mixture_of_kstep_means() -> Measure:
    grid, pi = book_grid_policy()
    v_hat = state_values(grid, pi) + value_error(grid, 0.3)
    errs = []
    for lam in (0.3, 0.7):
        n_terms = int(np.ceil(np.log(1e-13) / np.log(lam)))
        mix = sum(
            (1 - lam) * lam ** (k - 1) * kstep_moments(grid, pi, v_hat, k).mean
            for k in range(1, n_terms + 1)
        )
        errs.append(np.abs(mix - gae_moments(grid, pi, v_hat, lam).mean).max())
    return Measure(float(max(errs)), "gridworld, V-hat error 0.3, lambda in {0.3, 0.7}")
