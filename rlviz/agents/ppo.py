r"""PPO on CartPole, for one setting or a grid of settings trained as one computation.

Chapter 13 (notes section 13; Schulman et al. 2017; the implementation details of Huang et al.
2022). The trainer :func:`train` reads top to bottom: rollout, advantages, update, each a few
lines calling named parts: the rollouts of :mod:`rlviz.agents.actor_critic`, GAE
(:func:`rlviz.fn.returns.gae` with one :math:`(\gamma, \lambda)` per column, the function of
chapter 9), the loss of one minibatch (:func:`ppo_loss`, the terms of
:mod:`rlviz.fn.ppo_loss`) and a per-row Adam (:class:`RowAdam`). It maximises

.. math::
    L(\theta, \phi) = \hat E_t\bigl[\ell^{CLIP}_t(\theta) - c_1 \ell^V_t(\phi) + c_2 H(\pi_\theta(\cdot\mid s_t))\bigr]

by Adam on :math:`-L`.

Settings as a batch dimension
-----------------------------
:func:`train` takes one :class:`PPOConfig` or a list of ``n_settings`` of them that may differ
in :math:`\gamma, \lambda, \epsilon`, the seed, the step size, the loss coefficients and the
on/off details (advantage normalisation, value clipping, gradient clipping, annealing); they
share the sizes (environments, steps, epochs, minibatches, width, budget). :class:`Settings`
holds the per-setting values as columns ``(n_settings, 1)``. All agents live in one tensor
``flat`` of shape ``(2 n_settings, P)`` (:class:`rlviz.agents.actor_critic.ActorCritic`: row k
is the actor of setting k, row ``n_settings + k`` its critic); one
:class:`rlviz.agents.cartpole.BatchedCartPole` runs all ``n_settings * n_envs`` environments;
the losses are summed over settings, so each setting gets its own gradient; gradient clipping
and Adam act per setting and per row. Setting k's randomness (initial weights, actions, resets,
minibatches) comes from its own seed only, so a setting's run does not depend on what else is
in the batch (tests/agents/test_ppo.py trains two identical settings beside a single one).

The trainers run on one torch thread by default (``threads=1``, :mod:`rlviz._threads`): at these
sizes a second thread mostly adds synchronisation, except for a large batch of settings, where
``threads=2`` pays when the machine is yours (measurements in the benchmarks appendix).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
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
    approx_kl,
    clip_fraction,
    clipped_surrogate,
    entropy,
    normalize_advantages,
    value_loss,
)

__all__ = [
    "PPOConfig",
    "Settings",
    "Batch",
    "LossTerms",
    "RowAdam",
    "minibatches",
    "ppo_loss",
    "clip_grad_norm_per_setting",
    "train",
]


# ---------------------------------------------------------------- hyperparameters


@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Hyperparameters of :func:`train` (defaults: the book's fast CartPole setting)."""

    total_steps: int = 25_000  # environment steps per setting
    n_envs: int = 8  # environments per setting
    n_steps: int = 32  # rollout length T
    epochs: int = 10  # passes over each rollout
    minibatches: int = 1  # minibatches per epoch
    lr: float = 1.5e-2  # Adam step size (start value if annealed)
    anneal_lr: bool = True  # linearly to 0 over the budget
    gamma: float = 0.98
    lam: float = 0.8
    clip_eps: float = 0.2  # epsilon of the clipped surrogate
    anneal_clip: bool = False  # epsilon linearly to 0 over the budget
    vf_coef: float = 0.5  # c1
    ent_coef: float = 0.0  # c2
    clip_value: float | None = None  # value clipping half-width, None = off
    norm_adv: bool = True  # normalise advantages per minibatch
    max_grad_norm: float | None = 0.5  # gradient clipping, None = off
    hidden: int = 32  # width of the two hidden layers
    seed: int = 0

    def __post_init__(self):
        for name in SHARED:
            validate.positive(name, getattr(self, name), integer=True)
        for name in ("lr", "clip_eps", "gamma", "lam", "vf_coef", "ent_coef"):
            validate.real(name, getattr(self, name))
        for name in ("lr", "clip_eps"):
            validate.positive(name, getattr(self, name))
        for name in ("gamma", "lam"):
            validate.unit_interval(name, getattr(self, name))
        for name in ("vf_coef", "ent_coef"):
            validate.non_negative(name, getattr(self, name))
        for name in ("clip_value", "max_grad_norm"):  # None = off
            if getattr(self, name) is not None:
                validate.real(name, getattr(self, name))
                validate.positive(name, getattr(self, name))
        for name in ("anneal_lr", "anneal_clip", "norm_adv"):
            validate.boolean(name, getattr(self, name))
        validate.integer("seed", self.seed, minimum=0)
        batch = self.n_envs * self.n_steps
        if batch % self.minibatches or batch // self.minibatches < 2:
            raise ValueError(
                f"minibatches must divide n_envs * n_steps = {batch} into minibatches "
                f"of at least 2 samples, got {self.minibatches}"
            )

    @property
    def updates(self) -> int:
        return max(1, self.total_steps // (self.n_envs * self.n_steps))


SHARED = ("total_steps", "n_envs", "n_steps", "epochs", "minibatches", "hidden")  # one per batch


@dataclass(frozen=True)
class Settings:
    r"""The hyperparameters that may differ between the settings of a batch, one row per setting.

    Tensors are float32 columns ``(n_settings, 1)`` that broadcast against per-sample terms
    ``(n_settings, B)``; flags are bool columns. A switched-off option is stored as its neutral
    value: ``inf`` in ``max_grad_norm`` (the scale factor is then 1); in ``clip_value``, ``inf``
    for the settings that do not clip, and ``None`` when no setting does (the "off" of
    :func:`rlviz.fn.ppo_loss.value_loss`); ``ent_coef`` is ``None`` when every :math:`c_2` is 0
    (then :func:`ppo_loss` leaves the entropy term out). ``gamma`` and ``lam`` are numpy
    ``(n_settings,)`` in the rollout's dtype (float32), for :func:`rlviz.fn.returns.gae`.
    """

    lr: torch.Tensor  # Adam step size at the start
    anneal_lr: torch.Tensor  # bool
    clip_eps: torch.Tensor  # epsilon at the start
    anneal_clip: torch.Tensor  # bool
    vf_coef: torch.Tensor  # c1
    ent_coef: torch.Tensor | None  # c2
    norm_adv: torch.Tensor  # bool
    max_grad_norm: torch.Tensor  # inf = no gradient clipping
    clip_value: torch.Tensor | None
    gamma: np.ndarray
    lam: np.ndarray

    @classmethod
    def from_configs(cls, configs: list[PPOConfig]) -> Settings:
        def column(name, dtype=torch.float32):
            values = [getattr(c, name) for c in configs]
            return torch.tensor(
                [float("inf") if v is None else v for v in values], dtype=dtype
            ).view(-1, 1)

        any_value_clip = any(c.clip_value is not None for c in configs)
        any_entropy = any(c.ent_coef > 0 for c in configs)
        return cls(
            lr=column("lr"),
            anneal_lr=column("anneal_lr", torch.bool),
            clip_eps=column("clip_eps"),
            anneal_clip=column("anneal_clip", torch.bool),
            vf_coef=column("vf_coef"),
            ent_coef=column("ent_coef") if any_entropy else None,
            norm_adv=column("norm_adv", torch.bool),
            max_grad_norm=column("max_grad_norm"),
            clip_value=column("clip_value") if any_value_clip else None,
            gamma=np.array([c.gamma for c in configs], np.float32),
            lam=np.array([c.lam for c in configs], np.float32),
        )

    def schedule(self, remaining: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Step sizes and clip ranges ``(n_settings, 1)`` when a fraction ``remaining`` of the
        budget is left: the annealed ones scaled by it (linearly to 0), the others constant."""
        lr = torch.where(self.anneal_lr, self.lr * remaining, self.lr)
        eps = torch.where(self.anneal_clip, self.clip_eps * remaining, self.clip_eps)
        return lr, eps


# ---------------------------------------------------------------- batches and the loss


@dataclass
class Batch:
    """What an update trains on, setting k's samples in row k: tensors ``(n_settings, B, ...)``."""

    obs: torch.Tensor  # (n_settings, B, 4)
    actions: torch.Tensor  # (n_settings, B) int64
    logp_old: torch.Tensor  # log pi_old(a_t | s_t)
    adv: torch.Tensor  # GAE advantages (standardised in the minibatches of minibatches())
    targets: torch.Tensor  # value targets adv + V_old: the lambda-returns of chapter 9
    v_old: torch.Tensor  # V_old(s_t)

    @classmethod
    def from_rollout(cls, ro, logp_t, adv, v_t, n_settings: int) -> Batch:
        """Regroup the time-major ``(T, N)`` arrays of one rollout by setting (:func:`by_setting`)."""
        return cls(
            *(by_setting(a, n_settings) for a in (ro.obs, ro.actions, logp_t, adv, adv + v_t, v_t))
        )

    @property
    def size(self) -> int:
        return self.actions.shape[1]

    def take(self, idx: torch.Tensor) -> Batch:
        """The samples ``idx`` ``(n_settings, m)`` of each setting (row k takes ``idx[k]``)."""
        rows = torch.arange(len(idx)).view(-1, 1)
        return Batch(*(a[rows, idx] for a in vars(self).values()))

    def standardised(self, norm_adv: torch.Tensor) -> Batch:
        """This batch with its advantages standardised over its samples
        (:func:`rlviz.fn.ppo_loss.normalize_advantages`) in the settings where ``norm_adv``."""
        adv = torch.where(norm_adv, normalize_advantages(self.adv, dim=1), self.adv)
        return dataclasses.replace(self, adv=adv)


def minibatches(
    batch: Batch, n: int, epochs: int, rngs, norm_adv: torch.Tensor
) -> Iterator[tuple[int, Batch]]:
    """``epochs`` passes over ``batch`` in ``n`` minibatches each, as ``(epoch, minibatch)``.

    In every epoch setting k's samples are shuffled by its generator ``rngs[k]`` and cut into
    ``n`` minibatches. Each minibatch's advantages are standardised over the minibatch
    (:meth:`Batch.standardised`) in the settings where ``norm_adv`` ``(n_settings, 1)``, as
    PPO implementations do (Huang et al. 2022). With ``n = 1`` every epoch's minibatch is the
    whole batch in its order, standardised once; no generator is used (shuffling would only
    change the order of the sums).
    """
    if n == 1:
        whole = batch.standardised(norm_adv)
        yield from ((epoch, whole) for epoch in range(epochs))
        return
    for epoch in range(epochs):
        order = torch.from_numpy(np.stack([g.permutation(batch.size) for g in rngs]))
        for idx in order.split(batch.size // n, dim=1):
            yield epoch, batch.take(idx).standardised(norm_adv)


@dataclass
class LossTerms:
    """The loss of one minibatch and its terms, per setting ``(n_settings, 1)``."""

    loss: torch.Tensor  # -L, minimised
    policy: torch.Tensor  # L^CLIP
    value: torch.Tensor  # mean critic loss (c1 multiplies it)
    logits: torch.Tensor  # (n_settings, m, 2) of the policies, for the entropy
    logratio: torch.Tensor  # (n_settings, m) log r_t, for diagnostics


def ppo_loss(agent: ActorCritic, mb: Batch, s: Settings, eps: torch.Tensor) -> LossTerms:
    r""":math:`-L = -L^{CLIP} + c_1 L^V - c_2 H` on one minibatch, each setting its own (module docstring).

    The advantages are taken as they are in ``mb`` (standardised by :func:`minibatches` where
    the setting normalises them); :math:`\ell^{CLIP}` by
    :func:`~rlviz.fn.ppo_loss.clipped_surrogate` with ``eps`` ``(n_settings, 1)``;
    :math:`\ell^V` by :func:`~rlviz.fn.ppo_loss.value_loss` (clipped around ``v_old`` where
    ``s.clip_value`` is finite); :math:`H` by :func:`~rlviz.fn.ppo_loss.entropy`, left out
    when no setting has an entropy bonus (``s.ent_coef`` None: :math:`c_2 = 0` everywhere).
    """
    logits, v = agent(mb.obs)
    logratio = log_prob(logits, mb.actions) - mb.logp_old
    policy = clipped_surrogate(torch.exp(logratio), mb.adv, eps).mean(1, keepdim=True)
    value = value_loss(v, mb.targets, mb.v_old, clip=s.clip_value).mean(1, keepdim=True)
    loss = -policy + s.vf_coef * value
    if s.ent_coef is not None:
        loss = loss - s.ent_coef * entropy(logits).mean(1, keepdim=True)
    return LossTerms(loss, policy, value, logits, logratio)


def check_finite(terms: LossTerms, update: int, epoch: int) -> None:
    """Raise ``FloatingPointError`` naming the update, the settings and their terms if the loss
    is not finite."""
    if torch.isfinite(terms.loss).all():
        return
    rows = torch.nonzero(~torch.isfinite(terms.loss.view(-1))).view(-1)
    values = ", ".join(
        f"{name} {x[rows].tolist()}"
        for name, x in (
            ("policy_loss", terms.policy[:, 0]),
            ("value_loss", terms.value[:, 0]),
            ("entropy", entropy(terms.logits).mean(1)),
            ("approx_kl", approx_kl(terms.logratio).mean(1)),
        )
    )
    raise FloatingPointError(
        f"PPO update {update} (epoch {epoch}): loss is not finite for "
        f"setting(s) {rows.tolist()} ({values}); training stopped"
    )


# ---------------------------------------------------------------- the optimiser


def clip_grad_norm_per_setting(grad: torch.Tensor, max_norm: torch.Tensor) -> torch.Tensor:
    r"""Scale each setting's gradient to norm at most ``max_norm`` (global gradient clipping,
    Huang et al. 2022), the norm taken over the setting's actor row and critic row together:

    .. math:: g_k \leftarrow g_k \min\Bigl(1, \frac{c_k}{\lVert g_k \rVert + 10^{-6}}\Bigr).

    ``grad`` ``(2 n_settings, P)`` in the layout of ``ActorCritic.flat``; ``max_norm``
    ``(n_settings, 1)``, ``inf`` for no clipping.
    """
    rows = grad.view(2, len(max_norm), -1)  # (actor or critic, setting, P)
    norm = rows.square().sum((0, 2), keepdim=True).sqrt()
    return (rows * torch.clamp(max_norm / (norm + 1e-6), max=1.0)).view_as(grad)


class RowAdam:
    r"""Adam (Kingma and Ba 2015) on the rows of one parameter tensor, each row its own step size.

    .. math::
        m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad
        v \leftarrow \beta_2 v + (1 - \beta_2) g^2, \quad
        \theta \leftarrow \theta - \alpha_{\text{row}}\,
        \frac{m / (1 - \beta_1^t)}{\sqrt{v / (1 - \beta_2^t)} + \varepsilon},

    with :math:`\varepsilon = 10^{-5}` (CleanRL's PPO). Each row's update uses that row's
    gradient and moments only. ``params`` is updated in place.
    """

    def __init__(self, params: torch.Tensor, *, betas=(0.9, 0.999), eps: float = 1e-5):
        self.params, self.betas, self.eps = params, betas, eps
        self.m, self.v = torch.zeros_like(params), torch.zeros_like(params)  # the moments
        self.t = 0

    def step(self, grad: torch.Tensor, lr: torch.Tensor) -> None:
        """One step; ``grad`` shaped like ``params``, ``lr`` ``(rows, 1)`` one step size per row."""
        beta1, beta2 = self.betas
        with torch.no_grad():
            self.t += 1
            self.m.lerp_(grad, 1 - beta1)
            self.v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (self.v / (1 - beta2**self.t)).sqrt_().add_(self.eps)
            self.params.addcdiv_(self.m * (lr / (1 - beta1**self.t)), denom, value=-1.0)


# ---------------------------------------------------------------- the trainer

LOGS = (
    "steps",
    "return",
    "approx_kl",
    "clip_fraction",
    "max_ratio",
    "policy_loss",
    "value_loss",
    "entropy",
    "lr",
    "epsilon",
)


def _configs(config) -> list[PPOConfig]:
    """One config or a non-empty list of configs that share their sizes, as a list."""
    configs = [config] if isinstance(config, PPOConfig) else config
    if (
        not isinstance(configs, (list, tuple))
        or not configs
        or not all(isinstance(c, PPOConfig) for c in configs)
    ):
        raise ValueError(
            f"config must be a PPOConfig or a non-empty list of them, got {type(config).__name__}"
        )
    for name in SHARED:
        values = {getattr(c, name) for c in configs}
        if len(values) > 1:
            raise ValueError(f"configs trained together must share {name}, got {sorted(values)}")
    return list(configs)


def update_stats(agent: ActorCritic, batch: Batch, eps: torch.Tensor, last: LossTerms) -> dict:
    """The logs of one update: the updated policy against the rollout's on the whole batch
    (k3 KL estimate, fraction of samples with :math:`|r_t - 1| > \\epsilon`, largest ratio)
    and the last minibatch's loss terms; each a list over settings."""
    with torch.no_grad():
        logits, _ = agent(batch.obs)
        logratio = log_prob(logits, batch.actions) - batch.logp_old
        ratio = torch.exp(logratio)
        stats = torch.stack(
            [
                approx_kl(logratio).mean(1),
                clip_fraction(ratio, eps).mean(1),
                ratio.amax(1),
                last.policy[:, 0],
                last.value[:, 0],
                entropy(last.logits).mean(1),
            ]
        )
    keys = ("approx_kl", "clip_fraction", "max_ratio", "policy_loss", "value_loss", "entropy")
    return dict(zip(keys, stats.tolist()))


@with_threads
def train(config, *, callback=None, progress: bool = False) -> TrainResult:
    r"""Train PPO on CartPole-v1 for one :class:`PPOConfig` or a list of them sharing their sizes.

    Each update: (1) **rollout**: T steps of n environments per setting with the current
    policy; (2) **advantages**: :func:`rlviz.fn.returns.gae` with each setting's
    :math:`(\gamma,\lambda)`, value targets :math:`\hat A_t + \hat V(s_t)` (the
    :math:`\lambda`-returns of chapter 9); (3) **update**: ``epochs`` passes of minibatch Adam
    steps on :math:`-L` (:func:`ppo_loss`), with the per-setting details of :class:`Settings`.

    Returns a :class:`rlviz.agents.actor_critic.TrainResult` whose logs ``(updates,
    n_settings)`` hold ``return`` (mean over a setting's environments of their last finished
    episode), ``approx_kl``, ``clip_fraction`` and ``max_ratio`` of the *updated* policy against
    the rollout's on the whole batch, the last minibatch's ``policy_loss``, ``value_loss`` and
    ``entropy``, and ``lr`` and ``epsilon``; ``last_batch`` is the last update's :class:`Batch`
    (as a dict) with its :math:`\theta_{\text{old}}` (``flat_before``) and ``epsilon``.

    ``callback(update, steps, agent)`` runs after each update (its time is not counted in
    ``train_seconds``). ``threads`` (keyword, default 1) sets torch's thread count for the run.
    Raises ``ValueError`` for bad arguments and ``FloatingPointError`` naming the update, the
    settings and the loss terms if a loss stops being finite.
    """
    configs = _configs(config)
    check_callback(callback)
    cfg, s, seeds = configs[0], Settings.from_configs(configs), [c.seed for c in configs]
    agent, runner = ActorCritic.init(seeds, cfg.hidden), Runner(seeds, cfg.n_envs)
    adam = RowAdam(agent.flat)
    shuffle_rngs = [np.random.default_rng([seed, 2]) for seed in seeds]
    gamma_n, lam_n = np.repeat(s.gamma, cfg.n_envs), np.repeat(s.lam, cfg.n_envs)  # per column
    result = TrainResult(agent, configs, {key: [] for key in LOGS})
    excluded, start = 0.0, time.perf_counter()
    for update in progress_range(cfg.updates, progress, f"PPO x{len(configs)}"):
        lr, eps = s.schedule(1.0 - update / cfg.updates)
        row_lr = agent.per_row(lr)  # one step size per row of flat: actors, then critics
        flat_before = agent.flat.clone()  # theta_old (kept for the analysis of chapter 12)

        # ---- rollout and advantages: n_steps steps of every setting's n_envs environments;
        #      GAE (chapter 9) with each column's (gamma, lambda), truncations bootstrapped
        ro, logp_t, v_t, adv = rollout_advantages(agent, runner, cfg.n_steps, gamma_n, lam_n)
        batch = Batch.from_rollout(ro, logp_t, adv, v_t, len(configs))

        # ---- update: epochs x minibatches of Adam steps on -L, each setting on its own loss
        for epoch, mb in minibatches(batch, cfg.minibatches, cfg.epochs, shuffle_rngs, s.norm_adv):
            terms = ppo_loss(agent, mb, s, eps)
            check_finite(terms, update + 1, epoch + 1)
            grad = clip_grad_norm_per_setting(agent.gradient(terms.loss.sum()), s.max_grad_norm)
            adam.step(grad, row_lr)

        # ---- logs (and the callback, whose time is not counted)
        result.last_batch = dict(vars(batch), flat_before=flat_before, epsilon=eps)
        steps = (update + 1) * batch.size
        row = update_stats(agent, batch, eps, terms)
        row.update(
            steps=steps,
            lr=lr[:, 0].tolist(),
            epsilon=eps[:, 0].tolist(),
            **{"return": runner.mean_last_return()},
        )
        excluded += result.record(row, callback, update + 1, steps)
    result.train_seconds = time.perf_counter() - start - excluded
    return result
