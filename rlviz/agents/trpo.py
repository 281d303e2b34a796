r"""TRPO on CartPole (chapter 11; Schulman et al. 2015), from the book's own parts.

One update of :func:`train`:

1. **rollout** of the current policy (:func:`rlviz.agents.ppo.collect`, same-step autoreset);
2. **advantages** by :func:`rlviz.fn.returns.gae`, truncated episodes bootstrapping from
   :math:`\hat V` of their final observation; value targets :math:`\hat A_t + \hat V(s_t)`;
3. **policy step**: the surrogate gradient :math:`g = \nabla_\theta L(\theta_{\text{old}})`,
   :math:`L(\theta) = \hat E_t[r_t(\theta)\hat A_t]`; :math:`x \approx F^{-1} g` by
   :func:`rlviz.fn.trust_region.conjugate_gradient` with Fisher-vector products by double
   back-propagation (:func:`rlviz.fn.trust_region.fisher_vector_product`); the full step
   :math:`\sqrt{2\delta / g^\top x}\; x` (:func:`rlviz.fn.trust_region.trpo_step_size`); then
   :func:`rlviz.fn.trust_region.backtracking_line_search` halves it until the exact mean KL is
   at most :math:`\delta` and the surrogate improved;
4. **critic**: a few Adam epochs on the squared error :func:`rlviz.fn.ppo_loss.value_loss`.

The network is :class:`rlviz.agents.ppo.ActorCritic` with K = 1 (row 0 the actor, row 1 the critic):
the policy quantities depend on the actor row only and the value on the critic row only, so
the parameter vector of the trust-region functions is all of ``agent.params`` and the step is
zero on the critic's entries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from rlviz import _validate as V
from rlviz.fn.returns import gae
from rlviz.fn.ppo_loss import value_loss
from rlviz.agents.ppo import (OBS, ActorCritic, PPOResult, _record, _Runner, collect, rollout_values,
                  single_threaded)
from rlviz.fn.trust_region import (backtracking_line_search, conjugate_gradient, fisher_vector_product,
                           trpo_step_size)

__all__ = ["TRPOConfig", "train"]


@dataclass(frozen=True, kw_only=True)
class TRPOConfig:
    """Hyperparameters of :func:`train`."""

    total_steps: int = 80_000
    n_envs: int = 8
    n_steps: int = 64
    delta: float = 0.02          # KL limit per update
    cg_iters: int = 10
    damping: float = 0.1         # F + damping I in the conjugate gradient
    max_backtracks: int = 10
    gamma: float = 0.99
    lam: float = 0.95
    vf_lr: float = 3e-3          # Adam on the critic
    vf_epochs: int = 5
    hidden: int = 32
    seed: int = 0

    def __post_init__(self):
        for name in ("total_steps", "n_envs", "n_steps", "cg_iters", "max_backtracks",
                     "vf_epochs", "hidden"):
            V.positive(name, getattr(self, name), integer=True)
        for name in ("delta", "vf_lr"):
            V.positive(name, getattr(self, name))
        V.unit_interval("gamma", self.gamma)
        V.unit_interval("lam", self.lam)
        if not self.damping >= 0:
            raise ValueError(f"damping must be >= 0, got {self.damping!r}")


def _vector(agent: ActorCritic) -> torch.Tensor:
    """The parameters in the order of ``agent.params``, flattened (the trust-region vector)."""
    return torch.cat([p.detach().reshape(-1) for p in agent.params])


def _assign(agent: ActorCritic, x: torch.Tensor) -> None:
    with torch.no_grad():
        for p, chunk in zip(agent.params, torch.split(x, [p.numel() for p in agent.params])):
            p.copy_(chunk.view_as(p))


@single_threaded
def train(cfg: TRPOConfig, *, callback=None, progress: bool = False) -> PPOResult:
    """Train TRPO on CartPole-v1; returns a :class:`rlviz.agents.ppo.PPOResult` (K = 1).

    Logged per update: ``return``, ``kl`` (exact mean KL of the accepted step),
    ``step_fraction`` (accepted shrink factor, 0 if the step was rejected), ``cg_residual``
    (last true residual of CG), ``improvement`` (surrogate gain) and ``value_loss``.
    Raises ``FloatingPointError`` naming the update and the quantity if one stops being finite.
    """
    if not isinstance(cfg, TRPOConfig):
        raise ValueError(f"cfg must be a TRPOConfig, got {type(cfg).__name__}")
    n, T = cfg.n_envs, cfg.n_steps
    U = max(1, cfg.total_steps // (n * T))
    agent = ActorCritic.init([cfg.seed], cfg.hidden)
    runner = _Runner([cfg.seed], n)
    adam = torch.optim.Adam(agent.params, lr=cfg.vf_lr)
    logs = {k: [] for k in ("steps", "return", "kl", "step_fraction", "cg_residual",
                            "improvement", "value_loss")}
    result = PPOResult(agent, [cfg], logs)
    excluded, start = 0.0, time.perf_counter()
    updates = range(U)
    if progress:
        from tqdm.auto import tqdm
        updates = tqdm(updates, desc="TRPO", unit="update")
    for u in updates:
        # ---- rollout and advantages
        ro = collect(agent, runner, T)
        logp_t, v_t, v_T, v_final = rollout_values(agent, ro)
        adv = gae(ro.rewards, v_t, v_T=v_T, terminated_t=ro.terminated, truncated_t=ro.truncated,
                  v_final_t=v_final, gamma=cfg.gamma, lam=cfg.lam)
        target = torch.from_numpy((adv + v_t).reshape(1, -1))
        obs = torch.from_numpy(ro.obs.reshape(1, -1, OBS))
        act = torch.from_numpy(ro.actions.reshape(1, -1, 1))
        a = torch.from_numpy(adv.reshape(1, -1))
        a = (a - a.mean()) / (a.std() + 1e-8)
        with torch.no_grad():
            logits_old, _ = agent(obs)
            logp_old_all = torch.log_softmax(logits_old, -1)
        logp_old = logp_old_all.gather(-1, act)[..., 0]

        def surrogate():  # L(theta) = E[r_t A_t] at the current parameters
            logp = torch.log_softmax(agent(obs)[0], -1)
            return (torch.exp(logp.gather(-1, act)[..., 0] - logp_old) * a).mean()

        def mean_kl():  # E_s KL(pi_old(.|s) || pi_theta(.|s)), exact over the two actions
            logp = torch.log_softmax(agent(obs)[0], -1)
            return (logp_old_all.exp() * (logp_old_all - logp)).sum(-1).mean()

        # ---- policy step: natural gradient, scaled to the KL limit, then line search
        L0 = surrogate()
        g = torch.cat([gr.reshape(-1) for gr in torch.autograd.grad(L0, agent.params)])
        x, residuals = conjugate_gradient(
            lambda v: fisher_vector_product(mean_kl, agent.params, v, damping=cfg.damping),
            g, iters=cfg.cg_iters)
        step = trpo_step_size(g, x, cfg.delta) * x
        theta_old = _vector(agent)

        def at(theta, fn):
            _assign(agent, theta)
            return fn()
        frac, info = backtracking_line_search(
            step, lambda th: at(th, surrogate) - L0.detach(), lambda th: at(th, mean_kl),
            cfg.delta, max_backtracks=cfg.max_backtracks, theta_old=theta_old)
        _assign(agent, theta_old + frac * step)
        for name, val in (("surrogate gradient", g), ("step", step)):
            if not torch.isfinite(val).all():
                raise FloatingPointError(f"TRPO update {u + 1}: {name} is not finite; training stopped")

        # ---- critic: Adam epochs on the squared error to the lambda-returns
        for _ in range(cfg.vf_epochs):
            vl = value_loss(agent(obs)[1][:1], target).mean()
            if not torch.isfinite(vl):
                raise FloatingPointError(f"TRPO update {u + 1}: value loss is not finite; training stopped")
            adam.zero_grad()
            vl.backward()
            for p in agent.params:  # the value depends on the critic row only: keep the actor
                p.grad[0] = 0
            adam.step()

        steps = (u + 1) * n * T
        acc = info["accepted"]
        excluded += _record(logs, {
            "steps": steps, "return": runner.mean_last_return().tolist(),
            "kl": [info["kls"][acc] if acc is not None else 0.0], "step_fraction": [frac],
            "cg_residual": [residuals[-1]],
            "improvement": [info["improvements"][acc] if acc is not None else 0.0],
            "value_loss": [float(vl.detach())]}, callback, u + 1, steps, agent)
    result.train_seconds = time.perf_counter() - start - excluded
    return result
