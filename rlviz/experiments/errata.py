r"""The computations behind the errata appendix (``book/appendix_errata.ipynb``).

Each function computes the evidence of one erratum, from the same rlviz functions as the
chapter where the point arises, so that every number the appendix states comes from a call:

* :func:`past_reward_term` (notes section 3): the "past rewards x score" term, exact mean and
  variance;
* :func:`gae_bias_by_lambda` (E5): the weighted squared bias of GAE for several :math:`\lambda`;
* :func:`kstep_extremes` (E7): for which pairs :math:`(s, a)` the TD residual (:math:`k = 1`) has
  the largest bias or the smallest variance among the k-step estimates;
* :func:`bound_step_vs_trpo_step` (E14): the step that maximises Schulman's lower bound against
  one TRPO step;
* :func:`clip_ratio_table` and :func:`mid_update_peak` (E15): how far PPO's ratios go outside
  the clip band, and where :math:`L^{CLIP}` peaks along one update;
* :func:`importance_sampling_without_support` (notes section 10): importance sampling when the
  old policy never takes an action the new one takes;
* :func:`sequence_ratio_variance` (notes section 14): the variance of a product of per-token
  ratios against the length of the answer.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rlviz.agents.ppo import PPOConfig, train
from rlviz.experiments.ch12 import interpolation_curves, ratio_spread
from rlviz.experiments.corridor_settings import book_setting
from rlviz.experiments.old_policies import book_old
from rlviz.tabular.advantage_moments import (
    gae_moments,
    kstep_moments,
    pair_weights,
    summarise,
    value_error,
)
from rlviz.tabular.examples import book_grid_policy
from rlviz.tabular.mdp import state_values
from rlviz.tabular.pg_estimators import expectation, past_reward_estimates, total_variance
from rlviz.tabular.surrogate import line_profile, old_policy, policy_directions, tabular_trpo_step
from rlviz.tabular.trajectories import enumerate_trajectories

__all__ = [
    "past_reward_term",
    "gae_bias_by_lambda",
    "kstep_extremes",
    "bound_step_vs_trpo_step",
    "clip_ratio_table",
    "mid_update_peak",
    "importance_sampling_without_support",
    "sequence_ratio_variance",
]


def _grid(gamma: float, error: float):
    grid, pi = book_grid_policy(gamma)
    return grid, pi, state_values(grid, pi) + value_error(grid, error)


def past_reward_term(gamma: float = 0.9) -> dict:
    r"""The term :math:`\sum_t \big(\sum_{k<t}\gamma^k r_k\big)\nabla\log\pi(a_t|s_t)` that
    causality drops (:func:`~rlviz.tabular.pg_estimators.past_reward_estimates`), on the
    corridor of chapter 3 (episodes cut at :math:`H`), over every trajectory (enumeration):
    ``mean_abs`` (largest component of its exact expectation: 0), ``total_variance``
    (:math:`\operatorname{tr}\operatorname{Cov}`, not 0) and ``max_abs`` (the largest component
    over trajectories)."""

    mdp, _, pi, horizon = book_setting(gamma)
    tr = enumerate_trajectories(mdp, pi, horizon)
    est = past_reward_estimates(tr, pi, mdp.gamma)
    return {
        "mean_abs": float(np.abs(expectation(tr, est)).max()),
        "total_variance": float(total_variance(tr, est)),
        "max_abs": float(np.abs(est).max()),
    }


def gae_bias_by_lambda(gamma: float = 0.9, error: float = 0.2, lambdas=(0.0, 0.5, 1.0)) -> dict:
    r"""Weighted squared bias :math:`\sum_{s,a} w(s,a)\,\mathrm{bias}(s,a)^2` of
    GAE(:math:`\gamma, \lambda`) on the book's gridworld with :math:`\hat V = V^\pi + e`
    (:func:`~rlviz.tabular.advantage_moments.value_error` of scale ``error``), weights
    :func:`~rlviz.tabular.advantage_moments.pair_weights`, exact moments
    (:func:`~rlviz.tabular.advantage_moments.gae_moments`). Returns ``{lambda: bias2}``."""
    grid, pi, v_hat = _grid(gamma, error)
    w = pair_weights(grid, pi)
    return {
        float(lam): summarise(gae_moments(grid, pi, v_hat, float(lam)), w)["bias2"]
        for lam in lambdas
    }


def kstep_extremes(gamma: float = 0.9, error: float = 0.2, ks=range(1, 21), pair=(3, 1)) -> dict:
    r"""Per pair :math:`(s, a)` of the gridworld (pairs the policy visits, :math:`w > 0`), the
    :math:`k` of the k-step estimate :math:`\hat A^{(k)}` with the largest :math:`|\text{bias}|`
    and the one with the smallest variance (exact, :func:`~rlviz.tabular.advantage_moments.kstep_moments`).

    Returns ``pairs`` (number of pairs), ``td_max_bias`` and ``td_min_var`` (pairs where
    :math:`k = 1` has the largest :math:`|\text{bias}|`, resp. the smallest variance),
    ``td_max_var`` (pairs where :math:`k = 1` has the *largest* variance), and the weighted
    averages ``bias2`` and ``var`` over pairs for each :math:`k` (arrays over ``ks``), and
    ``pair_std``, the standard deviation of each :math:`\hat A^{(k)}` at ``pair`` (chapter 7's
    example: the cell next to the goal, action "right").
    """
    grid, pi, v_hat = _grid(gamma, error)
    w = pair_weights(grid, pi)
    ks = [int(k) for k in ks]
    moms = [kstep_moments(grid, pi, v_hat, k) for k in ks]
    mask = w > 0
    bias = np.stack([np.abs(m.bias)[mask] for m in moms])  # (K, pairs)
    var = np.stack([m.var[mask] for m in moms])
    i1 = ks.index(1)
    tol = 1e-12
    return {
        "pairs": int(mask.sum()),
        "td_max_bias": int((bias[i1] >= bias.max(0) - tol).sum()),
        "td_min_var": int((var[i1] <= var.min(0) + tol).sum()),
        "td_max_var": int((var[i1] >= var.max(0) - tol).sum()),
        "bias2": np.array([summarise(m, w)["bias2"] for m in moms]),
        "var": np.array([summarise(m, w)["var"] for m in moms]),
        "pair_std": np.array([float(np.sqrt(m.var[pair])) for m in moms]),
    }


def bound_step_vs_trpo_step(delta: float = 0.01) -> dict:
    r"""On the corridor (:func:`~rlviz.experiments.old_policies.book_old`), along the gradient:
    the step :math:`t` that maximises Schulman's bound :math:`L - C\,D^{\max}_{\mathrm{KL}}` (grid of 201 steps in
    [0, 0.02]), the gain in :math:`J` it guarantees, and the length and gain of one exact TRPO
    step with limit ``delta`` (:func:`~rlviz.tabular.surrogate.tabular_trpo_step`).
    Keys: ``C``, ``t_bound``, ``guaranteed_gain``, ``actual_gain_bound``, ``trpo_length``,
    ``trpo_gain``."""

    old = book_old()
    u = policy_directions(old, 0)["gradient"]
    fine = line_profile(old, u, np.linspace(0, 0.02, 201))
    best = int(np.argmax(fine["bound"]))
    step = tabular_trpo_step(old, delta)
    return {
        "C": float(fine["C"]),
        "t_bound": float(fine["t"][best]),
        "guaranteed_gain": float(fine["bound"][best] - old.J),
        "actual_gain_bound": float(fine["J"][best] - old.J),
        "trpo_length": float(np.linalg.norm(step["theta"] - old.theta)),
        "trpo_gain": float(old_policy(old.mdp, step["theta"]).J - old.J),
    }


def clip_ratio_table(epochs=(1, 4, 10), base: PPOConfig | None = None) -> dict:
    r"""PPO on CartPole with the book's setting (``base``, default :class:`rlviz.agents.ppo.PPOConfig`,
    seed 0) and ``epochs`` epochs per update: :func:`rlviz.experiments.ch12.ratio_spread` of each
    run (mean and max fraction of samples with :math:`|r - 1| > \epsilon` after an update, the
    largest ratio, the largest :math:`k_3` KL), with ``updates`` (number of updates) and ``batch``
    (samples per update). Returns ``{epochs: dict}``."""
    base = PPOConfig() if base is None else base
    out = {}
    for e in epochs:
        spread = ratio_spread(train(dataclasses.replace(base, epochs=int(e))))
        spread["updates"] = len(spread["outside"])
        spread["batch"] = base.n_envs * base.n_steps
        out[int(e)] = spread
    return out


def mid_update_peak(updates: int = 20, base: PPOConfig | None = None) -> dict:
    r"""Chapter 12's mid-training update: ``updates`` updates of ``base`` (default: the book's
    setting, seed 0) with the learning rate not annealed; along :math:`\theta(\alpha) =
    \theta_{\text{old}} + \alpha(\theta_{\text{new}} - \theta_{\text{old}})` of the last update,
    the :math:`\alpha` where :math:`L^{CLIP}` peaks (grid of step 0.05 on [0, 2]), and at
    :math:`\alpha = 1` the fraction of samples outside the band and the exact mean KL
    (:func:`rlviz.experiments.ch12.interpolation_curves`)."""
    base = PPOConfig() if base is None else base
    cfg = dataclasses.replace(
        base, total_steps=updates * base.n_envs * base.n_steps, anneal_lr=False
    )
    c = interpolation_curves(train(cfg), np.linspace(0, 2, 41))
    one = int(np.argmin(np.abs(c["alpha"] - 1.0)))
    return {
        "alpha_peak": float(c["alpha"][int(np.argmax(c["L_clip"]))]),
        "outside_at_1": float(c["outside"][one]),
        "kl_at_1": float(c["kl"][one]),
    }


def importance_sampling_without_support() -> dict:
    r"""Importance sampling :math:`\mathbb E_{\pi_{\text{old}}}[\frac{\pi}{\pi_{\text{old}}} f]`
    when :math:`\pi_{\text{old}}` gives probability 0 to an action :math:`\pi` takes.

    Three actions, :math:`f = (1, 2, 3)`, :math:`\pi_{\text{old}} = (0.5, 0.5, 0)`,
    :math:`\pi = (0.2, 0.3, 0.5)`. Samples from :math:`\pi_{\text{old}}` never show action 3, so
    the weighted mean (exact, over the actions :math:`\pi_{\text{old}}` takes) misses
    :math:`\pi(3) f(3)`. Returns ``target`` (:math:`\mathbb E_\pi f`), ``estimate`` and
    ``missing`` (the probability mass of :math:`\pi` outside the support of :math:`\pi_{\text{old}}`).
    """
    f = np.array([1.0, 2.0, 3.0])
    old = np.array([0.5, 0.5, 0.0])
    new = np.array([0.2, 0.3, 0.5])
    seen = old > 0
    estimate = float(np.sum(old[seen] * (new[seen] / old[seen]) * f[seen]))
    return {"target": float(new @ f), "estimate": estimate, "missing": float(new[~seen].sum())}


def sequence_ratio_variance(lengths=(1, 4, 16, 64), t: float = 0.2, n: int = 6, seed: int = 0):
    r"""Exact variance, under :math:`\pi_{\text{old}}`, of the sequence ratio
    :math:`\prod_{j=1}^{L} \pi(y_j)/\pi_{\text{old}}(y_j)` of an answer of :math:`L` tokens drawn
    independently from one categorical over ``n`` tokens, the new logits moved by ``t`` along a
    random direction. With :math:`m_2 = \mathbb E_{\text{old}}[(\pi/\pi_{\text{old}})^2] =
    1 + \chi^2(\pi\|\pi_{\text{old}})` per token, the variance is :math:`m_2^L - 1`: it grows
    exponentially with the length, while each per-token ratio has variance :math:`m_2 - 1`.
    Returns ``(per_token_variance, {L: variance})``."""
    rng = np.random.default_rng(seed)
    z, d = rng.normal(size=n), rng.normal(size=n)
    old = np.exp(z) / np.exp(z).sum()
    new = np.exp(z + t * d) / np.exp(z + t * d).sum()
    m2 = float(np.sum(new**2 / old))
    return m2 - 1.0, {int(L): m2 ** int(L) - 1.0 for L in lengths}
