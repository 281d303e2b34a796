r"""The actor-critic of the CartPole trainers (chapters 11 and 13): the networks of a batch of
settings in one tensor, the rollouts that run them, and evaluation on gymnasium's CartPole-v1.

Both :func:`rlviz.agents.ppo.train` and :func:`rlviz.agents.trpo.train` are built from these
parts:

* :class:`ActorCritic`: ``n_settings`` actor-critic pairs in one parameter tensor ``flat``
  (rows: the actors, then the critics), applied by one ``torch.baddbmm`` per layer;
* :class:`Runner` and :func:`collect`: the batched CartPole of :mod:`rlviz.agents.cartpole`
  run for T steps by the current policies, setting k's randomness from its own seed only;
* :func:`rollout_values`: what the rollout's policy and critic say about it (old
  log-probabilities, values, the bootstrap values of :func:`rlviz.fn.returns.gae`);
* :func:`by_setting`: a time-major rollout array regrouped with setting k's samples in row k;
* :class:`TrainResult`: what the trainers return (agents, configs, per-update logs);
* :func:`evaluate`: episodes of gymnasium's own ``CartPole-v1`` under a policy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from rlviz import _validate as validate
from rlviz.agents.cartpole import BatchedCartPole
from rlviz.fn.returns import Transitions, gae

__all__ = [
    "OBS",
    "ACTIONS",
    "ActorCritic",
    "log_prob",
    "Rollout",
    "Runner",
    "collect",
    "rollout_values",
    "by_setting",
    "TrainResult",
    "progress_range",
    "check_callback",
    "evaluate",
]

OBS, ACTIONS = 4, 2  # CartPole's observation size and number of actions


# ---------------------------------------------------------------- the networks


def _layout(hidden: int) -> list[tuple[int, tuple[int, ...]]]:
    """(offset, shape) of W1, b1, W2, b2, W3, b3 inside one row of ``flat``."""
    shapes = [
        (OBS, hidden),
        (1, hidden),
        (hidden, hidden),
        (1, hidden),
        (hidden, ACTIONS),
        (1, ACTIONS),
    ]
    out, off = [], 0
    for s in shapes:
        out.append((off, s))
        off += math.prod(s)
    return out


class ActorCritic:
    r"""``n_settings`` actor-critic pairs in one tensor ``flat`` ``(2 n_settings, P)``.

    Rows ``0 .. n_settings - 1`` are the actors, row ``n_settings + k`` is the critic of
    setting k. Each row is an MLP :math:`4 \to H \to H \to 2` with tanh hidden units; the
    actor's outputs are the logits of (left, right), the critic's first output is
    :math:`V_\phi(s)`. Initialised as in Huang et al. 2022 (orthogonal, gains :math:`\sqrt2`
    for hidden layers, 0.01 for the logits, 1 for the value; zero biases). ``params`` are the
    six weight tensors ``(2 n_settings, ...)`` as views of ``flat`` that autograd treats as
    leaves: gradients come per tensor (cheaper to differentiate than slices of one leaf),
    optimisers update ``flat`` in place.
    """

    def __init__(self, flat: torch.Tensor, hidden: int):
        self.flat, self.hidden = flat.detach(), hidden
        self.params = [w.requires_grad_() for w in self.weights()]
        self._numpy_actors = None

    @property
    def n_settings(self) -> int:
        return self.flat.shape[0] // 2

    @classmethod
    def init(cls, seeds, hidden: int = 64) -> ActorCritic:
        """One actor-critic pair per seed; setting k's weights drawn from seed k only."""
        n_settings = len(seeds)
        layout = _layout(hidden)
        flat = torch.zeros(2 * n_settings, layout[-1][0] + math.prod(layout[-1][1]))
        for k, seed in enumerate(seeds):
            g = torch.Generator().manual_seed(int(seed))
            for row, out_gain in ((k, 0.01), (n_settings + k, 1.0)):
                for i, (off, shape) in enumerate(layout[0::2]):
                    w = torch.empty(shape[1], shape[0])  # (out, in) as torch initialises
                    torch.nn.init.orthogonal_(
                        w, gain=math.sqrt(2) if i < 2 else out_gain, generator=g
                    )
                    flat[row, off : off + math.prod(shape)] = w.T.reshape(-1)
        return cls(flat, hidden)

    def weights(self, flat=None):
        """The six weight tensors as views ``(2 n_settings, ...)`` of ``flat`` (torch or numpy)."""
        flat = self.flat if flat is None else flat
        return [
            flat[:, off : off + math.prod(s)].reshape(flat.shape[0], *s)
            for off, s in _layout(self.hidden)
        ]

    def __call__(self, obs: torch.Tensor):
        """``obs`` ``(n_settings, B, 4)`` -> logits ``(n_settings, B, 2)`` and values ``(n_settings, B)``."""
        W1, b1, W2, b2, W3, b3 = self.params
        x = torch.cat([obs, obs])  # actors and critics see the same states
        h = torch.tanh(torch.baddbmm(b1, x, W1))
        h = torch.tanh(torch.baddbmm(b2, h, W2))
        out = torch.baddbmm(b3, h, W3)
        return out[: self.n_settings], out[self.n_settings :, :, 0]

    def gradient(self, loss: torch.Tensor) -> torch.Tensor:
        """The gradient of a scalar ``loss`` in the layout of ``flat``, ``(2 n_settings, P)``."""
        grads = torch.autograd.grad(loss, self.params)
        return torch.cat([g.reshape(len(self.flat), -1) for g in grads], 1)

    def per_row(self, per_setting: torch.Tensor) -> torch.Tensor:
        """A column of per-setting values ``(n_settings, 1)`` as one per row of ``flat`` ``(2 n_settings, 1)``."""
        return per_setting.repeat(2, 1)

    def prob_right_numpy(self, obs: np.ndarray) -> np.ndarray:
        r""":math:`\pi(\text{right} \mid s)` in numpy for ``obs`` ``(n_settings, n, 4)``: the rollout's policy.

        Reads the weights through numpy views of ``flat`` (no copy, always current); the
        same function as :meth:`__call__` in float32, cheaper per step than torch at these sizes.
        """
        if self._numpy_actors is None:  # numpy views of the actor rows follow in-place updates
            self._numpy_actors = [w[: self.n_settings] for w in self.weights(self.flat.numpy())]
        W1, b1, W2, b2, W3, b3 = self._numpy_actors
        h = np.tanh(obs @ W1 + b1)
        h = np.tanh(h @ W2 + b2)
        out = h @ W3 + b3
        return 1.0 / (1.0 + np.exp(out[..., 0] - out[..., 1]))

    def policy(self, k: int = 0):
        """Setting k's policy as a function obs ``(n, 4)`` -> probabilities ``(n, 2)`` (for :func:`evaluate`)."""
        if not 0 <= k < self.n_settings:
            raise ValueError(f"k must be a setting index in [0, {self.n_settings}), got {k!r}")

        def probs(obs):
            obs = np.asarray(obs, np.float32)
            p = self.prob_right_numpy(np.broadcast_to(obs[None], (self.n_settings, len(obs), OBS)))[
                k
            ]
            return np.stack([1 - p, p], axis=-1)

        return probs


def log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\pi(a \mid s)` of the taken actions: ``logits`` ``(..., 2)``, ``actions`` ``(...)`` int64."""
    return torch.log_softmax(logits, -1).gather(-1, actions.unsqueeze(-1)).squeeze(-1)


# ---------------------------------------------------------------- rollouts


@dataclass
class Rollout:
    """One rollout of T steps of N = n_settings * n_envs environments (time-major; columns
    grouped by setting: setting k owns columns ``k * n_envs .. (k + 1) * n_envs - 1``)."""

    obs: np.ndarray  # (T, N, 4) observations acted on
    actions: np.ndarray  # (T, N) int64
    rewards: np.ndarray  # (T, N) float32
    terminated: np.ndarray  # (T, N) bool
    truncated: np.ndarray  # (T, N) bool
    final_obs: np.ndarray  # (T, N, 4) observation reached by each step, before any reset
    last_obs: np.ndarray  # (N, 4) observation after the last step


class Runner:
    """The environments between rollouts: one group of ``n_envs`` CartPoles per seed.

    Setting k's environments draw their start states from seed k and its actions from their
    own generator (also seeded by seed k), so a setting's episodes do not depend on the other
    settings. Tracks each environment's running episode return and its last finished one.
    """

    def __init__(self, seeds, n_envs: int):
        self.n_settings = len(seeds)
        self.n_envs = validate.positive("n_envs", n_envs, integer=True)
        self.env = BatchedCartPole(self.n_settings * n_envs, seed=[int(s) + 10_007 for s in seeds])
        self.obs = self.env.reset()
        self.action_rngs = [np.random.default_rng([int(s), 1]) for s in seeds]
        self.ep_return = np.zeros(self.n_settings * n_envs)
        self.last_return = np.full(self.n_settings * n_envs, np.nan)  # NaN: no episode ended yet

    def mean_last_return(self) -> np.ndarray:
        """Per setting, the mean over its environments of their last finished episode's return."""
        r = self.last_return.reshape(self.n_settings, self.n_envs)
        seen = ~np.isnan(r)
        return np.where(seen.any(1), np.nansum(r, 1) / np.maximum(seen.sum(1), 1), np.nan)


def collect(agent: ActorCritic, runner: Runner, T: int) -> Rollout:
    """Run the current policies for T steps in every environment (same-step autoreset)."""
    n_settings, n_envs = runner.n_settings, runner.n_envs
    N = n_settings * n_envs
    u = np.stack(
        [g.random((T, n_envs), dtype=np.float32) for g in runner.action_rngs], axis=1
    ).reshape(T, N)  # uniforms: setting k's from its own generator
    ro = Rollout(
        obs=np.empty((T, N, OBS), np.float32),
        actions=np.empty((T, N), np.int64),
        rewards=np.empty((T, N), np.float32),
        terminated=np.empty((T, N), bool),
        truncated=np.empty((T, N), bool),
        final_obs=np.empty((T, N, OBS), np.float32),
        last_obs=runner.obs,
    )
    obs = runner.obs
    for t in range(T):
        p_right = agent.prob_right_numpy(obs.reshape(n_settings, n_envs, OBS)).reshape(N)
        ro.obs[t], ro.actions[t] = obs, u[t] < p_right  # right (1) with probability p_right
        obs, r, term, trunc, final = runner.env.step(ro.actions[t])
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
    n_settings = agent.n_settings
    n_envs = N // n_settings
    every = np.concatenate([ro.obs, ro.last_obs[None], ro.final_obs])  # (2T + 1, N, 4)
    x = torch.from_numpy(every).view(2 * T + 1, n_settings, n_envs, OBS).transpose(0, 1)
    with torch.no_grad():
        logits, values = agent(x.reshape(n_settings, (2 * T + 1) * n_envs, OBS))
        logp = torch.log_softmax(logits, -1).view(n_settings, 2 * T + 1, n_envs, ACTIONS)[:, :T]

    def time_major(a):  # (n_settings, rows, n_envs, ...) -> (rows, N, ...)
        return a.transpose(0, 1).reshape(a.shape[1], N, *a.shape[3:]).numpy()

    values = time_major(values.view(n_settings, 2 * T + 1, n_envs))
    logp_t = np.take_along_axis(time_major(logp), ro.actions[..., None], -1)[..., 0]
    return logp_t, values[:T], values[T], values[T + 1 :]


def rollout_advantages(agent: ActorCritic, runner: Runner, n_steps: int, gamma, lam):
    r"""One rollout of ``n_steps`` steps and its GAE advantages: what every update of the PPO and
    TRPO trainers starts with.

    :func:`collect`, then :func:`rollout_values`, then :func:`rlviz.fn.returns.gae` with
    ``gamma`` and ``lam`` numbers or one per column (one per environment of each setting);
    truncated episodes bootstrap from :math:`\hat V` of their final observation. Returns
    ``(rollout, logp_t, v_t, adv)``, time-major ``(T, N)``.
    """
    ro = collect(agent, runner, n_steps)
    logp_t, v_t, v_T, v_final_t = rollout_values(agent, ro)
    tr = Transitions(
        r_t=ro.rewards,
        v_t=v_t,
        v_T=v_T,
        terminated_t=ro.terminated,
        truncated_t=ro.truncated,
        v_final_t=v_final_t,
    )
    return ro, logp_t, v_t, gae(tr, gamma=gamma, lam=lam)


def by_setting(a: np.ndarray, n_settings: int) -> torch.Tensor:
    """A rollout array ``(T, N, ...)`` as a tensor ``(n_settings, T * n_envs, ...)``: setting k's
    samples in row k, in time-major order (sample ``t * n_envs + i`` is step t of its env i)."""
    a = torch.from_numpy(np.ascontiguousarray(a))
    T, N = a.shape[:2]
    return (
        a.view(T, n_settings, N // n_settings, *a.shape[2:])
        .transpose(0, 1)
        .reshape(n_settings, T * (N // n_settings), *a.shape[2:])
    )


# ---------------------------------------------------------------- what the trainers return


@dataclass
class TrainResult:
    """What the trainers return: the agents, the configs and per-update logs.

    ``logs[key]`` is a list over updates; :meth:`log` gives it as an array ``(updates,
    n_settings)`` (``steps``: ``(updates,)``). ``train_seconds`` is the wall time of training
    with the callbacks excluded. ``last_batch`` holds what the last update trained on (the
    PPO trainer fills it; see :func:`rlviz.agents.ppo.train`).
    """

    agent: ActorCritic
    configs: list
    logs: dict = field(default_factory=dict)
    train_seconds: float = 0.0
    last_batch: dict = field(default_factory=dict)

    def log(self, key: str) -> np.ndarray:
        if key not in self.logs:
            raise ValueError(f"key must be one of {sorted(self.logs)}, got {key!r}")
        return np.asarray(self.logs[key])

    def record(self, row: dict, callback, update: int, steps: int) -> float:
        """Append one update's values to the logs and run ``callback(update, steps, agent)``;
        returns the callback's seconds (to be excluded from ``train_seconds``)."""
        for key, val in row.items():
            self.logs[key].append(val)
        if callback is None:
            return 0.0
        t0 = time.perf_counter()
        callback(update, steps, self.agent)
        return time.perf_counter() - t0


def progress_range(n: int, show: bool, desc: str):
    """``range(n)``, wrapped in a tqdm progress bar when ``show``."""
    if not show:
        return range(n)
    from tqdm.auto import tqdm

    return tqdm(range(n), desc=desc, unit="update")


# ---------------------------------------------------------------- the trainers' callback


def check_callback(callback) -> None:
    """Raise ``ValueError`` unless ``callback`` is None or callable as the trainers call it,
    ``callback(update, steps, agent)`` (:meth:`TrainResult.record`). The general checks of
    config fields are in :mod:`rlviz._validate`."""
    if callback is not None and not callable(callback):
        raise ValueError(
            f"callback must be None or callable (update, steps, agent), got "
            f"{type(callback).__name__}"
        )


# ---------------------------------------------------------------- evaluation on gymnasium


def evaluate(
    policy,
    episodes: int = 100,
    seed: int = 0,
    *,
    deterministic: bool = True,
    max_episode_steps: int = 500,
) -> np.ndarray:
    """Returns of ``episodes`` episodes of gymnasium's own CartPole under ``policy``.

    The episodes run side by side in gymnasium's vectorised CartPole
    (``gymnasium.envs.classic_control.cartpole.CartPoleVectorEnv``: CartPole-v1's dynamics,
    termination and time limit, in numpy over all episodes at once), reset with ``seed``; each
    episode's return is counted until its first end. ``policy``: a function obs ``(n, 4)``
    float32 -> action probabilities ``(n, 2)``, called once per step for all episodes; actions
    are greedy (``deterministic``) or sampled (seeded by ``seed``). Result: float array
    ``(episodes,)``.
    """
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    if not callable(policy):
        raise ValueError(
            f"policy must be callable (obs -> probabilities), got {type(policy).__name__}"
        )
    episodes = validate.positive("episodes", episodes, integer=True)
    max_episode_steps = validate.positive("max_episode_steps", max_episode_steps, integer=True)
    validate.integer("seed", seed, minimum=0)
    rng = np.random.default_rng([seed, 3])
    env = CartPoleVectorEnv(num_envs=episodes, max_episode_steps=max_episode_steps)
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    alive = np.ones(episodes, dtype=bool)
    while alive.any():
        p = np.asarray(policy(obs))
        acts = p.argmax(-1) if deterministic else (rng.random(episodes) < p[:, 1]).astype(int)
        obs, r, term, trunc, _ = env.step(acts.astype(np.int64))
        returns[alive] += r[alive]
        alive &= ~(term | trunc)
    env.close()
    return returns


def evaluate_settings(
    agent,
    rows=None,
    episodes: int = 100,
    seed: int = 0,
    *,
    deterministic: bool = True,
    max_episode_steps: int = 500,
) -> np.ndarray:
    """:func:`evaluate` for several settings of a batched ``agent`` at once: returns
    ``(len(rows), episodes)`` (``rows`` default: all settings).

    Row i equals ``evaluate(agent.policy(rows[i]), episodes, seed, ...)`` exactly (the same
    initial states and action draws), but one forward pass of the batched network per step
    serves every setting.
    """
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv

    rows = list(range(agent.n_settings)) if rows is None else [int(k) for k in rows]
    if not rows or any(not 0 <= k < agent.n_settings for k in rows):
        raise ValueError(f"rows must be setting indices in [0, {agent.n_settings}), got {rows!r}")
    episodes = validate.positive("episodes", episodes, integer=True)
    max_episode_steps = validate.positive("max_episode_steps", max_episode_steps, integer=True)
    validate.integer("seed", seed, minimum=0)
    rngs = [np.random.default_rng([seed, 3]) for _ in rows]
    envs = [CartPoleVectorEnv(num_envs=episodes, max_episode_steps=max_episode_steps) for _ in rows]
    obs = np.zeros((agent.n_settings, episodes, OBS), np.float32)
    for k, env in zip(rows, envs):
        obs[k] = env.reset(seed=seed)[0]
    returns = np.zeros((len(rows), episodes))
    alive = np.ones((len(rows), episodes), dtype=bool)
    while alive.any():
        p_right = agent.prob_right_numpy(obs)
        for i, (k, env) in enumerate(zip(rows, envs)):
            if not alive[i].any():
                continue
            p = p_right[k]
            acts = (p > 0.5) if deterministic else (rngs[i].random(episodes) < p)
            obs[k], r, term, trunc, _ = env.step(acts.astype(np.int64))
            returns[i, alive[i]] += r[alive[i]]
            alive[i] &= ~(term | trunc)
    for env in envs:
        env.close()
    return returns
