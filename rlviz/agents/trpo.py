r"""TRPO on CartPole (chapter 11; Schulman et al. 2015), from the book's own parts.

One update of :func:`train`:

1. **rollout** of the current policy (:func:`rlviz.agents.actor_critic.collect`, same-step
   autoreset);
2. **advantages** by :func:`rlviz.fn.returns.gae`, truncated episodes bootstrapping from
   :math:`\hat V` of their final observation; value targets :math:`\hat A_t + \hat V(s_t)`;
   the advantages standardised over the batch (:func:`rlviz.fn.ppo_loss.normalize_advantages`);
3. **policy step**: the surrogate gradient :math:`g = \nabla_\theta L(\theta_{\text{old}})`,
   :math:`L(\theta) = \hat E_t[r_t(\theta)\hat A_t]`
   (:func:`rlviz.fn.ppo_loss.policy_gradient_surrogate`); :math:`x \approx F^{-1} g` by
   :func:`rlviz.fn.trust_region.conjugate_gradient` with Fisher-vector products by double
   back-propagation (:func:`rlviz.fn.trust_region.fisher_vector_product`) of the exact mean KL
   (:func:`rlviz.fn.ppo_loss.categorical_kl`); the full step
   :math:`\sqrt{2\delta / g^\top x}\; x` (:func:`rlviz.fn.trust_region.trpo_step_size`); then
   :func:`rlviz.fn.trust_region.backtracking_line_search` halves it until the exact mean KL is
   at most :math:`\delta` and the surrogate improved;
4. **critic**: a few Adam epochs on the squared error :func:`rlviz.fn.ppo_loss.value_loss`.

The network is :class:`rlviz.agents.actor_critic.ActorCritic` with one setting (row 0 the
actor, row 1 the critic): the policy quantities depend on the actor row only and the value on
the critic row only, so the parameter vector of the trust-region functions is all of
``agent.params`` and the step is zero on the critic's entries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from rlviz import _validate as validate
from rlviz._threads import with_threads
from rlviz.agents.actor_critic import (
    ActorCritic,
    Runner,
    TrainResult,
    by_setting,
    check_callback,
    log_prob,
    progress_range,
    rollout_advantages,
)
from rlviz.fn.ppo_loss import (
    categorical_kl,
    normalize_advantages,
    policy_gradient_surrogate,
    value_loss,
)
from rlviz.fn.trust_region import (
    backtracking_line_search,
    conjugate_gradient,
    fisher_vector_product,
    trpo_step_size,
)

__all__ = ["TRPOConfig", "policy_step", "train"]


@dataclass(frozen=True, kw_only=True)
class TRPOConfig:
    """Hyperparameters of :func:`train`."""

    total_steps: int = 80_000
    n_envs: int = 8
    n_steps: int = 64
    delta: float = 0.02  # KL limit per update
    cg_iters: int = 10
    damping: float = 0.1  # F + damping I in the conjugate gradient
    max_backtracks: int = 10
    gamma: float = 0.99
    lam: float = 0.95
    vf_lr: float = 3e-3  # Adam on the critic
    vf_epochs: int = 5
    hidden: int = 32
    seed: int = 0

    def __post_init__(self):
        for name in (
            "total_steps",
            "n_envs",
            "n_steps",
            "cg_iters",
            "max_backtracks",
            "vf_epochs",
            "hidden",
        ):
            validate.positive(name, getattr(self, name), integer=True)
        for name in ("delta", "damping", "gamma", "lam", "vf_lr"):
            validate.real(name, getattr(self, name))
        for name in ("delta", "vf_lr"):
            validate.positive(name, getattr(self, name))
        validate.non_negative("damping", self.damping)
        for name in ("gamma", "lam"):
            validate.unit_interval(name, getattr(self, name))
        validate.integer("seed", self.seed, minimum=0)
        if self.n_envs * self.n_steps < 2:
            raise ValueError(
                f"n_envs * n_steps must be at least 2 (advantages are standardised "
                f"over the batch), got {self.n_envs * self.n_steps}"
            )

    @property
    def updates(self) -> int:
        return max(1, self.total_steps // (self.n_envs * self.n_steps))


def _vector(agent: ActorCritic) -> torch.Tensor:
    """The parameters in the order of ``agent.params``, flattened (the trust-region vector)."""
    return torch.cat([p.detach().reshape(-1) for p in agent.params])


def _assign(agent: ActorCritic, x: torch.Tensor) -> None:
    with torch.no_grad():
        for p, chunk in zip(agent.params, torch.split(x, [p.numel() for p in agent.params])):
            p.copy_(chunk.view_as(p))


def policy_step(agent: ActorCritic, obs, act, adv, cfg: TRPOConfig, update: int):
    r"""One trust-region step of the actor on a batch (step 3 of the module docstring).

    ``obs`` ``(1, B, 4)``, ``act`` ``(1, B)``, ``adv`` ``(1, B)`` the standardised advantages.
    Leaves ``agent`` at :math:`\theta_{\text{old}} + f\,s` with :math:`f` the accepted fraction
    of the step :math:`s` (0 if none was accepted). Returns ``(f, info, residuals)``: the line
    search's record and the conjugate gradient's residual norms.
    """
    with torch.no_grad():
        logp_old_all = torch.log_softmax(agent(obs)[0], -1)
    logp_old = logp_old_all.gather(-1, act.unsqueeze(-1)).squeeze(-1)

    def surrogate():  # L(theta) = E[r_t A_t] at the current parameters
        ratio = torch.exp(log_prob(agent(obs)[0], act) - logp_old)
        return policy_gradient_surrogate(ratio, adv).mean()

    def mean_kl():  # E_s KL(pi_old(.|s) || pi_theta(.|s)), exact over the two actions
        return categorical_kl(logp_old_all, torch.log_softmax(agent(obs)[0], -1)).mean()

    def at(theta, fn):  # fn at the flat parameters theta (the line search's trial points)
        _assign(agent, theta)
        return fn()

    L0 = surrogate()
    g = torch.cat([gr.reshape(-1) for gr in torch.autograd.grad(L0, agent.params)])
    _check_finite("surrogate gradient", g, update)
    x, residuals = conjugate_gradient(
        lambda v: fisher_vector_product(mean_kl, agent.params, v, damping=cfg.damping),
        g,
        iters=cfg.cg_iters,
    )
    _check_finite("natural-gradient direction", x, update)
    step = trpo_step_size(g, x, cfg.delta) * x
    theta_old = _vector(agent)
    frac, info = backtracking_line_search(
        step,
        lambda th: at(th, surrogate) - L0.detach(),
        lambda th: at(th, mean_kl),
        cfg.delta,
        max_backtracks=cfg.max_backtracks,
        theta_old=theta_old,
    )
    _assign(agent, theta_old + frac * step)
    return frac, info, residuals


def _check_finite(name: str, x: torch.Tensor, update: int) -> None:
    if not torch.isfinite(x).all():
        raise FloatingPointError(f"TRPO update {update}: {name} is not finite; training stopped")


@with_threads
def train(cfg: TRPOConfig, *, callback=None, progress: bool = False) -> TrainResult:
    """Train TRPO on CartPole-v1; returns a :class:`rlviz.agents.actor_critic.TrainResult`
    (one setting).

    Logged per update: ``return``, ``kl`` (exact mean KL of the accepted step),
    ``step_fraction`` (accepted shrink factor, 0 if the step was rejected), ``cg_residual``
    (last true residual of CG), ``improvement`` (surrogate gain) and ``value_loss``.
    ``callback(update, steps, agent)`` runs after each update (not counted in
    ``train_seconds``); ``threads`` (keyword, default 1) sets torch's thread count.
    Raises ``ValueError`` for bad arguments and ``FloatingPointError`` naming the update and the
    quantity if one stops being finite.
    """
    if not isinstance(cfg, TRPOConfig):
        raise ValueError(f"cfg must be a TRPOConfig, got {type(cfg).__name__}")
    check_callback(callback)
    agent, runner = ActorCritic.init([cfg.seed], cfg.hidden), Runner([cfg.seed], cfg.n_envs)
    adam = torch.optim.Adam(agent.params, lr=cfg.vf_lr)
    logs = {
        k: []
        for k in (
            "steps",
            "return",
            "kl",
            "step_fraction",
            "cg_residual",
            "improvement",
            "value_loss",
        )
    }
    result = TrainResult(agent, [cfg], logs)
    excluded, start = 0.0, time.perf_counter()
    for update in progress_range(cfg.updates, progress, "TRPO"):
        # ---- rollout and advantages (standardised over the batch)
        ro, logp_t, v_t, adv = rollout_advantages(agent, runner, cfg.n_steps, cfg.gamma, cfg.lam)
        obs, act, target = (by_setting(a, 1) for a in (ro.obs, ro.actions, adv + v_t))

        # ---- policy step: natural gradient, scaled to the KL limit, then line search
        frac, info, residuals = policy_step(
            agent, obs, act, normalize_advantages(by_setting(adv, 1), dim=1), cfg, update + 1
        )

        # ---- critic: Adam epochs on the squared error to the lambda-returns
        for _ in range(cfg.vf_epochs):
            vl = value_loss(agent(obs)[1], target).mean()
            _check_finite("value loss", vl, update + 1)
            adam.zero_grad()
            vl.backward()
            for p in agent.params:  # the value depends on the critic row only: keep the actor
                p.grad[0] = 0
            adam.step()

        steps = (update + 1) * cfg.n_envs * cfg.n_steps
        accepted = info["accepted"]
        excluded += result.record(
            {
                "steps": steps,
                "return": runner.mean_last_return().tolist(),
                "kl": [info["kls"][accepted] if accepted is not None else 0.0],
                "step_fraction": [frac],
                "cg_residual": [residuals[-1]],
                "improvement": [info["improvements"][accepted] if accepted is not None else 0.0],
                "value_loss": [float(vl.detach())],
            },
            callback,
            update + 1,
            steps,
        )
    result.train_seconds = time.perf_counter() - start - excluded
    return result
