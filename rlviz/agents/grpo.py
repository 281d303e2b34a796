r"""GRPO on the addition task of :mod:`rlviz.agents.addition_task` (chapter 14; notes section 14).

:func:`train_grpo` reads top to bottom: rollout (a group of ``group_size`` answers for each of
``prompts_per_step`` prompts), advantages (:func:`rlviz.fn.grpo_loss.group_advantages`, from
the rewards of each group alone: no critic), update (a few gradient steps on
:func:`rlviz.fn.grpo_loss.grpo_objective`, or on chapters 15-17's
:func:`rlviz.fn.grpo_practice.practice_objective`). The variant is chosen by
:class:`GRPOConfig`, whose string options are names of the registries of :mod:`rlviz.fn`
(``advantage``, ``term``, ``loss_agg``, ``kl``, ``kl_placement``, ``off_policy``), so the trained
comparisons call the same code as the exact ones.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Literal

import torch

from rlviz import _validate as validate
from rlviz.agents.addition_task import (
    ANSWER_VOCAB,
    MAX_LEN,
    AdditionTask,
    Policy,
    RunConfig,
    TrainLog,
    gradient_step,
    sample_answers,
)
from rlviz.fn.grpo_aggregation import AGGREGATIONS
from rlviz.fn.grpo_loss import (
    ADVANTAGES,
    KL_ESTIMATORS,
    KL_PLACEMENTS,
    LENGTH_NORMS,
    RATIOS,
    group_advantages,
    grpo_objective,
    kl_reward_penalty,
    mixed_groups,
)
from rlviz.fn.grpo_practice import practice_objective
from rlviz.fn.offpolicy import OffPolicy, capped_weights, importance_weights
from rlviz.fn.ratios import POLICY_TERMS

__all__ = [
    "GRPOConfig",
    "OffPolicy",
    "train_grpo",
    "sampler_bias",
    "offpolicy_weights",
]

# the string options, as types; tests/agents/test_grpo.py checks each against its registry
Advantage = Literal["mean", "std", "batch-std", "loo"]
Term = Literal["token", "sequence", "gspo", "cispo", "dual-clip"]
LossAgg = Literal[
    "seq-mean-token-mean",
    "token-mean",
    "seq-mean-token-sum-norm",
    "seq-mean-token-sum",
    "token-sum",
]
Kl = Literal["k1", "k2", "k3"]
KlPlacement = Literal["loss", "reward"]
LengthNorm = Literal["sequence", "group", "constant"]


@dataclass(frozen=True, kw_only=True)
class GRPOConfig(RunConfig):
    """GRPO hyperparameters (and those of :class:`rlviz.agents.addition_task.RunConfig`). Each
    field is checked when the config is made (``ValueError`` naming it, what it got and what is
    allowed), including combinations that would silently do nothing.

    Chapter 14's objective (:func:`rlviz.fn.grpo_loss.grpo_objective`) when ``loss_agg`` is
    None: ``term`` ``"sequence"`` (the notes) or ``"token"`` with ``length_norm``. The practice
    objective of chapters 15-17 (:func:`rlviz.fn.grpo_practice.practice_objective`) when
    ``loss_agg`` names an aggregation: any registered ``term``, ``eps_high``, ``clip_c``, the KL
    placement, dynamic sampling and the off-policy weight."""

    group_size: int = 8  # G answers per prompt (the notes' K), >= 2
    prompts_per_step: int = 32  # B prompts per batch, >= 1
    epsilon: float = 0.2  # clip of the ratio (the lower width in the practice objective), > 0
    beta: float = 0.0  # KL coefficient to the reference, >= 0
    advantage: Advantage = "mean"  # rlviz.fn.grpo_loss.ADVANTAGES
    term: Term = "sequence"  # rlviz.fn.ratios.POLICY_TERMS ("sequence": the notes)
    length_norm: LengthNorm | None = None  # chapter 14, with term="token"
    kl: Kl = "k3"  # rlviz.fn.grpo_loss.KL_ESTIMATORS, used when beta > 0
    # ---- the options of chapters 15-17 (None / defaults: chapter 14's objective, unchanged)
    loss_agg: LossAgg | None = None  # rlviz.fn.grpo_aggregation.AGGREGATIONS: practice objective
    eps_high: float | None = None  # clip-higher's upper width (None: epsilon)
    clip_c: float | None = None  # the dual clip's c > 1 (term="dual-clip" only)
    dynamic_sampling: bool = False  # drop the groups whose rewards are all equal (no refill)
    kl_placement: KlPlacement = "loss"  # rlviz.fn.grpo_loss.KL_PLACEMENTS
    # ---- chapter 17: a sampler that is not the learner (0.0: the learner samples)
    sampler_delta: float = 0.0  # sampler logits = learner's + delta * sampler_bias table, >= 0
    off_policy: OffPolicy = OffPolicy()  # the off-policy weight (correction, level, cap)

    def __post_init__(self):
        super().__post_init__()
        validate.positive("group_size", self.group_size, integer=True)
        if self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 (one answer per group has advantage 0: nothing "
                f"would train), got {self.group_size}"
            )
        validate.positive("prompts_per_step", self.prompts_per_step, integer=True)
        validate.positive("epsilon", self.epsilon)
        validate.non_negative("beta", self.beta)
        ADVANTAGES.check(self.advantage, "advantage")
        POLICY_TERMS.check(self.term, "term")
        KL_ESTIMATORS.check(self.kl, "kl")
        KL_PLACEMENTS.check(self.kl_placement, "kl_placement")
        if self.length_norm is not None:
            validate.choice("length_norm", self.length_norm, LENGTH_NORMS)
        if not isinstance(self.off_policy, OffPolicy):
            raise ValueError(
                f"off_policy must be an rlviz.fn.offpolicy.OffPolicy, got {self.off_policy!r}"
            )
        for name in ("dynamic_sampling",):
            validate.boolean(name, getattr(self, name))
        if self.loss_agg is None:
            practice = {
                "eps_high": self.eps_high,
                "clip_c": self.clip_c,
                "dynamic_sampling": self.dynamic_sampling or None,
                "kl_placement": None if self.kl_placement == "loss" else self.kl_placement,
                "off_policy": self.off_policy if self.off_policy.active else None,
            }
            set_ = {k: v for k, v in practice.items() if v is not None}
            if self.term not in RATIOS or set_:
                raise ValueError(
                    f"without loss_agg (chapter 14's objective) term must be one of {RATIOS} and "
                    f"{', '.join(practice)} unset (they need loss_agg, the practice objective), "
                    f"got term={self.term!r}" + "".join(f", {k}={v!r}" for k, v in set_.items())
                )
            if self.length_norm is not None and self.term == "sequence":
                raise ValueError(
                    f"length_norm must be None with term='sequence' (it applies to "
                    f"term='token' only), got {self.length_norm!r}"
                )
        else:
            AGGREGATIONS.check(self.loss_agg, "loss_agg")
            if self.length_norm is not None:
                raise ValueError(
                    f"length_norm must be None with loss_agg (loss_agg replaces it), got "
                    f"length_norm={self.length_norm!r}"
                )
            needs_c = "clip_c" in POLICY_TERMS[self.term].params
            if needs_c != (self.clip_c is not None):
                raise ValueError(
                    f"clip_c is set exactly when term='dual-clip' (a number > 1), got "
                    f"term={self.term!r}, clip_c={self.clip_c!r}"
                )
            if self.clip_c is not None and not (
                validate.real("clip_c", self.clip_c) > 1 and math.isfinite(self.clip_c)
            ):
                raise ValueError(f"clip_c must be a finite number > 1, got {self.clip_c!r}")
            if not self.epsilon < 1:
                raise ValueError(
                    f"epsilon must be < 1 with loss_agg (the lower clip 1 - epsilon > 0), got "
                    f"{self.epsilon!r}"
                )
        if self.eps_high is not None:
            validate.positive("eps_high", self.eps_high)
        if (
            isinstance(self.sampler_delta, bool)
            or not isinstance(self.sampler_delta, (int, float))
            or not 0 <= self.sampler_delta < math.inf
        ):
            raise ValueError(
                f"sampler_delta must be a finite number >= 0, got {self.sampler_delta!r}"
            )
        if self.kl_placement == "reward" and not self.beta > 0:
            raise ValueError(
                "kl_placement='reward' needs beta > 0 (the weight of the KL in the reward)"
            )

    @property
    def objective_args(self) -> dict:
        """The practice objective's keyword arguments from this config, unpacked once
        (:func:`rlviz.fn.grpo_practice.practice_objective`; ``beta`` is 0 when the KL is in the
        reward)."""
        return {
            "term": self.term,
            "agg": self.loss_agg,
            "eps_low": self.epsilon,
            "eps_high": self.eps_high,
            "clip_c": self.clip_c,
            "beta": self.beta if self.kl_placement == "loss" else 0.0,
            "kl": self.kl,
        }


def train_grpo(
    task: AdditionTask, reference: Policy, cfg: GRPOConfig = GRPOConfig(), *, callback=None
):
    """Train a copy of ``reference`` with GRPO; returns ``(policy, TrainLog)``.

    Each update samples ``B = cfg.prompts_per_step`` prompts with ``G = cfg.group_size``
    answers each. ``callback(step, max_steps)``, if given, runs after each update (the live
    widget's progress bar; it may raise to stop the run).
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    policy = copy.deepcopy(reference).train()
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    B, G = cfg.prompts_per_step, cfg.group_size
    bias = sampler_bias(cfg.sampler_delta, cfg.seed) if cfg.sampler_delta > 0 else None
    practice = None if cfg.loss_agg is None else cfg.objective_args  # unpacked once
    log, clock = TrainLog(), 0.0
    capped = tokens = 0  # answer tokens whose off-policy weight the cap changed, of all
    log.record(0, 0.0, 0, policy, task, cfg.target)
    for step in range(1, cfg.max_steps + 1):
        start = time.perf_counter()
        # ---- rollout: B prompts, G answers each, one batched generation
        batch = sample_answers(policy, task, B, G, gen, logit_bias=bias)
        mask_t = batch.mask.view(B, G, MAX_LEN)
        # ---- advantages: each reward against its own group's; old and reference log-probs
        logp_old_t = group_log_probs(policy, batch.prompts, batch.tokens, G)
        weight_t, n_capped = offpolicy_weights(policy, batch, logp_old_t, cfg.off_policy, bias)
        capped, tokens = capped + n_capped, tokens + int(mask_t.sum())
        logp_ref_t = (
            group_log_probs(reference, batch.prompts, batch.tokens, G) if cfg.beta > 0 else None
        )
        rewards = batch.rewards.double().view(B, G)
        # dynamic sampling keeps the groups whose task rewards differ (before any KL cost)
        keep = mixed_groups(rewards) if cfg.dynamic_sampling else slice(None)
        if cfg.kl_placement == "reward":  # the KL as a cost of the answer, fixed at rollout
            rewards = kl_reward_penalty(rewards, logp_old_t, logp_ref_t, mask_t, cfg.beta)
        adv = group_advantages(rewards, cfg.advantage).float()
        # ---- update: a few gradient steps on the GRPO objective (maximised)
        for _ in range(cfg.updates_per_batch):
            if cfg.dynamic_sampling and not bool(keep.any()):
                break  # no group carries a signal: nothing to learn from this batch
            logp_t = policy.teacher(batch.prompts, batch.tokens)[0].view(B, G, MAX_LEN)
            if practice is None:  # chapter 14's objective, mean over the groups
                objective = grpo_objective(
                    logp_t,
                    logp_old_t,
                    adv,
                    mask_t,
                    epsilon=cfg.epsilon,
                    ratio=cfg.term,
                    length_norm=cfg.length_norm,
                    beta=cfg.beta,
                    logp_ref_t=logp_ref_t,
                    kl=cfg.kl,
                ).mean()
            else:
                objective = practice_objective(
                    logp_t[keep],
                    logp_old_t[keep],
                    adv[keep],
                    mask_t[keep],
                    logp_ref_t=logp_ref_t[keep] if practice["beta"] > 0 else None,
                    weight_t=None if weight_t is None else weight_t[keep],
                    **practice,
                )
            gradient_step(opt, -objective, trainer="GRPO", step=step)
        clock += time.perf_counter() - start
        if log.evaluate(step, clock, step * B * G, policy, task, cfg):
            break
        if callback is not None:
            callback(step, cfg.max_steps)
    if cfg.off_policy.active:
        log.capped = capped / max(tokens, 1)
    return policy.eval(), log


@torch.no_grad()
def group_log_probs(
    policy: Policy,
    prompts: torch.Tensor,
    tokens: torch.Tensor,
    group_size: int,
    logit_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-token log-probabilities of sampled answers under ``policy`` (with ``logit_bias``:
    under the perturbed sampler), constants (no gradient), grouped as ``(B, G, MAX_LEN)`` (rows
    prompt-major, ``G = group_size``)."""
    return policy.teacher(prompts, tokens, logit_bias)[0].view(-1, group_size, MAX_LEN)


def offpolicy_weights(policy: Policy, batch, logp_old_t: torch.Tensor, off: OffPolicy, bias):
    r"""Chapter 17's weight of each answer token, ``(B, G, MAX_LEN)``, a constant: the
    correction ``off`` (:func:`rlviz.fn.offpolicy.capped_weights`) of
    :math:`\pi_{\theta_\text{old}}/\mu`, with the learner's ``logp_old_t`` and the sampler's
    log-probabilities (the learner with ``bias`` added to its logits); and how many answer
    tokens' weights the cap changed. ``(None, 0)`` when ``off`` is not active."""
    if not off.active:
        return None, 0
    mask_t = batch.mask.view(logp_old_t.shape)
    logp_mu_t = group_log_probs(policy, batch.prompts, batch.tokens, logp_old_t.shape[1], bias)
    rho_t = importance_weights(logp_old_t, logp_mu_t, mask_t, off.level)
    weight_t = capped_weights(rho_t, mask_t, off.correction, off.cap)
    return weight_t, int(((weight_t != rho_t) & mask_t).sum())


def sampler_bias(delta: float, seed: int = 0) -> torch.Tensor:
    """The sampler's logit perturbation of chapter 17's training runs, ``(MAX_LEN,
    ANSWER_VOCAB)``: ``delta`` times a standard normal table (drawn from ``seed``), added to the
    learner's logits at each answer position. It stands for another engine's numerics (small
    ``delta``) or stale weights (large), as :func:`rlviz.experiments.ch17.mismatch_setting`
    does on the exact tree."""
    gen = torch.Generator().manual_seed(10_000 + int(seed))
    return float(delta) * torch.randn((MAX_LEN, ANSWER_VOCAB), generator=gen)
