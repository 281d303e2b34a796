r"""PPO on CartPole, for one setting or a grid of K settings trained as one computation.

Chapter 13 (notes section 13; Schulman et al. 2017; the implementation details of Huang et al.
2022). The trainer :func:`train` reads top to bottom: rollout, advantages, update. It is
built from the book's own functions: the batched CartPole of :mod:`rlviz.cartpole`, GAE
(:func:`gae_per_column`, the recursion of :func:`rlviz.advantages.gae` with one
:math:`(\gamma, \lambda)` per column) and the loss terms of :mod:`rlviz.losses`:

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

Why one thread: at these sizes (a few hundred samples, width 64) each torch call costs
microseconds of overhead and a second thread only adds synchronisation; measured, one thread
is faster (and ``torch.tanh`` is several times slower than ``torch.sigmoid`` on this CPU
build, hence :func:`_tanh`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from . import _validate as V
from .advantages import linear_scan, next_values
from .cartpole import BatchedCartPole
from .losses import approx_kl, clip_fraction, clipped_surrogate, entropy, value_loss

__all__ = ["PPOConfig", "PPOResult", "ActorCritic", "gae_per_column", "train", "evaluate",
           "Rollout", "collect"]

OBS, ACTIONS = 4, 2


# ---------------------------------------------------------------- hyperparameters

@dataclass(frozen=True, kw_only=True)
class PPOConfig:
    """Hyperparameters of :func:`train` (defaults: the book's fast CartPole setting)."""

    total_steps: int = 40_000     # environment steps per setting
    n_envs: int = 8               # environments per setting
    n_steps: int = 32             # rollout length T
    epochs: int = 10              # passes over each rollout
    minibatches: int = 1          # minibatches per epoch
    lr: float = 2e-3              # Adam step size (start value if annealed)
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
    hidden: int = 64
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

def _tanh(x: torch.Tensor) -> torch.Tensor:
    r""":math:`\tanh x = 2\sigma(2x) - 1`: same function, ~3x faster than ``torch.tanh`` here."""
    return torch.sigmoid(x * 2) * 2 - 1


def _layout(hidden: int) -> list[tuple[int, tuple[int, ...]]]:
    """(offset, shape) of W1, b1, W2, b2, W3, b3 inside one row of ``flat``."""
    shapes = [(OBS, hidden), (1, hidden), (hidden, hidden), (1, hidden), (hidden, ACTIONS),
              (1, ACTIONS)]
    out, off = [], 0
    for s in shapes:
        out.append((off, s))
        off += math.prod(s)
    return out


@dataclass
class ActorCritic:
    r"""K actor-critic pairs in one tensor ``flat`` ``(2K, P)`` (rows: K actors, then K critics).

    Each row is an MLP :math:`4 \to H \to H \to 2` with tanh hidden units; the actor's outputs
    are the logits of (left, right), the critic's first output is :math:`V_\phi(s)`.
    Initialised as in Huang et al. 2022 (orthogonal, gains :math:`\sqrt2` for hidden layers,
    0.01 for the logits, 1 for the value; zero biases).
    """

    flat: torch.Tensor
    hidden: int

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
        return cls(flat.requires_grad_(), hidden)

    def weights(self, flat=None):
        """The six weight tensors as views ``(2K, ...)`` of ``flat`` (torch or numpy)."""
        flat = self.flat if flat is None else flat
        return [flat[:, off:off + math.prod(s)].reshape(flat.shape[0], *s)
                for off, s in _layout(self.hidden)]

    def __call__(self, obs: torch.Tensor):
        """``obs`` ``(K, B, 4)`` -> logits ``(K, B, 2)`` and values ``(K, B)``."""
        W1, b1, W2, b2, W3, b3 = self.weights()
        x = torch.cat([obs, obs])  # actors and critics see the same states
        h = _tanh(torch.baddbmm(b1, x, W1))
        h = _tanh(torch.baddbmm(b2, h, W2))
        out = torch.baddbmm(b3, h, W3)
        return out[:self.K], out[self.K:, :, 0]

    def prob_right_numpy(self, obs: np.ndarray) -> np.ndarray:
        """:math:`\\pi(\\text{right} \\mid s)` in numpy for ``obs`` ``(K, n, 4)``: the rollout's policy.

        Reads the weights through numpy views of ``flat`` (no copy, always current); the
        same function as :meth:`__call__` in float32, cheaper per step than torch at these sizes.
        """
        W1, b1, W2, b2, W3, b3 = (w[:self.K] for w in self.weights(self.flat.detach().numpy()))
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

    the recursion of :func:`rlviz.advantages.gae` (same next values
    :func:`rlviz.advantages.next_values`, same scan :func:`rlviz.advantages.linear_scan`), with
    the coefficients broadcast along columns; equal to :func:`~rlviz.advantages.gae` when all
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
    """The environments between rollouts: K groups of n CartPoles, each group with its own seed."""

    def __init__(self, seeds, n_envs: int):
        self.K, self.n = len(seeds), n_envs
        self.envs = [BatchedCartPole(n_envs, seed=int(s) + 10_007) for s in seeds]
        self.env = BatchedCartPole(self.K * n_envs)  # steps all groups at once
        self.env.state = np.concatenate([e.reset().T.astype(np.float64) * 0 + e.state
                                         for e in self.envs], axis=1)
        self.obs = self.env.state.T.astype(np.float32)
        self.action_rngs = [np.random.default_rng([int(s), 1]) for s in seeds]
        self.ep_return = np.zeros(self.K * n_envs)
        self.last_return = np.full(self.K * n_envs, np.nan)  # last finished episode per env
        self.episodes = 0

    def reset_groups(self, done: np.ndarray) -> None:
        """Draw fresh start states for the ended envs from each group's own generator."""
        for g in np.unique(np.flatnonzero(done) // self.n):
            cols = np.flatnonzero(done[g * self.n:(g + 1) * self.n])
            self.env.state[:, g * self.n + cols] = self.envs[g].rng.uniform(-0.05, 0.05, (4, len(cols)))


def collect(agent: ActorCritic, runner: _Runner, T: int) -> Rollout:
    """Run the current policy for T steps in every environment (same-step autoreset)."""
    K, n = runner.K, runner.n
    u = np.stack([g.random((T, n), dtype=np.float32) for g in runner.action_rngs], axis=1)
    ro = Rollout(obs=np.empty((T, K * n, OBS), np.float32), actions=np.empty((T, K * n), np.int64),
                 rewards=np.empty((T, K * n), np.float32), terminated=np.empty((T, K * n), bool),
                 truncated=np.empty((T, K * n), bool),
                 final_obs=np.empty((T, K * n, OBS), np.float32), last_obs=runner.obs)
    env, obs = runner.env, runner.obs
    env.rng = None  # resets come from the groups' generators (reset_groups), never from env.rng
    for t in range(T):
        p_right = agent.prob_right_numpy(obs.reshape(K, n, OBS)).reshape(K * n)
        a = (u[t].reshape(K * n) < p_right).astype(np.int64)
        ro.obs[t], ro.actions[t] = obs, a
        obs, r, term, trunc, final = _step_grouped(runner, a)
        ro.rewards[t], ro.terminated[t], ro.truncated[t], ro.final_obs[t] = r, term, trunc, final
    runner.obs = ro.last_obs = obs
    return ro


def _step_grouped(runner: _Runner, a: np.ndarray):
    """One step of all K * n environments; ended ones restart from their group's generator."""
    env = runner.env
    saved_limit = env.max_episode_steps
    env.max_episode_steps = np.iinfo(np.int64).max  # ends detected here, resets done per group
    obs, r, term, _, final = env.step(a)
    env.max_episode_steps = saved_limit
    trunc = env.steps >= saved_limit
    done = term | trunc
    runner.ep_return += r
    if done.any():
        runner.last_return[done] = runner.ep_return[done]
        runner.ep_return[done] = 0.0
        runner.episodes += int(done.sum())
        runner.reset_groups(done)
        env.steps[done] = 0
        obs = env.state.T.astype(np.float32)
    return obs, r, term, trunc, final
