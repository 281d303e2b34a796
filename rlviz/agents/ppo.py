r"""PPO on CartPole, for one setting or a grid of K settings trained as one computation.

Chapter 13 (notes section 13; Schulman et al. 2017; the implementation details of Huang et al.
2022). The trainer :func:`train` reads top to bottom: rollout, advantages, update. It is
built from the book's own functions: the batched CartPole of :mod:`rlviz.agents.cartpole`, GAE
(:func:`gae_per_column`, the recursion of :func:`rlviz.fn.returns.gae` with one
:math:`(\gamma, \lambda)` per column) and the loss terms of :mod:`rlviz.fn.ppo_loss`:

.. math::
    L(\theta, \phi) = \hat E_t\bigl[\ell^{CLIP}_t(\theta) - c_1 \ell^V_t(\phi) + c_2 H(\pi_\theta(\cdot\mid s_t))\bigr],

maximised by Adam on :math:`-L`.

Settings as a batch dimension
-----------------------------
:func:`train` takes one :class:`PPOConfig` or a list of K of them that may differ in
:math:`\gamma, \lambda, \epsilon`, the seed, the loss coefficients and the on/off details
(advantage normalisation, value clipping, gradient clipping, annealing); they share the
sizes (environments, steps, epochs, minibatches, width, budget). All K agents live in one
tensor ``flat`` of shape ``(2K, P)``: row k is the actor of setting k, row K + k its critic,
each an MLP 4-H-H-2 (the critic reads the first output) whose weights are views into the row.
One ``torch.baddbmm`` per layer applies all 2K networks; one :class:`BatchedCartPole` runs the
K * n environments; the losses are summed over settings, so each setting gets its own gradient;
gradient clipping and Adam act per row. Setting k's randomness (initial weights, actions,
resets, minibatches) comes from its own seed only, so a setting's run does not depend on what
else is in the batch (tests/test_ppo.py trains two identical settings beside a single one).

Why one thread: at these sizes (a few hundred samples, width 32) each torch call costs
microseconds of overhead and a second thread only adds synchronisation. Measured on the
book's 2-core machine, idle: one setting (K = 1) 21.5-22.6 ms per update with one thread,
22.6-24.9 ms with two; so the trainers run single-threaded by default (``threads=1``), which
also behaves well when other jobs share the machine. For a large batch of settings a second
thread does pay (K = 27: 149 ms per update with one thread, 100 ms with two): pass
``threads=2`` to :func:`train` when the machine is yours. (``torch.tanh`` is about 3x slower
than ``torch.sigmoid`` in a forward pass on this CPU build, but the rewrite
:math:`\tanh x = 2\sigma(2x) - 1` costs more than it saves once its backward pass is
counted: 340 vs 300 microseconds for forward + backward on (2, 256, 64), measured; the
rollout's forward passes run in numpy.)
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from rlviz import _validate as V
from rlviz.fn.returns import linear_scan, next_values
from rlviz.agents.cartpole import BatchedCartPole
from rlviz.fn.ppo_loss import approx_kl, clip_fraction, clipped_surrogate, entropy, value_loss

__all__ = ["PPOConfig", "PPOResult", "ActorCritic", "gae_per_column", "train", "evaluate",
           "Rollout", "collect"]

OBS, ACTIONS = 4, 2


# ---------------------------------------------------------------- hyperparameters

@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Hyperparameters of :func:`train` (defaults: the book's fast CartPole setting)."""

    total_steps: int = 25_000     # environment steps per setting
    n_envs: int = 8               # environments per setting
    n_steps: int = 32             # rollout length T
    epochs: int = 10              # passes over each rollout
    minibatches: int = 1          # minibatches per epoch
    lr: float = 1.5e-2            # Adam step size (start value if annealed)
    anneal_lr: bool = True        # linearly to 0 over the budget
    gamma: float = 0.98
    lam: float = 0.8
    clip_eps: float = 0.2         # epsilon of the clipped surrogate
    anneal_clip: bool = False     # epsilon linearly to 0 over the budget
    vf_coef: float = 0.5          # c1
    ent_coef: float = 0.0         # c2
    clip_value: float | None = None  # value clipping half-width, None = off
    norm_adv: bool = True         # normalise advantages per minibatch
    max_grad_norm: float | None = 0.5  # gradient clipping, None = off
    hidden: int = 32              # width of the two hidden layers
    seed: int = 0

    def __post_init__(self):
        for name in ("total_steps", "n_envs", "n_steps", "epochs", "minibatches", "hidden"):
            V.positive(name, getattr(self, name), integer=True)
        V.positive("lr", self.lr)
        V.positive("clip_eps", self.clip_eps)
        V.unit_interval("gamma", self.gamma)
        V.unit_interval("lam", self.lam)
        for name in ("vf_coef", "ent_coef"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("clip_value", "max_grad_norm"):
            if getattr(self, name) is not None:
                V.positive(name, getattr(self, name))
        if (self.n_envs * self.n_steps) % self.minibatches:
            raise ValueError(f"minibatches must divide n_envs * n_steps = "
                             f"{self.n_envs * self.n_steps}, got {self.minibatches}")

    @property
    def updates(self) -> int:
        return max(1, self.total_steps // (self.n_envs * self.n_steps))


_SHARED = ("total_steps", "n_envs", "n_steps", "epochs", "minibatches", "hidden")


# ---------------------------------------------------------------- the networks

def _layout(hidden: int) -> list[tuple[int, tuple[int, ...]]]:
    """(offset, shape) of W1, b1, W2, b2, W3, b3 inside one row of ``flat``."""
    shapes = [(OBS, hidden), (1, hidden), (hidden, hidden), (1, hidden), (hidden, ACTIONS),
              (1, ACTIONS)]
    out, off = [], 0
    for s in shapes:
        out.append((off, s))
        off += math.prod(s)
    return out


class ActorCritic:
    r"""K actor-critic pairs in one tensor ``flat`` ``(2K, P)`` (rows: K actors, then K critics).

    Each row is an MLP :math:`4 \to H \to H \to 2` with tanh hidden units; the actor's outputs
    are the logits of (left, right), the critic's first output is :math:`V_\phi(s)`.
    Initialised as in Huang et al. 2022 (orthogonal, gains :math:`\sqrt2` for hidden layers,
    0.01 for the logits, 1 for the value; zero biases). ``params`` are the six weight tensors
    ``(2K, ...)`` as views of ``flat`` that autograd treats as leaves: gradients come per
    tensor (cheaper to differentiate than slices of one leaf), optimisers update ``flat`` in
    place.
    """

    def __init__(self, flat: torch.Tensor, hidden: int):
        self.flat, self.hidden = flat.detach(), hidden
        self.params = [w.requires_grad_() for w in self.weights()]
        self._np = None

    @property
    def K(self) -> int:
        return self.flat.shape[0] // 2

    @classmethod
    def init(cls, seeds, hidden: int = 64) -> "ActorCritic":
        K = len(seeds)
        lay = _layout(hidden)
        P = lay[-1][0] + math.prod(lay[-1][1])
        flat = torch.zeros(2 * K, P)
        for k, seed in enumerate(seeds):
            g = torch.Generator().manual_seed(int(seed))
            for row, out_gain in ((k, 0.01), (K + k, 1.0)):
                for i, (off, shape) in enumerate(lay[0::2]):
                    w = torch.empty(shape[1], shape[0])  # (out, in) as torch initialises
                    torch.nn.init.orthogonal_(w, gain=math.sqrt(2) if i < 2 else out_gain,
                                              generator=g)
                    flat[row, off:off + math.prod(shape)] = w.T.reshape(-1)
        return cls(flat, hidden)

    def weights(self, flat=None):
        """The six weight tensors as views ``(2K, ...)`` of ``flat`` (torch or numpy)."""
        flat = self.flat if flat is None else flat
        return [flat[:, off:off + math.prod(s)].reshape(flat.shape[0], *s)
                for off, s in _layout(self.hidden)]

    def __call__(self, obs: torch.Tensor):
        """``obs`` ``(K, B, 4)`` -> logits ``(K, B, 2)`` and values ``(K, B)``."""
        W1, b1, W2, b2, W3, b3 = self.params
        x = torch.cat([obs, obs])  # actors and critics see the same states
        h = torch.tanh(torch.baddbmm(b1, x, W1))
        h = torch.tanh(torch.baddbmm(b2, h, W2))
        out = torch.baddbmm(b3, h, W3)
        return out[:self.K], out[self.K:, :, 0]

    def prob_right_numpy(self, obs: np.ndarray) -> np.ndarray:
        """:math:`\\pi(\\text{right} \\mid s)` in numpy for ``obs`` ``(K, n, 4)``: the rollout's policy.

        Reads the weights through numpy views of ``flat`` (no copy, always current); the
        same function as :meth:`__call__` in float32, cheaper per step than torch at these sizes.
        """
        if self._np is None:  # numpy views of the actor rows follow in-place updates of flat
            self._np = [w[:self.K] for w in self.weights(self.flat.numpy())]
        W1, b1, W2, b2, W3, b3 = self._np
        h = np.tanh(obs @ W1 + b1)
        h = np.tanh(h @ W2 + b2)
        out = h @ W3 + b3
        return 1.0 / (1.0 + np.exp(out[..., 0] - out[..., 1]))

    def policy(self, k: int = 0):
        """Setting k's policy as a function obs ``(n, 4)`` -> probabilities ``(n, 2)`` (for :func:`evaluate`)."""
        def probs(obs):
            p = self.prob_right_numpy(np.broadcast_to(np.asarray(obs, np.float32)[None],
                                                      (self.K, len(obs), OBS)))[k]
            return np.stack([1 - p, p], axis=-1)
        return probs


# ---------------------------------------------------------------- advantages

def gae_per_column(r_t, v_t, *, v_T, terminated_t, truncated_t, gamma_n, lam_n,
                   v_final_t=None) -> np.ndarray:
    r"""GAE with one :math:`(\gamma_n, \lambda_n)` per column n (a grid of settings in one rollout).

    .. math::
        \delta_{t,n} = r_{t,n} + \gamma_n \hat v^{\text{next}}_{t,n} - \hat V(s_{t,n}), \qquad
        \hat A_{t,n} = \delta_{t,n} + \gamma_n\lambda_n\,\text{continue}_{t,n}\,\hat A_{t+1,n},

    the recursion of :func:`rlviz.fn.returns.gae` (same next values
    :func:`rlviz.fn.returns.next_values`, same scan :func:`rlviz.fn.returns.linear_scan`), with
    the coefficients broadcast along columns; equal to :func:`~rlviz.fn.returns.gae` when all
    columns share them (tests/test_ppo.py). Shapes: ``(T, N)`` rollout, ``gamma_n``/``lam_n``
    ``(N,)`` in [0, 1].
    """
    r = np.asarray(r_t)
    if r.ndim != 2:
        raise ValueError(f"r_t must be time-major (T, N), got shape {r.shape}")
    coef = {}
    for name, c in (("gamma_n", gamma_n), ("lam_n", lam_n)):
        c = V.array(name, c, shape=(r.shape[1],), dtype=r.dtype)
        if np.any((c < 0) | (c > 1)):
            raise ValueError(f"{name} must be in [0, 1], got {c[(c < 0) | (c > 1)][0]}")
        coef[name] = c
    nxt = next_values(v_t, v_T=v_T, terminated_t=terminated_t, truncated_t=truncated_t,
                      v_final_t=v_final_t)
    delta = r + coef["gamma_n"] * nxt - np.asarray(v_t)
    cont = ~(terminated_t | truncated_t)
    cont[-1] = False
    return linear_scan(delta.astype(r.dtype), (coef["gamma_n"] * coef["lam_n"] * cont).astype(r.dtype))


# ---------------------------------------------------------------- rollouts

@dataclass
class Rollout:
    """One rollout of T steps of K * n environments (time-major; columns grouped by setting)."""

    obs: np.ndarray         # (T, K*n, 4) observations acted on
    actions: np.ndarray     # (T, K*n) int64
    rewards: np.ndarray     # (T, K*n) float32
    terminated: np.ndarray  # (T, K*n) bool
    truncated: np.ndarray   # (T, K*n) bool
    final_obs: np.ndarray   # (T, K*n, 4) observation reached by each step, before any reset
    last_obs: np.ndarray    # (K*n, 4) observation after the last step


class _Runner:
    """The environments between rollouts: K groups of n CartPoles, setting k's seeded by seed k."""

    def __init__(self, seeds, n_envs: int):
        self.K, self.n = len(seeds), n_envs
        self.env = BatchedCartPole(self.K * n_envs, seed=[int(s) + 10_007 for s in seeds])
        self.obs = self.env.reset()
        self.action_rngs = [np.random.default_rng([int(s), 1]) for s in seeds]
        self.ep_return = np.zeros(self.K * n_envs)
        self.last_return = np.full(self.K * n_envs, np.nan)  # last finished episode per env

    def mean_last_return(self) -> np.ndarray:
        """Per setting, the mean over its environments of their last finished episode's return."""
        r = self.last_return.reshape(self.K, self.n)
        seen = ~np.isnan(r)
        return np.where(seen.any(1), np.nansum(r, 1) / np.maximum(seen.sum(1), 1), np.nan)


def collect(agent: ActorCritic, runner: _Runner, T: int) -> Rollout:
    """Run the current policy for T steps in every environment (same-step autoreset)."""
    K, n = runner.K, runner.n
    u = np.stack([g.random((T, n), dtype=np.float32) for g in runner.action_rngs], axis=1)
    N = K * n
    ro = Rollout(obs=np.empty((T, N, OBS), np.float32), actions=np.empty((T, N), np.int64),
                 rewards=np.empty((T, N), np.float32), terminated=np.empty((T, N), bool),
                 truncated=np.empty((T, N), bool), final_obs=np.empty((T, N, OBS), np.float32),
                 last_obs=runner.obs)
    obs = runner.obs
    for t in range(T):
        p_right = agent.prob_right_numpy(obs.reshape(K, n, OBS)).reshape(N)
        a = (u[t].reshape(N) < p_right).astype(np.int64)
        ro.obs[t], ro.actions[t] = obs, a
        obs, r, term, trunc, final = runner.env.step(a)
        ro.rewards[t], ro.terminated[t], ro.truncated[t], ro.final_obs[t] = r, term, trunc, final
        runner.ep_return += r
        done = term | trunc
        if done.any():
            runner.last_return[done] = runner.ep_return[done]
            runner.ep_return[done] = 0.0
    runner.obs = ro.last_obs = obs
    return ro


def rollout_values(agent: ActorCritic, ro: Rollout):
    r"""What the rollout's policy and critic say about it, in one forward pass (no gradient).

    Returns float32 numpy arrays: ``logp_t`` ``(T, N)`` :math:`\log\pi_{\text{old}}(a_t\mid s_t)`;
    ``v_t`` ``(T, N)`` :math:`\hat V(s_t)`; ``v_T`` ``(N,)`` the value of ``last_obs``; and
    ``v_final_t`` ``(T, N)`` the value of each step's final observation (before any reset), the
    bootstrap of a truncated episode (``v_final_t`` of :func:`rlviz.fn.returns.gae`).
    """
    T, N = ro.actions.shape
    K = agent.K
    n = N // K
    every = np.concatenate([ro.obs, ro.last_obs[None], ro.final_obs])  # (2T+1, K*n, 4)
    x = torch.from_numpy(every).view(2 * T + 1, K, n, OBS).transpose(0, 1)
    with torch.no_grad():
        logits, values = agent(x.reshape(K, (2 * T + 1) * n, OBS))
        logp = torch.log_softmax(logits, -1).view(K, 2 * T + 1, n, ACTIONS)[:, :T]
    to_time_major = lambda a: a.transpose(0, 1).reshape(a.shape[1], N, *a.shape[3:]).numpy()  # noqa: E731
    values = to_time_major(values.view(K, 2 * T + 1, n))
    logp = to_time_major(logp)
    logp_t = np.take_along_axis(logp, ro.actions[..., None], -1)[..., 0]
    return logp_t, values[:T], values[T], values[T + 1:]


# ---------------------------------------------------------------- the trainer

@dataclass
class PPOResult:
    r"""What :func:`train` returns: the agents, the configs and per-update logs ``(updates, K)``.

    ``approx_kl``, ``clip_fraction`` and ``max_ratio`` describe the *updated* policy against
    the rollout's on the whole batch (k3 KL estimate, fraction of samples with
    :math:`|r_t - 1| > \epsilon`, largest :math:`r_t`); ``last_batch`` holds the last
    update's batch (by setting) and its :math:`\theta_{\text{old}}` (``flat_before``).
    """

    agent: ActorCritic
    configs: list
    logs: dict = field(default_factory=dict)
    train_seconds: float = 0.0  # wall time of training, callbacks excluded
    last_batch: dict = field(default_factory=dict)

    def log(self, key: str) -> np.ndarray:
        return np.asarray(self.logs[key])


def _per_setting(configs, name, fn=float) -> torch.Tensor:
    return torch.tensor([fn(getattr(c, name)) for c in configs], dtype=torch.float32)


def _record(logs: dict, row: dict, callback, update: int, steps: int, agent) -> float:
    """Append one update's values to ``logs`` and run the callback; returns the callback's seconds."""
    for key, val in row.items():
        logs[key].append(val)
    if callback is None:
        return 0.0
    t0 = time.perf_counter()
    callback(update, steps, agent)
    return time.perf_counter() - t0


def _raise_not_finite(update: int, epoch: int, **terms) -> None:
    """Name the first non-finite quantity (and the settings) and stop training."""
    for name, x in terms.items():
        if not torch.isfinite(x).all():
            bad = torch.nonzero(~torch.isfinite(x)).flatten().tolist()
            raise FloatingPointError(
                f"PPO update {update} (epoch {epoch}): {name} is not finite for setting(s) {bad} "
                f"(values {x.detach().tolist()}); training stopped")
    raise FloatingPointError(f"PPO update {update} (epoch {epoch}): loss is not finite")


def single_threaded(fn):
    """Run ``fn`` with ``threads`` torch threads (keyword, default 1; module docstring), then restore."""
    @functools.wraps(fn)
    def wrapper(*args, threads: int = 1, **kwargs):
        V.positive("threads", threads, integer=True)
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return wrapper


@single_threaded
def train(config, *, callback=None, progress: bool = False) -> PPOResult:
    r"""Train PPO on CartPole-v1 for one :class:`PPOConfig` or a list of K sharing their sizes.

    Each update: (1) **rollout**: T steps of n environments per setting with the current
    policy; (2) **advantages**: :func:`gae_per_column` with per-setting
    :math:`(\gamma,\lambda)`, value targets :math:`\hat A_t + \hat V(s_t)` (the
    :math:`\lambda`-returns of chapter 9); (3) **update**: ``epochs`` passes of minibatch Adam
    steps on :math:`-L` (module docstring), with the per-setting details switched by the
    configs; approximate KL (:func:`rlviz.fn.ppo_loss.approx_kl`) and clip fraction logged.

    ``callback(update, steps, agent)`` runs after each update (its time is not counted in
    ``train_seconds``). ``threads`` (keyword, default 1) sets torch's thread count for the
    run (module docstring). Raises ``FloatingPointError`` naming the update, the quantity and the
    setting if a loss stops being finite.
    """
    configs = [config] if isinstance(config, PPOConfig) else list(config)
    if not configs or not all(isinstance(c, PPOConfig) for c in configs):
        raise ValueError("config must be a PPOConfig or a non-empty list of them")
    for name in _SHARED:
        values = {getattr(c, name) for c in configs}
        if len(values) > 1:
            raise ValueError(f"configs trained together must share {name}, got {sorted(values)}")
    cfg0, K = configs[0], len(configs)
    n, T, U = cfg0.n_envs, cfg0.n_steps, cfg0.updates
    B = n * T
    mb = B // cfg0.minibatches
    seeds = [c.seed for c in configs]
    col = lambda name: np.repeat([float(getattr(c, name)) for c in configs], n)  # noqa: E731
    gamma_n, lam_n = col("gamma").astype(np.float32), col("lam").astype(np.float32)
    eps0 = _per_setting(configs, "clip_eps").view(K, 1)
    vf_c, ent_c = _per_setting(configs, "vf_coef"), _per_setting(configs, "ent_coef")
    use_ent = bool((ent_c > 0).any())
    v_clip = torch.tensor([c.clip_value or math.inf for c in configs]).view(K, 1)
    use_v_clip = any(c.clip_value is not None for c in configs)
    norm_adv = _per_setting(configs, "norm_adv", bool).view(K, 1).bool()
    any_norm, all_norm = bool(norm_adv.any()), bool(norm_adv.all())
    max_norm = torch.tensor([c.max_grad_norm or math.inf for c in configs])
    clip_grads = any(c.max_grad_norm is not None for c in configs)
    lr0 = torch.tensor([c.lr for c in configs])
    anneal_lr = _per_setting(configs, "anneal_lr", bool).bool()
    anneal_clip = _per_setting(configs, "anneal_clip", bool).bool().view(K, 1)

    agent = ActorCritic.init(seeds, cfg0.hidden)
    runner = _Runner(seeds, n)
    mb_rngs = [np.random.default_rng([int(s), 2]) for s in seeds]
    adam_m, adam_v = torch.zeros_like(agent.flat), torch.zeros_like(agent.flat)  # Adam's moments
    beta1, beta2, adam_eps, adam_t = 0.9, 0.999, 1e-5, 0
    logs = {k: [] for k in ("steps", "return", "approx_kl", "clip_fraction", "max_ratio", "policy_loss",
                            "value_loss", "entropy", "lr", "epsilon")}
    result = PPOResult(agent, configs, logs)
    rows = torch.arange(K).view(K, 1)
    excluded = 0.0
    start = time.perf_counter()
    bar = range(U)
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(bar, desc=f"PPO x{K}", unit="update")
    for u in bar:
        frac = 1.0 - u / U
        lr = torch.where(anneal_lr, lr0 * frac, lr0).repeat(2).view(2 * K, 1)
        eps = torch.where(anneal_clip, eps0 * frac, eps0)
        eps_arg = float(eps[0, 0]) if bool((eps == eps[0, 0]).all()) else eps  # a number is cheaper

        # ---- rollout: T steps of the K * n environments
        flat_before = agent.flat.clone()  # theta_old (kept for the analysis of chapter 12)
        ro = collect(agent, runner, T)

        # ---- advantages: per-setting GAE, bootstrapping truncated episodes from V(final obs)
        logp_t, v_t, v_T, v_final = rollout_values(agent, ro)
        adv = gae_per_column(ro.rewards, v_t, v_T=v_T, terminated_t=ro.terminated,
                             truncated_t=ro.truncated, v_final_t=v_final, gamma_n=gamma_n, lam_n=lam_n)
        targets = adv + v_t  # the lambda-returns (chapter 9)

        def by_setting(a):  # (T, K*n, ...) -> (K, T*n, ...): setting k's samples in row k
            a = torch.from_numpy(np.ascontiguousarray(a))
            return a.view(T, K, n, *a.shape[2:]).transpose(0, 1).reshape(K, B, *a.shape[2:])
        obs_b, act_b, logp_old_b = by_setting(ro.obs), by_setting(ro.actions), by_setting(logp_t)
        adv_b, tgt_b, vold_b = by_setting(adv), by_setting(targets), by_setting(v_t)

        # ---- update: epochs x minibatches of Adam steps on -L, each setting its own loss
        for epoch in range(cfg0.epochs):
            order = torch.from_numpy(np.stack([g.permutation(B) for g in mb_rngs])) \
                if cfg0.minibatches > 1 else None
            for i in range(cfg0.minibatches):
                idx = None if order is None else order[:, i * mb:(i + 1) * mb]
                take = (lambda a: a) if idx is None else (lambda a: a[rows, idx])  # noqa: E731
                logits, v = agent(take(obs_b))
                logp = torch.log_softmax(logits, -1).gather(-1, take(act_b).unsqueeze(-1)).squeeze(-1)
                logratio = logp - take(logp_old_b)
                ratio = torch.exp(logratio)
                a = take(adv_b)
                if any_norm:
                    a_norm = (a - a.mean(1, keepdim=True)) / (a.std(1, keepdim=True) + 1e-8)
                    a = a_norm if all_norm else torch.where(norm_adv, a_norm, a)
                pg = clipped_surrogate(ratio, a, eps_arg).mean(1)
                vl = (value_loss(v, take(tgt_b), take(vold_b), clip=v_clip) if use_v_clip
                      else value_loss(v, take(tgt_b))).mean(1)
                loss = -pg + vf_c * vl  # (K,)
                if use_ent:
                    loss = loss - ent_c * entropy(logits).mean(1)
                if not torch.isfinite(loss).all():
                    _raise_not_finite(u + 1, epoch + 1, loss=loss, policy_loss=pg, value_loss=vl,
                                      approx_kl=approx_kl(logratio).mean(1))
                grads = torch.autograd.grad(loss.sum(), agent.params)
                grad = torch.cat([g.reshape(2 * K, -1) for g in grads], 1)  # (2K, P) like flat
                with torch.no_grad():
                    # gradient clipping per setting: the norm over its actor and critic rows
                    if clip_grads:
                        norm = grad.view(2, K, -1).square().sum((0, 2)).sqrt()
                        grad *= torch.clamp(max_norm / (norm + 1e-6), max=1.0).repeat(2).view(2 * K, 1)
                    # Adam (Kingma and Ba 2015), one step size per row
                    adam_t += 1
                    adam_m.lerp_(grad, 1 - beta1)
                    adam_v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                    denom = (adam_v / (1 - beta2 ** adam_t)).sqrt_().add_(adam_eps)
                    agent.flat.addcdiv_(adam_m * (lr / (1 - beta1 ** adam_t)), denom, value=-1.0)
        # logged: KL and ratio spread of the updated policy on the whole batch (chapter 12 errata),
        # losses and entropy of the last minibatch
        with torch.no_grad():
            logits_new, _ = agent(obs_b)
            logratio_new = torch.log_softmax(logits_new, -1).gather(-1, act_b.unsqueeze(-1))[..., 0] \
                - logp_old_b
            ratio_new = torch.exp(logratio_new)
            stats = torch.stack([approx_kl(logratio_new).mean(1), clip_fraction(ratio_new, eps).mean(1),
                                 ratio_new.amax(1), pg, vl, entropy(logits).mean(1)])
        kl, cf, rmax, pg_, vl_, ent_ = stats.tolist()
        result.last_batch = dict(obs=obs_b, actions=act_b, logp_old=logp_old_b, adv=adv_b,
                                 targets=tgt_b, v_old=vold_b, flat_before=flat_before, epsilon=eps)
        steps = (u + 1) * B
        excluded += _record(logs, {
            "steps": steps, "return": runner.mean_last_return(), "approx_kl": kl,
            "clip_fraction": cf, "max_ratio": rmax, "policy_loss": pg_, "value_loss": vl_,
            "entropy": ent_, "lr": lr[:K, 0].tolist(), "epsilon": eps[:, 0].tolist()},
            callback, u + 1, steps, agent)
    result.train_seconds = time.perf_counter() - start - excluded
    return result


# ---------------------------------------------------------------- evaluation on gymnasium

def evaluate(policy, episodes: int = 100, seed: int = 0, *, deterministic: bool = True,
             max_episode_steps: int = 500) -> np.ndarray:
    """Returns of ``episodes`` episodes of gymnasium's own ``CartPole-v1`` under ``policy``.

    ``policy``: a function obs ``(n, 4)`` float32 -> action probabilities ``(n, 2)``; actions
    are greedy (``deterministic``) or sampled (seeded by ``seed``). Episode i starts from
    ``env.reset(seed=seed + i)``. Up to 20 environments run side by side, one policy call per
    step for all of them. Result: float array ``(episodes,)``.
    """
    import gymnasium as gym

    episodes = V.positive("episodes", episodes, integer=True)
    rng = np.random.default_rng([seed, 3])
    width = min(episodes, 20)
    envs = [gym.make("CartPole-v1", max_episode_steps=max_episode_steps) for _ in range(width)]
    returns = np.zeros(episodes)
    for first in range(0, episodes, width):
        ids = list(range(first, min(first + width, episodes)))
        obs = np.stack([envs[j].reset(seed=seed + i)[0] for j, i in enumerate(ids)])
        alive = np.ones(len(ids), dtype=bool)
        while alive.any():
            live = np.flatnonzero(alive)
            p = np.asarray(policy(obs[live]))
            acts = p.argmax(-1) if deterministic else (rng.random(len(live)) < p[:, 1]).astype(int)
            for j, a in zip(live, acts):
                o, r, term, trunc, _ = envs[j].step(int(a))
                obs[j] = o
                returns[ids[j]] += r
                alive[j] = not (term or trunc)
    for e in envs:
        e.close()
    return returns
