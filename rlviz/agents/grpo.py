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
import math
import time
from dataclasses import dataclass

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
from rlviz.fn.grpo_aggregation import AGG_MODES, aggregate
from rlviz.fn.grpo_loss import (
    ADVANTAGES,
    KL_ESTIMATORS,
    LENGTH_NORMS,
    RATIOS,
    group_advantages,
    grpo_objective,
    kl_estimate,
    kl_k1,
    sequence_log_prob,
    token_ratios,
)
from rlviz.fn.offpolicy import CORRECTIONS, IS_LEVELS, capped_weights, importance_weights
from rlviz.fn.ratios import asymmetric_clipped_surrogate, cispo_surrogate, gspo_ratios

__all__ = [
    "GRPOConfig",
    "PRACTICE_RATIOS",
    "train_grpo",
    "practice_objective",
    "mixed_groups",
    "sampler_bias",
    "offpolicy_weights",
]

# the ratios of the practice objective (chapters 15-16): per token, GSPO's per answer, CISPO's
PRACTICE_RATIOS = ("token", "gspo", "cispo")


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
    # ---- the options of chapters 15-16 (None / False: chapter 14's objective, unchanged)
    loss_agg: str | None = None  # a verl loss_agg_mode: the practice objective, over the batch
    eps_high: float | None = None  # clip-higher's upper width (practice objective; None: epsilon)
    dynamic_sampling: bool = False  # drop the groups whose rewards are all equal (DAPO)
    kl_in_reward: bool = (
        False  # beta * k1 of the answer subtracted from its reward, not in the loss
    )
    # ---- chapter 17: a sampler that is not the learner (0.0 and "none": the learner samples)
    sampler_delta: float = 0.0  # sampler logits = learner's + delta * sampler_bias table, >= 0
    correction: str = "none"  # off-policy weight (rlviz.fn.offpolicy): "none", "is", "tis", "mis"
    correction_level: str = "token"  # "token" or "sequence" weights
    correction_cap: float = math.inf  # the cap C > 0 of "tis" and "mis"

    def __post_init__(self):
        super().__post_init__()
        validate.positive("group_size", self.group_size, integer=True)
        validate.positive("prompts_per_step", self.prompts_per_step, integer=True)
        validate.positive("epsilon", self.epsilon)
        validate.non_negative("beta", self.beta)
        for name, allowed in (
            ("advantage", ADVANTAGES),
            ("ratio", RATIOS + PRACTICE_RATIOS[1:]),
            ("kl", KL_ESTIMATORS),
            ("correction", CORRECTIONS),
            ("correction_level", IS_LEVELS),
        ):
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
        if self.loss_agg is not None:
            if self.loss_agg not in AGG_MODES:
                raise ValueError(
                    f"loss_agg must be None or one of {AGG_MODES}, got {self.loss_agg!r}"
                )
            if self.ratio not in PRACTICE_RATIOS or self.length_norm is not None:
                raise ValueError(
                    f"with loss_agg, ratio must be one of {PRACTICE_RATIOS} and length_norm None "
                    f"(loss_agg replaces it), got ratio={self.ratio!r}, "
                    f"length_norm={self.length_norm!r}"
                )
        elif self.ratio not in RATIOS or self.eps_high is not None:
            raise ValueError(
                f"ratio {self.ratio!r} and eps_high need loss_agg (the practice objective); "
                f"without it ratio must be one of {RATIOS} and eps_high None, got "
                f"ratio={self.ratio!r}, eps_high={self.eps_high!r}"
            )
        if self.eps_high is not None:
            validate.positive("eps_high", self.eps_high)
        for name in ("dynamic_sampling", "kl_in_reward"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if (
            isinstance(self.sampler_delta, bool)
            or not isinstance(self.sampler_delta, (int, float))
            or not 0 <= self.sampler_delta < math.inf
        ):
            raise ValueError(
                f"sampler_delta must be a finite number >= 0, got {self.sampler_delta!r}"
            )
        if isinstance(self.correction_cap, bool) or not (
            isinstance(self.correction_cap, (int, float)) and self.correction_cap > 0
        ):
            raise ValueError(
                f"correction_cap must be a number > 0 (math.inf: no cap), got {self.correction_cap!r}"
            )
        if self.correction != "none" and self.loss_agg is None:
            raise ValueError(
                f"correction={self.correction!r} needs loss_agg (the practice objective weights "
                "its per-token terms); chapter 14's objective (loss_agg=None) takes none"
            )
        if self.kl_in_reward and not self.beta > 0:
            raise ValueError("kl_in_reward needs beta > 0 (the weight of the KL in the reward)")
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
    bias = sampler_bias(cfg.sampler_delta, cfg.seed) if cfg.sampler_delta > 0 else None
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
        weight_t, n_capped = offpolicy_weights(policy, batch, logp_old_t, cfg, bias)
        capped, tokens = capped + n_capped, tokens + int(mask_t.sum())
        logp_ref_t = (
            group_log_probs(reference, batch.prompts, batch.tokens, G) if cfg.beta > 0 else None
        )
        rewards = batch.rewards.double().view(B, G)
        if cfg.kl_in_reward:  # the KL as a cost of the answer, fixed at rollout (chapter 15)
            kl_y = sequence_log_prob(kl_k1(logp_old_t, logp_ref_t), mask_t).double()
            rewards = rewards - cfg.beta * kl_y
        adv = group_advantages(rewards, cfg.advantage).float()
        keep = mixed_groups(rewards) if cfg.dynamic_sampling else slice(None)
        # ---- update: a few gradient steps on the GRPO objective (maximised)
        for _ in range(cfg.updates_per_batch):
            if cfg.dynamic_sampling and not bool(keep.any()):
                break  # no group carries a signal: nothing to learn from this batch
            logp_t = policy.teacher(batch.prompts, batch.tokens)[0].view(B, G, MAX_LEN)
            loss_beta = 0.0 if cfg.kl_in_reward else cfg.beta
            ref_t = logp_ref_t[keep] if loss_beta > 0 else None
            if cfg.loss_agg is None:  # chapter 14's objective, mean over the kept groups
                objective = grpo_objective(
                    logp_t[keep],
                    logp_old_t[keep],
                    adv[keep],
                    mask_t[keep],
                    epsilon=cfg.epsilon,
                    ratio=cfg.ratio,
                    length_norm=cfg.length_norm,
                    beta=loss_beta,
                    logp_ref_t=ref_t,
                    kl=cfg.kl,
                ).mean()
            else:
                objective = practice_objective(
                    logp_t[keep],
                    logp_old_t[keep],
                    adv[keep],
                    mask_t[keep],
                    cfg,
                    ref_t,
                    loss_beta,
                    None if weight_t is None else weight_t[keep],
                )
            gradient_step(opt, -objective, trainer="GRPO", step=step)
        clock += time.perf_counter() - start
        if log.evaluate(step, clock, step * B * G, policy, task, cfg):
            break
        if callback is not None:
            callback(step, cfg.max_steps)
    if cfg.correction != "none":
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


def offpolicy_weights(policy: Policy, batch, logp_old_t: torch.Tensor, cfg: GRPOConfig, bias):
    """Chapter 17's weight of each answer token, ``(B, G, MAX_LEN)``, a constant: the
    correction ``cfg.correction`` (:func:`rlviz.fn.offpolicy.capped_weights`) of
    :math:`\\pi_{\theta_\text{old}}/\\mu`, with the learner's ``logp_old_t`` and the sampler's
    log-probabilities (the learner with ``bias`` added to its logits); and how many answer
    tokens' weights the cap changed. ``(None, 0)`` when ``cfg.correction`` is ``"none"``."""
    if cfg.correction == "none":
        return None, 0
    mask_t = batch.mask.view(logp_old_t.shape)
    logp_mu_t = group_log_probs(policy, batch.prompts, batch.tokens, cfg.group_size, bias)
    rho_t = importance_weights(logp_old_t, logp_mu_t, mask_t, cfg.correction_level)
    weight_t = capped_weights(rho_t, mask_t, cfg.correction, cfg.correction_cap)
    return weight_t, int(((weight_t != rho_t) & mask_t).sum())


def sampler_bias(delta: float, seed: int = 0) -> torch.Tensor:
    """The sampler's logit perturbation of chapter 17's training runs, ``(MAX_LEN,
    ANSWER_VOCAB)``: ``delta`` times a standard normal table (drawn from ``seed``), added to the
    learner's logits at each answer position. It stands for another engine's numerics (small
    ``delta``) or stale weights (large), as :func:`rlviz.experiments.ch17.mismatch_setting`
    does on the exact tree."""
    gen = torch.Generator().manual_seed(10_000 + int(seed))
    return float(delta) * torch.randn((MAX_LEN, ANSWER_VOCAB), generator=gen)


def mixed_groups(rewards: torch.Tensor) -> torch.Tensor:
    """``(B,)`` booleans: the groups whose rewards are not all equal (DAPO's dynamic sampling
    keeps these; the others have zero advantages and no gradient, chapter 15)."""
    return rewards.max(dim=1).values > rewards.min(dim=1).values


def practice_objective(
    logp_t: torch.Tensor,
    logp_old_t: torch.Tensor,
    adv: torch.Tensor,
    mask_t: torch.Tensor,
    cfg: GRPOConfig,
    logp_ref_t: torch.Tensor | None = None,
    beta: float = 0.0,
    weight_t: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""The objective of chapters 15-17 (to be *maximised*), one scalar for the batch:

    .. math:: \operatorname{agg}_{i,t}\bigl[w_{i,t}\,\ell_{i,t} - \beta\,\hat k_{i,t}\bigr],

    with :math:`\ell_{i,t}` the clipped surrogate of the token ratio (``cfg.ratio="token"``)
    or of GSPO's per-answer ratio (``"gspo"``, :func:`rlviz.fn.ratios.gspo_ratios`), clipped
    to :math:`[1-\epsilon, 1+\epsilon_\text{high}]`
    (:func:`rlviz.fn.ratios.asymmetric_clipped_surrogate`), or CISPO's stopped-gradient weight
    (``"cispo"``, :func:`rlviz.fn.ratios.cispo_surrogate`); :math:`\hat k` the estimator
    ``cfg.kl``; ``agg`` the verl mode ``cfg.loss_agg``
    (:func:`rlviz.fn.grpo_aggregation.aggregate`) over every token of the batch;
    :math:`w_{i,t}` the off-policy weight ``weight_t`` of chapter 17
    (:func:`rlviz.fn.offpolicy.correction_weights`, a constant; None: 1). Shapes ``(B, G, L)``,
    ``adv`` ``(B, G)``."""
    eps_high = cfg.epsilon if cfg.eps_high is None else cfg.eps_high
    adv_t = adv[..., None].expand_as(logp_t).to(logp_t.dtype)
    if cfg.ratio == "cispo":
        per_tok = cispo_surrogate(logp_t, logp_old_t, adv_t, cfg.epsilon, eps_high)
    else:
        if cfg.ratio == "gspo":
            rho_t = gspo_ratios(logp_t, logp_old_t, mask_t)[..., None].expand_as(logp_t)
        else:
            rho_t = token_ratios(logp_t, logp_old_t, mask_t)
        per_tok = asymmetric_clipped_surrogate(rho_t, adv_t, cfg.epsilon, eps_high)
    if weight_t is not None:
        if weight_t.shape != per_tok.shape:
            raise ValueError(
                f"weight_t must have the shape of logp_t {tuple(per_tok.shape)}, got "
                f"{tuple(weight_t.shape)}"
            )
        per_tok = weight_t.detach().to(per_tok.dtype) * per_tok
    if beta > 0:
        per_tok = per_tok - beta * kl_estimate(cfg.kl, logp_t, logp_ref_t)
    return aggregate(per_tok, mask_t, cfg.loss_agg)
