"""Chapter 13: exact facts about the full PPO loss on the book's actor-critic (autograd, float64)."""

from __future__ import annotations

import torch

from rlviz.agents.actor_critic import ActorCritic
from rlviz.agents.ppo import clip_grad_norm_per_setting
from rlviz.fn.ppo_loss import clipped_surrogate, entropy, value_loss
from rlviz.verify import Measure, identity


def _batch(seed: int = 0, B: int = 64):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(1, B, 4, generator=g, dtype=torch.float64)
    act = torch.randint(0, 2, (1, B, 1), generator=g)
    adv = torch.randn(1, B, generator=g, dtype=torch.float64)
    target = torch.randn(1, B, generator=g, dtype=torch.float64)
    return obs, act, adv, target


def _agent(seed: int = 0) -> ActorCritic:
    agent = ActorCritic.init([seed], 16)
    with torch.no_grad():  # move away from the initialisation so the ratios differ from 1
        agent.flat.add_(
            0.3 * torch.randn(agent.flat.shape, generator=torch.Generator().manual_seed(seed))
        )
    return ActorCritic(agent.flat.double(), 16)


def _full_loss_grads(agent, obs, act, adv, target, c1: float, c2: float):
    logits, v = agent(obs)
    logp = torch.log_softmax(logits, -1).gather(-1, act)[..., 0]
    ratio = torch.exp(logp - logp.detach() + 0.1 * torch.tanh(adv))  # ratios spread around 1
    L = (
        clipped_surrogate(ratio, adv, 0.2) - c1 * value_loss(v, target) + c2 * entropy(logits)
    ).mean()
    return torch.autograd.grad(L, agent.params)


@identity(
    "ch13.c1_moves_only_the_critic",
    chapter=13,
    kind="sanity",
    title="separate actor and critic: grad of L in the actor's weights does not depend on c1",
)
def c1_moves_only_the_critic() -> Measure:
    errs = []
    for seed in range(3):
        agent = _agent(seed)
        batch = _batch(seed)
        g_a = _full_loss_grads(agent, *batch, c1=0.5, c2=0.01)
        g_b = _full_loss_grads(agent, *batch, c1=5.0, c2=0.01)
        errs.append(max(float((a[0] - b[0]).abs().max()) for a, b in zip(g_a, g_b)))  # row 0: actor
    return Measure(max(errs), "3 random actor-critics (width 16), c1 = 0.5 vs 5")


@identity(
    "ch13.value_clip_inside",
    chapter=13,
    title="value clipping changes nothing where |V - V_old| <= clip, and never lowers the loss",
)
def value_clip_inside() -> Measure:
    g = torch.Generator().manual_seed(3)
    v_old = torch.randn(5000, generator=g, dtype=torch.float64)
    v = v_old + 0.5 * torch.randn(5000, generator=g, dtype=torch.float64)
    target = torch.randn(5000, generator=g, dtype=torch.float64)
    errs = []
    for c in (0.1, 0.2, 0.5):
        plain, clipped = value_loss(v, target), value_loss(v, target, v_old, clip=c)
        inside = (v - v_old).abs() <= c
        errs.append(float((clipped - plain)[inside].abs().max()))
        errs.append(float(torch.clamp(plain - clipped, min=0).max()))  # clipped >= plain
    return Measure(max(errs), "5000 samples x clip in {0.1, 0.2, 0.5}")


def _clipped_actor_step(agent, batch, c1: float, max_norm: float) -> torch.Tensor:
    """The actor row of the trainer's clipped gradient of -L (one setting)."""
    logits, v = agent(batch[0])
    logp = torch.log_softmax(logits, -1).gather(-1, batch[1])[..., 0]
    ratio = torch.exp(logp - logp.detach() + 0.1 * torch.tanh(batch[2]))
    loss = -(clipped_surrogate(ratio, batch[2], 0.2) - c1 * value_loss(v, batch[3])).mean()
    grad = clip_grad_norm_per_setting(agent.gradient(loss), torch.tensor([[max_norm]]))
    return grad[0]


@identity(
    "ch13.c1_changes_the_clipped_actor_step",
    chapter=13,
    kind="bound",
    tol=0.01,
    at_least=True,
    statistic="min over 3 agents of ||step(c1=0.5) - step(c1=5)|| / ||step(c1=0.5)||, actor row",
    title="with gradient clipping (0.5, over actor and critic together) c1 changes the actor's step",
)
def c1_changes_the_clipped_actor_step() -> Measure:
    changes, unclipped = [], []
    for seed in range(3):
        agent, batch = _agent(seed), _batch(seed)
        a, b = (_clipped_actor_step(agent, batch, c1, 0.5) for c1 in (0.5, 5.0))
        changes.append(float((a - b).norm() / a.norm()))
        a, b = (_clipped_actor_step(agent, batch, c1, float("inf")) for c1 in (0.5, 5.0))
        unclipped.append(float((a - b).abs().max()))
    return Measure(
        min(changes),
        f"3 random actor-critics (width 16); without clipping the actor's step does not move "
        f"with c1 (max difference {'< 1e-12' if max(unclipped) < 1e-12 else f'{max(unclipped):.1e}'})",
    )
