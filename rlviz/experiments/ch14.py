r"""The settings and runs of chapter 14, shared by its identity checks, its figures and the
chapter itself.

*Exact* (:mod:`rlviz.tabular.answer_tree`): a *bandit* (answers of one token, 5 answers,
:math:`P = 3` prompts, random logits and real rewards, :func:`bandit_setting`), a *tree*
(answers of 1 to 3 tokens over ``a``, ``b`` and an end token, 15 answers, :math:`P = 2`
prompts, random logits and binary rewards, :func:`tree_setting`), the chapter's illustration
(:func:`book_tree`), and what the chapter computes on them: :func:`prompt_gain`,
:func:`gradient_angle_and_ratio` / :func:`normalisation_table`, :func:`variance_along`,
:func:`k3_gradient_gap`. Expectations over groups enumerate all :math:`n^G` groups of
``G = group_size`` answers (the notes' :math:`K`).

*Trained* (:mod:`rlviz.agents`): the book's addition task and reference (:func:`book_task`),
the runs behind the chapter's curves and sliders:
GRPO over :data:`SPLITS` x :data:`SPREAD_SEEDS` (:func:`run_spread`, summarised by
:func:`spread_summary`), the main variants and PPO with a critic over the splits
(:func:`run_variant_spread`), the slider grid (:func:`run_grid`) and the live run
(:func:`live_run`).
"""

from __future__ import annotations

import math

import numpy as np

from rlviz import _validate as validate
from rlviz._cache import disk_cached
from rlviz._threads import torch_threads
from rlviz.agents.addition_task import AdditionTask, TrainLog, pretrain_reference
from rlviz.agents.grpo import GRPOConfig, train_grpo
from rlviz.agents.token_ppo import PPOConfig, train_ppo
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
    "TREE_WORDS",
    "bandit_setting",
    "tree_setting",
    "book_tree",
    "answer_words",
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
    "book_task",
    "SPLITS",
    "SPREAD_SEEDS",
    "SPREAD_VARIANTS",
    "run_spread",
    "run_variant_spread",
    "spread_summary",
    "truncate_log",
    "spread_table",
    "run_grid",
    "live_run",
    "live_variant_run",
]

BANDIT_GROUP_SIZES = (2, 3, 4)
TREE_GROUP_SIZES = (2, 3)
TREE_WORDS = ("a", "b", "E")  # E = the end token


# ---------------------------------------------------------------- exact settings
def bandit_setting(seed: int = 0, n_prompts: int = 3, n_answers: int = 5):
    """(answers, logits (P, 1, n), rewards (P, n)) of a random bandit."""
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(n_answers, 1)
    return ans, rng.normal(size=(n_prompts, 1, n_answers)), rng.normal(size=(n_prompts, n_answers))


def tree_setting(seed: int = 0, n_prompts: int = 2):
    """(answers, logits (P, 7, 3), rewards (P, 15) in {0, 1}) of a random tree policy."""
    rng = np.random.default_rng(seed)
    ans = enumerate_answers(3, 3)
    theta = rng.normal(size=(n_prompts, ans.n_prefix, 3))
    return ans, theta, rng.integers(0, 2, size=(n_prompts, ans.n)).astype(float)


def answer_words(ans) -> list[str]:
    """The tree's answers as strings, e.g. ``'abE'``."""
    return ["".join(TREE_WORDS[t] for t in ans.tokens[k, : ans.length[k]]) for k in range(ans.n)]


def book_tree():
    r"""The chapter's illustration: uniform policy; prompt 0 is easy (correct: any answer
    starting with ``a``, success 1/3), prompt 1 hard (correct: ``abE`` only, 1/27)."""
    ans = enumerate_answers(3, 3)
    words = answer_words(ans)
    r = np.array([[float(w.startswith("a")) for w in words], [float(w == "abE") for w in words]])
    return ans, np.zeros((2, ans.n_prefix, 3)), r


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

_BOOK_TASK: dict = {}


def book_task():
    """The chapter's task and its reference policy (a fresh copy of the cached one)."""
    task = _BOOK_TASK.setdefault("task", AdditionTask.make())
    return task, pretrain_reference(task)


SPLITS = (0, 1, 2, 3, 4)  # split_seed of AdditionTask.make: which 20 prompts are held out
SPREAD_SEEDS = (0, 1, 2)

# the variants compared over the splits (name -> (trainer, change from its defaults))
SPREAD_VARIANTS = {
    "notes (mean, sequence ratio)": ("grpo", {}),
    "Dr. GRPO (token ratio, 1/(K L))": ("grpo", {"ratio": "token", "length_norm": "constant"}),
    "DeepSeekMath (std, 1/|y_i|, k3, beta=0.04)": (
        "grpo",
        {"advantage": "std", "ratio": "token", "length_norm": "sequence", "beta": 0.04},
    ),
    "PPO with a critic (GAE)": ("ppo", {}),
}


def _train(trainer: str, task, ref, **cfg) -> TrainLog:
    if trainer == "grpo":
        return train_grpo(task, ref, GRPOConfig(**cfg))[1]
    if trainer == "ppo":
        return train_ppo(task, ref, PPOConfig(**cfg))[1]
    raise ValueError(f"trainer must be 'grpo' or 'ppo', got {trainer!r}")


@disk_cached
def run_spread(
    steps: int = 80, splits=SPLITS, seeds=SPREAD_SEEDS, trainer: str = "grpo", **change
) -> dict[tuple, TrainLog]:
    """One run per (split, seed) from the book's reference: ``{(split, seed): TrainLog}``.

    Split ``k`` is :meth:`AdditionTask.make` with ``split_seed=k`` (split 0 is the book's); GRPO
    with the notes' defaults (or ``trainer="ppo"``) plus ``change``; ``steps`` updates each, no
    early stop, held-out and training success evaluated every 10 updates (exact).
    """
    out = {}
    with torch_threads(1):  # one thread: torch's per-op overhead dominates at these sizes
        _, ref = book_task()  # pretrained on all 81 prompts: one reference for every split
        for split in splits:
            task = AdditionTask.make(split_seed=split)
            for seed in seeds:
                out[(split, seed)] = _train(
                    trainer,
                    task,
                    ref,
                    seed=seed,
                    max_steps=steps,
                    stop_at_target=False,
                    eval_every=10,
                    max_seconds=math.inf,
                    **change,
                )
    return out


def run_variant_spread(
    steps: int = 60, splits=SPLITS, seed: int = 0, variants=None, known=None, seeds=None
) -> dict[str, dict[tuple, TrainLog]]:
    """Each variant of ``variants`` (default :data:`SPREAD_VARIANTS`; name -> (trainer,
    change)) over ``splits`` with one ``seed`` (or each of ``seeds``), ``steps`` updates:
    ``{name: {(split, seed): TrainLog}}``. ``known`` maps a variant's
    name to runs already made with at least ``steps`` updates (e.g. :func:`run_spread`'s),
    which are cut to ``steps`` (:func:`truncate_log`) instead of trained again."""
    seeds = (seed,) if seeds is None else tuple(seeds)
    out = {}
    for name, (trainer, change) in (variants or SPREAD_VARIANTS).items():
        have = (known or {}).get(name)
        if have is not None:
            out[name] = {(k, s): truncate_log(have[(k, s)], steps) for k in splits for s in seeds}
        else:
            out[name] = run_spread(steps, splits, seeds, trainer, **change)
    return out


def truncate_log(log: TrainLog, steps: int) -> TrainLog:
    """The evaluations of ``log`` up to update ``steps`` (a run's first ``steps`` updates)."""
    if not log.step or log.step[-1] < steps:
        raise ValueError(f"the log must reach update {steps}, it ends at {log.step[-1:]}")
    keep = [i for i, s in enumerate(log.step) if s <= steps]
    fields = ["step", "seconds", "samples", "held_out", "train"]
    if len(log.entropy) == len(log.step):
        fields.append("entropy")
    out = TrainLog(**{f: [getattr(log, f)[i] for i in keep] for f in fields})
    if log.reached_step is not None and log.reached_step <= steps:
        out.reached_step, out.reached_seconds = log.reached_step, log.reached_seconds
    return out


def spread_summary(logs, target: float = 0.95) -> dict:
    """What a group of runs supports: over the runs, the median and worst (minimum) held-out
    success at the end and at its best evaluation, the final training success (median), how
    many runs reached ``target`` held-out success, and the median update and answers sampled
    when they first did (None if none did); the median held-out entropy at the end (None if the
    logs have none); the median fraction of tokens whose off-policy weight the cap changed
    (``TrainLog.capped``, chapter 17; None if no run has one)."""
    logs = list(logs.values()) if isinstance(logs, dict) else list(logs)
    if not logs:
        raise ValueError("logs must hold at least one TrainLog")
    final = np.array([log.held_out[-1] for log in logs])
    peak = np.array([max(log.held_out) for log in logs])
    reached = [
        (log.step[i], log.samples[i])
        for log in logs
        for i in [next((i for i, h in enumerate(log.held_out) if h >= target), None)]
        if i is not None
    ]
    entropy = [log.entropy[-1] for log in logs if len(log.entropy) == len(log.step)]
    capped = [log.capped for log in logs if log.capped is not None]
    return {
        "runs": len(logs),
        "entropy_final_median": float(np.median(entropy)) if entropy else None,
        "capped_median": float(np.median(capped)) if capped else None,
        "final_median": float(np.median(final)),
        "final_worst": float(final.min()),
        "peak_median": float(np.median(peak)),
        "peak_worst": float(peak.min()),
        "train_final_median": float(np.median([log.train[-1] for log in logs])),
        "reached": len(reached),
        "reached_step_median": float(np.median([r[0] for r in reached])) if reached else None,
        "reached_samples_median": float(np.median([r[1] for r in reached])) if reached else None,
    }


@disk_cached
def run_grid(
    epsilons=EPSILONS, betas=BETAS, group_sizes=GROUP_SIZES, steps: int = 60, seed: int = 0
) -> dict[tuple, TrainLog]:
    """The chapter's slider data: ``{(epsilon, beta, group_size): TrainLog}`` over the
    epsilon x beta grid at the default group size (8) and over ``group_sizes`` at the default
    epsilon and beta (0.2, 0); ``steps`` updates each, no early stop."""
    task, ref = book_task()
    default = GRPOConfig()
    settings = [(e, b, default.group_size) for e in epsilons for b in betas] + [
        (default.epsilon, default.beta, G) for G in group_sizes
    ]
    out = {}
    for e, b, G in settings:
        if (e, b, G) not in out:
            out[(e, b, G)] = train_grpo(
                task,
                ref,
                GRPOConfig(
                    seed=seed,
                    epsilon=e,
                    beta=b,
                    group_size=G,
                    max_steps=steps,
                    stop_at_target=False,
                ),
            )[1]
    return out


def live_run(
    epsilon: float = 0.2,
    beta: float = 0.0,
    group_size: int = 8,
    steps: int = 60,
    seed: int = 0,
    callback=None,
) -> TrainLog:
    """One GRPO run from the book's reference on the book's split with these settings, ``steps``
    updates, no early stop (the chapter's live widget; :func:`live_variant_run`);
    ``callback(step, max_steps)`` after each update."""
    change = {"epsilon": epsilon, "beta": beta, "group_size": group_size}
    return live_variant_run(change, steps, 0, seed, callback=callback)


def live_variant_run(
    change: dict, steps: int = 30, split: int = 0, seed: int = 0, callback=None
) -> TrainLog:
    """One GRPO run of a variant (``change``: :class:`rlviz.agents.grpo.GRPOConfig` fields, as
    in :data:`SPREAD_VARIANTS`) from the book's reference on split ``split`` with ``seed``,
    ``steps`` updates, no early stop, evaluated every 5 (the live widgets of chapters 15-17);
    ``callback(step, max_steps)`` after each update. One torch thread, as the spreads."""
    with torch_threads(1):
        _, ref = book_task()
        task = AdditionTask.make(split_seed=split)
        cfg = GRPOConfig(**change, max_steps=steps, stop_at_target=False, eval_every=5, seed=seed)
        return train_grpo(task, ref, cfg, callback=callback)[1]


def spread_table(groups: dict, target: float = 0.95, capped: bool = False) -> str:
    """A printed table of :func:`spread_summary` per group (name -> logs): runs, held-out
    success at the end (median, worst), training success (median), held-out entropy at the end
    (median), runs reaching ``target``; two decimals, so that the notebook tests compare it.
    ``capped``: one more column, the median over runs of the fraction of answer tokens whose
    off-policy weight the cap changed (:func:`spread_summary`'s ``capped_median``; "-" without
    a correction)."""
    head = (
        f"{'':40} {'runs':>4} {'held-out: median':>16} {'worst':>6} {'training':>9} "
        f"{'entropy':>8} {'reach ' + format(target, '.2f'):>11}"
    )
    lines = [head + (f" {'capped':>7}" if capped else "")]
    for name, logs in groups.items():
        s = spread_summary(logs, target)
        ent = "-" if s["entropy_final_median"] is None else f"{s['entropy_final_median']:.2f}"
        line = (
            f"{name:40} {s['runs']:4d} {s['final_median']:16.2f} {s['final_worst']:6.2f} "
            f"{s['train_final_median']:9.2f} {ent:>8} {s['reached']:>7d} of {s['runs']}"
        )
        if capped:
            c = s["capped_median"]
            line += f" {'-' if c is None else format(c, '.3f'):>7}"
        lines.append(line)
    return "\n".join(lines)
