r"""The exact quantities and the trained runs of chapter 14, shared by its identity checks, its
figures and the chapter itself.

*Exact*, on the answer trees of :mod:`rlviz.experiments.answer_trees` (a bandit, a random tree
and the chapter's illustration :func:`~rlviz.experiments.answer_trees.book_tree`), with the
expectations of :mod:`rlviz.tabular.answer_tree`: :func:`prompt_gain`,
:func:`gradient_angle_and_ratio` / :func:`normalisation_table`, :func:`variance_along`,
:func:`k3_gradient_gap`. Expectations over groups enumerate all :math:`n^G` groups of
``G = group_size`` answers (the notes' :math:`K`).

*Trained* (:mod:`rlviz.experiments.addition_runs`): the main variants and PPO with a critic
over the splits (:data:`SPREAD_VARIANTS`), the slider grid (:func:`run_grid`) and the live run
(:func:`live_run`).
"""

from __future__ import annotations

import numpy as np

from rlviz import _validate as validate
from rlviz.agents.addition_task import TrainLog
from rlviz.agents.grpo import GRPOConfig
from rlviz.experiments.addition_runs import live_variant_run, variant, variant_table
from rlviz.experiments.answer_trees import bandit_setting, book_tree
from rlviz.experiments.run_spec import spec_of
from rlviz.experiments.run_store import load_or_train
from rlviz.fn.stats import angle_and_norm_ratio
from rlviz.tabular.answer_tree import (
    enumerate_answers,
    exact_gradient,
    expected_group_gradient,
    forward_kl_gradient,
    group_gradient_fn,
    k3_loss_gradient,
    kl_moments,
)

__all__ = [
    "BANDIT_GROUP_SIZES",
    "TREE_GROUP_SIZES",
    "random_pairs",
    "prompt_gain",
    "NORMALISATION_VARIANTS",
    "gradient_angle_and_ratio",
    "normalisation_table",
    "variance_along",
    "k3_gradient_gap",
    "EPSILONS",
    "BETAS",
    "GROUP_SIZES",
    "SPREAD_VARIANTS",
    "GRID_EVAL_EVERY",
    "grid_settings",
    "grid_spec",
    "run_grid",
    "live_run",
]

BANDIT_GROUP_SIZES = (2, 3, 4)
TREE_GROUP_SIZES = (2, 3)


# ---------------------------------------------------------------- exact settings
def random_pairs(n_pairs: int = 20, n: int = 6, seed: int = 0):
    """Pairs (p, p_ref) of random distributions over n outcomes."""
    rng = np.random.default_rng(seed)
    for _ in range(n_pairs):
        a, b = rng.normal(size=(2, n)) * rng.uniform(0.2, 2.0)
        yield np.exp(a) / np.exp(a).sum(), np.exp(b) / np.exp(b).sum()


# ---------------------------------------------------------------- exact quantities
def prompt_gain(p: float, group_size: int, advantage: str = "std") -> float:
    r"""The factor :math:`c_G(p)` by which a group estimator scales one prompt's gradient:
    :math:`\mathbb E[\hat g] = c_G(p)\,\nabla J_x` for a prompt with binary reward and success
    probability :math:`p` (two answers, right and wrong; exact over all :math:`2^G` groups of
    ``G = group_size``; the chapter's :math:`c_K`). With binary rewards every advantage of
    :data:`rlviz.fn.grpo_loss.ADVANTAGES` scales the gradient (:math:`\mathbb E[A_i \mid y_i]`
    depends on :math:`r(y_i)` only); ``"mean"`` gives :math:`(G-1)/G`, ``"loo"`` 1, ``"std"`` a
    factor that depends on :math:`p` when G >= 4."""
    p = validate.unit_interval("p", p, open_left=True, open_right=True)
    ans = enumerate_answers(2, 1)
    theta = np.array([[[np.log(p), np.log(1 - p)]]])
    r = np.array([[1.0, 0.0]])
    e = expected_group_gradient(theta, ans, r, group_size, group_gradient_fn(advantage))
    return float(e[0] / exact_gradient(theta, ans, r)[0])


# name -> (advantage, ratio, length_norm) of rlviz.tabular.answer_tree.group_gradient_fn
NORMALISATION_VARIANTS = {
    "mean, sequence ratio (notes)": ("mean", "sequence", None),
    "leave-one-out": ("loo", "sequence", None),
    "std-normalised": ("std", "sequence", None),
    "token, 1/|y_i| (DeepSeekMath)": ("mean", "token", "sequence"),
    "token, 1/sum|y| (group)": ("mean", "token", "group"),
    "token, 1/(K L) (Dr. GRPO)": ("mean", "token", "constant"),
}


def gradient_angle_and_ratio(
    group_size: int,
    advantage: str = "mean",
    ratio: str = "sequence",
    length_norm: str | None = None,
) -> tuple[float, float]:
    r"""On :func:`book_tree`: the angle in degrees between the exact expected gradient
    :math:`\mathbb E[\hat g]` of a group estimator and :math:`\nabla J`, and the norm ratio
    :math:`\|\mathbb E[\hat g]\| / \|\nabla J\|`.

    ``group_size`` >= 2 (with one answer per group every advantage is 0 or undefined).
    :math:`\nabla J \ne 0` on the book tree; an expected gradient of exactly zero has no
    direction, and gives ``(nan, 0.0)`` instead of an angle.
    """
    group_size = validate.positive("group_size", group_size, integer=True)
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2, got {group_size}")
    ans, theta, r = book_tree()
    g = exact_gradient(theta, ans, r)
    e = expected_group_gradient(
        theta, ans, r, group_size, group_gradient_fn(advantage, ratio, length_norm)
    )
    if not np.any(e):
        return float("nan"), 0.0
    return angle_and_norm_ratio(e, g)


def normalisation_table(group_sizes=(2, 3), variants=None) -> dict:
    """``{G: {variant: (angle to grad J in degrees, |E g_hat| / |grad J|)}}`` on the book tree
    (:func:`gradient_angle_and_ratio`), for each variant of :data:`NORMALISATION_VARIANTS`."""
    variants = NORMALISATION_VARIANTS if variants is None else variants
    return {
        G: {name: gradient_angle_and_ratio(G, *args) for name, args in variants.items()}
        for G in group_sizes
    }


def variance_along(t, seed: int = 3, n: int = 6) -> list[dict]:
    r"""Exact variances of :math:`k_1` and :math:`k_3` and the KL
    (:func:`rlviz.tabular.answer_tree.kl_moments`) for
    :math:`\pi = \operatorname{softmax}(z_\text{ref} + t\, d)`, per distance ``t``."""
    rng = np.random.default_rng(seed)
    z, d = rng.normal(size=n), rng.normal(size=n)
    q = np.exp(z) / np.exp(z).sum()
    rows = []
    for s in np.atleast_1d(t):
        a = z + s * d
        rows.append(kl_moments(np.exp(a) / np.exp(a).sum(), q))
    return rows


def k3_gradient_gap(seed: int = 0) -> float:
    """||E[grad k3] - grad KL(pi || pi_ref)|| / ||grad KL(pi || pi_ref)|| on a random bandit,
    ``pi_ref`` random too."""
    ans, theta, _ = bandit_setting(seed)
    theta_ref = np.random.default_rng(seed + 50).normal(size=theta.shape)
    g3 = k3_loss_gradient(theta, theta_ref, ans)
    gf = forward_kl_gradient(theta, theta_ref, ans)
    return float(np.linalg.norm(g3 - gf) / np.linalg.norm(gf))


# ---------------------------------------------------------------- trained runs

# the slider grid: epsilon x beta at the default group size, and group sizes at the defaults
EPSILONS = (0.1, 0.2, 0.3)
BETAS = (0.0, 0.04, 0.2)
GROUP_SIZES = (2, 4, 8, 16)

# the variants compared over the splits (id -> Variant; rlviz.experiments.addition_runs)
SPREAD_VARIANTS = variant_table(
    variant("notes", "notes (mean, sequence ratio)"),
    variant("drgrpo", "Dr. GRPO (token ratio, 1/(K L))", term="token", length_norm="constant"),
    variant(
        "deepseekmath",
        "DeepSeekMath (std, 1/|y_i|, k3, beta=0.04)",
        advantage="std",
        term="token",
        length_norm="sequence",
        beta=0.04,
    ),
    variant("ppo", "PPO with a critic (GAE)", "ppo"),
)


GRID_EVAL_EVERY = 5  # the slider figures' resolution


def grid_settings(epsilons=EPSILONS, betas=BETAS, group_sizes=GROUP_SIZES) -> list[tuple]:
    """The ``(epsilon, beta, group_size)`` of :func:`run_grid`: the epsilon x beta grid at the
    default group size (8) and ``group_sizes`` at the default epsilon and beta (0.2, 0)."""
    default = GRPOConfig()
    settings = [(e, b, default.group_size) for e in epsilons for b in betas] + [
        (default.epsilon, default.beta, G) for G in group_sizes
    ]
    return list(dict.fromkeys(settings))


def grid_spec(setting: tuple, steps: int, seed: int = 0):
    """The run of one grid setting on the book's split (a :class:`RunSpec`)."""
    e, b, G = setting
    config = GRPOConfig(epsilon=e, beta=b, group_size=G)
    return spec_of(config, steps, 0, seed, eval_every=GRID_EVAL_EVERY)


def run_grid(
    epsilons=EPSILONS, betas=BETAS, group_sizes=GROUP_SIZES, steps: int = 60, seed: int = 0
) -> dict[tuple, TrainLog]:
    """The chapter's slider data: ``{(epsilon, beta, group_size): TrainLog}`` over
    :func:`grid_settings`, ``steps`` updates each on the book's split, no early stop,
    evaluated every 5 (read from the run store, or trained when not stored fresh)."""
    return {
        s: load_or_train(grid_spec(s, steps, seed))
        for s in grid_settings(epsilons, betas, group_sizes)
    }


def live_run(
    epsilon: float = 0.2,
    beta: float = 0.0,
    group_size: int = 8,
    steps: int = 60,
    seed: int = 0,
    callback=None,
) -> TrainLog:
    """One GRPO run from the book's reference on the book's split with these settings, ``steps``
    updates, no early stop (the chapter's live widget;
    :func:`rlviz.experiments.addition_runs.live_variant_run`); ``callback(step, max_steps)``
    after each update."""
    cfg = GRPOConfig(epsilon=epsilon, beta=beta, group_size=group_size)
    return live_variant_run(cfg, steps, 0, seed, callback=callback)
