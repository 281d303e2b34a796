r"""GRPO on the addition task of :mod:`rlviz.agents.addition_task` (chapter 14; notes section 14).

:func:`train_grpo` reads top to bottom: rollout (a group of ``group_size`` answers for each of
``prompts_per_step`` prompts), advantages (:func:`rlviz.fn.grpo_loss.group_advantages`, from
the rewards of each group alone: no critic), update (a few gradient steps on
:func:`rlviz.fn.grpo_loss.grpo_objective`). The variant is chosen by :class:`GRPOConfig`
(``advantage``, ``ratio``, ``length_norm``, ``kl``), so the trained comparisons of the chapter
call the same code as its exact ones.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch

from rlviz import _validate as validate
from rlviz.agents.addition_task import (
    MAX_LEN,
    AdditionTask,
    Policy,
    RunConfig,
    TrainLog,
    gradient_step,
    sample_answers,
)
from rlviz.fn.grpo_loss import (
    ADVANTAGES,
    KL_ESTIMATORS,
    LENGTH_NORMS,
    RATIOS,
    group_advantages,
    grpo_objective,
)

__all__ = ["GRPOConfig", "train_grpo"]


@dataclass(frozen=True, kw_only=True)
class GRPOConfig(RunConfig):
    """GRPO hyperparameters (and those of :class:`rlviz.agents.addition_task.RunConfig`); the
    variant is (``advantage``, ``ratio``, ``length_norm``, ``kl``). Each field is checked when
    the config is made (``ValueError`` naming it)."""

    group_size: int = 8  # G answers per prompt (the notes' K), >= 1 (>= 2 unless "mean")
    prompts_per_step: int = 32  # B prompts per batch, >= 1
    epsilon: float = 0.2  # clip of the ratio, > 0
    beta: float = 0.0  # KL coefficient to the reference, >= 0
    advantage: str = "mean"  # "mean" (notes), "std" (DeepSeekMath), "loo"
    ratio: str = "sequence"  # "sequence" (notes) or "token" (DeepSeekMath)
    length_norm: str | None = None  # with ratio="token": "sequence", "group", "constant"
    kl: str = "k3"  # the KL estimator, used when beta > 0

    def __post_init__(self):
        super().__post_init__()
        validate.positive("group_size", self.group_size, integer=True)
        validate.positive("prompts_per_step", self.prompts_per_step, integer=True)
        validate.positive("epsilon", self.epsilon)
        validate.non_negative("beta", self.beta)
        for name, allowed in (("advantage", ADVANTAGES), ("ratio", RATIOS), ("kl", KL_ESTIMATORS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.length_norm is not None and self.length_norm not in LENGTH_NORMS:
            raise ValueError(
                f"length_norm must be None or one of {LENGTH_NORMS}, got {self.length_norm!r}"
            )
        if self.length_norm is not None and self.ratio == "sequence":
            raise ValueError(
                f"length_norm must be None with ratio='sequence' (it applies to "
                f"ratio='token' only), got {self.length_norm!r}"
            )
        if self.advantage != "mean" and self.group_size < 2:
            raise ValueError(
                f"group_size must be >= 2 for advantage={self.advantage!r}, got {self.group_size}"
            )


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
    log, clock = TrainLog(), 0.0
    log.record(0, 0.0, 0, policy, task, cfg.target)
    for step in range(1, cfg.max_steps + 1):
        start = time.perf_counter()
        # ---- rollout: B prompts, G answers each, one batched generation
        batch = sample_answers(policy, task, B, G, gen)
        mask_t = batch.mask.view(B, G, MAX_LEN)
        # ---- advantages: each reward against its own group's; old and reference log-probs
        adv = group_advantages(batch.rewards.double().view(B, G), cfg.advantage).float()
        logp_old_t = group_log_probs(policy, batch.prompts, batch.tokens, G)
        logp_ref_t = (
            group_log_probs(reference, batch.prompts, batch.tokens, G) if cfg.beta > 0 else None
        )
        # ---- update: a few gradient steps on the GRPO objective (maximised)
        for _ in range(cfg.updates_per_batch):
            logp_t = policy.teacher(batch.prompts, batch.tokens)[0].view(B, G, MAX_LEN)
            objective = grpo_objective(
                logp_t,
                logp_old_t,
                adv,
                mask_t,
                epsilon=cfg.epsilon,
                ratio=cfg.ratio,
                length_norm=cfg.length_norm,
                beta=cfg.beta,
                logp_ref_t=logp_ref_t,
                kl=cfg.kl,
            )
            gradient_step(opt, -objective.mean(), trainer="GRPO", step=step)
        clock += time.perf_counter() - start
        if log.evaluate(step, clock, step * B * G, policy, task, cfg):
            break
        if callback is not None:
            callback(step, cfg.max_steps)
    return policy.eval(), log


@torch.no_grad()
def group_log_probs(
    policy: Policy, prompts: torch.Tensor, tokens: torch.Tensor, group_size: int
) -> torch.Tensor:
    """Per-token log-probabilities of sampled answers under ``policy``, constants (no
    gradient), grouped as ``(B, G, MAX_LEN)`` (rows prompt-major, ``G = group_size``)."""
    return policy.teacher(prompts, tokens)[0].view(-1, group_size, MAX_LEN)
