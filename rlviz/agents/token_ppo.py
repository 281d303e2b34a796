r"""PPO with a learned critic on the addition task of :mod:`rlviz.agents.addition_task` (chapter 14).

The comparison GRPO is measured against: each answer is an episode of a token-level MDP whose
actions are the answer tokens, with the reward (1 if the whole answer is right) at its last
token. A value head on the policy's GRU estimates :math:`V` of each prefix, the advantages are
:func:`rlviz.fn.returns.gae` over the answer tokens (time-major, the answer *terminated* at its
last token) and are normalised over the batch's tokens
(:func:`rlviz.fn.ppo_loss.normalize_advantages`); the update minimises the token-averaged
clipped surrogate plus value loss (:func:`token_ppo_loss`). :func:`train_ppo` reads top to
bottom: rollout, advantages, update.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
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
from rlviz.fn.ppo_loss import clipped_surrogate, normalize_advantages, value_loss
from rlviz.fn.returns import Transitions, gae

__all__ = ["PPOConfig", "train_ppo", "token_advantages", "normalize_over_tokens", "token_ppo_loss"]


@dataclass(frozen=True, kw_only=True)
class PPOConfig(RunConfig):
    """PPO hyperparameters (and those of :class:`rlviz.agents.addition_task.RunConfig`). Each
    field is checked when the config is made (``ValueError`` naming it)."""

    batch_size: int = 256  # answers per batch (as GRPO's B * G), >= 2
    epsilon: float = 0.2  # clip of the ratio, > 0
    gamma: float = 1.0  # discount over the answer tokens, in [0, 1]
    lam: float = 0.95  # GAE's lambda, in [0, 1]
    value_coef: float = 0.5  # weight of the value loss, >= 0

    def __post_init__(self):
        super().__post_init__()
        if validate.positive("batch_size", self.batch_size, integer=True) < 2:
            raise ValueError(
                f"batch_size must be >= 2 (advantages are normalised over the "
                f"batch), got {self.batch_size}"
            )
        validate.positive("epsilon", self.epsilon)
        validate.unit_interval("gamma", self.gamma)
        validate.unit_interval("lam", self.lam)
        validate.non_negative("value_coef", self.value_coef)


def train_ppo(
    task: AdditionTask, reference: Policy, cfg: PPOConfig = PPOConfig(), *, callback=None
):
    """Train a copy of ``reference`` plus a fresh value head with PPO; ``(policy, TrainLog)``.

    ``callback(step, max_steps)``, if given, runs after each update (it may raise to stop).
    """
    torch.manual_seed(cfg.seed)  # the value head's initial weights
    gen = torch.Generator().manual_seed(cfg.seed)
    policy = Policy(critic=True)
    policy.load_state_dict(reference.state_dict(), strict=False)
    opt = torch.optim.Adam(policy.parameters(), lr=cfg.lr)
    N = cfg.batch_size
    log, clock = TrainLog(), 0.0
    log.record(0, 0.0, 0, policy, task, cfg.target)
    for step in range(1, cfg.max_steps + 1):
        start = time.perf_counter()
        # ---- rollout: N prompts, one answer each
        batch = sample_answers(policy, task, N, 1, gen)
        with torch.no_grad():
            logp_old, v_old = policy.teacher(batch.prompts, batch.tokens)
        # ---- advantages: GAE over the answer tokens; value targets; normalised advantages
        adv = token_advantages(batch.rewards, batch.mask, v_old, gamma=cfg.gamma, lam=cfg.lam)
        v_target = adv + v_old
        adv = normalize_over_tokens(adv, batch.mask)
        # ---- update: clipped surrogate per token + value loss
        for _ in range(cfg.updates_per_batch):
            logp, v = policy.teacher(batch.prompts, batch.tokens)
            loss = token_ppo_loss(
                logp,
                logp_old,
                adv,
                v,
                v_target,
                batch.mask,
                epsilon=cfg.epsilon,
                value_coef=cfg.value_coef,
            )
            gradient_step(opt, loss, trainer="token PPO", step=step)
        clock += time.perf_counter() - start
        if log.evaluate(step, clock, step * N, policy, task, cfg):
            break
        if callback is not None:
            callback(step, cfg.max_steps)
    return policy.eval(), log


def token_advantages(
    rewards: torch.Tensor, mask: torch.Tensor, v_old: torch.Tensor, *, gamma: float, lam: float
) -> torch.Tensor:
    r"""GAE advantages of the answer tokens, ``(N, MAX_LEN)`` float32.

    Answer ``n`` is an episode of ``mask[n].sum()`` steps: reward 0 at each token except
    ``rewards[n]`` at the last, which *terminates* it (no bootstrap); padding steps are
    terminated too, with reward 0 (their advantages are meaningless and masked by the caller).
    :func:`rlviz.fn.returns.gae` runs on the time-major ``(MAX_LEN, N)`` transposes, in
    float64. ``v_old``: values ``(N, MAX_LEN)`` of the prefixes before each token.
    """
    n = rewards.shape[0]
    last = torch.nn.functional.one_hot(mask.sum(-1) - 1, MAX_LEN).bool()
    r_t = (last * rewards[:, None]).T.numpy().astype(np.float64)
    terminated_t = (last | ~mask).T.numpy()
    tr = Transitions(
        r_t=r_t,
        v_t=v_old.T.numpy().astype(np.float64),
        v_T=np.zeros(n),
        terminated_t=terminated_t,
        truncated_t=np.zeros_like(terminated_t),
    )
    a_t = gae(tr, gamma=gamma, lam=lam)
    return torch.as_tensor(a_t.T, dtype=torch.float32)


def normalize_over_tokens(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`rlviz.fn.ppo_loss.normalize_advantages` over the answer tokens of the batch (the
    entries where ``mask``); 0 on padding. Shape kept."""
    out = torch.zeros_like(adv)
    out[mask] = normalize_advantages(adv[mask])
    return out


def token_ppo_loss(
    logp: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    v: torch.Tensor,
    v_target: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon,
    value_coef: float,
) -> torch.Tensor:
    r"""PPO's loss averaged over the answer tokens of the batch (to be minimised):

    .. math:: \mathcal L = -\frac{1}{\sum |y|}\sum_{n,t} \ell^{CLIP}_{n,t}
              + c_1 \frac{1}{\sum |y|}\sum_{n,t} \bigl(V_{n,t} - V^\text{target}_{n,t}\bigr)^2,

    :math:`\ell^{CLIP}` of :func:`rlviz.fn.ppo_loss.clipped_surrogate` with the token ratios
    :math:`\exp(\log\pi - \log\pi_\text{old})`, :math:`c_1` = ``value_coef``, the sums over
    the tokens where ``mask``. All tensors ``(N, MAX_LEN)``.
    """
    m = mask.float()
    pg = clipped_surrogate(torch.exp(logp - logp_old), adv, epsilon)
    return -(pg * m).sum() / m.sum() + value_coef * (value_loss(v, v_target) * m).sum() / m.sum()
