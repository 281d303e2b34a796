r"""CartPole-v1 as one array: ``N`` environments stepped by a few numpy operations.

Chapters 11-13 train on CartPole. This module is gymnasium's ``CartPole-v1`` (same constants,
same Euler integration in float64, same termination, same 500-step time limit, reward 1 per
step) with the ``N`` environments held in one ``(4, N)`` state array, and with **same-step
autoreset**: when an environment's episode ends, :meth:`BatchedCartPole.step` returns its final
observation in ``final_obs`` and, in ``obs``, the first observation of the next episode.

Why not ``gymnasium.make_vec("CartPole-v1", vectorization_mode="vector_entry_point")``?
gymnasium 1.x's ``CartPoleVectorEnv`` supports only *next-step* autoreset: the step after an
episode ends is a dummy transition (reward 0, the action ignored) that the trainer must mask
out of the rollout and out of GAE. Same-step autoreset gives every transition a meaning, and
the final observation of a truncated episode goes straight to the value bootstrap
(``v_final_t`` of :func:`rlviz.fn.returns.gae`). ``benchmarks/ppo_cartpole.py`` compares the
two for speed (the benchmarks appendix has the figures). tests/agents/test_cartpole.py steps it
beside gymnasium's single ``CartPole-v1`` with the same actions and checks that states,
rewards and both flags agree.

The dynamics (Barto, Sutton and Anderson 1983; Florian 2007), with force :math:`F=\pm 10`,
:math:`m_c = 1`, :math:`m_p = 0.1`, half-length :math:`l = 0.5`, :math:`\tau = 0.02`:

.. math::
    a_\theta = \frac{g \sin\theta - \cos\theta\, \frac{F + m_p l \dot\theta^2 \sin\theta}{m_c + m_p}}
                   {l\left(\tfrac43 - \frac{m_p \cos^2\theta}{m_c + m_p}\right)}, \qquad
    a_x = \frac{F + m_p l \dot\theta^2 \sin\theta}{m_c + m_p} - \frac{m_p l a_\theta \cos\theta}{m_c + m_p},

then :math:`x \mathrel{+}= \tau \dot x,\ \dot x \mathrel{+}= \tau a_x,\ \theta \mathrel{+}= \tau\dot\theta,\
\dot\theta \mathrel{+}= \tau a_\theta`. An episode *terminates* when :math:`|x| > 2.4` or
:math:`|\theta| > 12°`, and is *truncated* when it reaches ``max_episode_steps`` (both flags
can be set together; termination wins in the estimators).
"""

from __future__ import annotations

import math

import numpy as np

from rlviz import _validate as validate

__all__ = ["BatchedCartPole"]

GRAVITY, MASSCART, MASSPOLE, LENGTH, FORCE_MAG, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = MASSCART + MASSPOLE
POLEMASS_LENGTH = MASSPOLE * LENGTH
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
RESET_HIGH = 0.05
_LIMITS = np.array([[X_THRESHOLD], [THETA_THRESHOLD]])  # for rows x and theta of the state


class BatchedCartPole:
    """``num_envs`` CartPole-v1 environments in one array, with same-step autoreset.

    Parameters
    ----------
    num_envs : int
        N, the number of environments.
    max_episode_steps : int
        The time limit (500 for CartPole-v1).
    seed : int or sequence of G ints
        Seeds the generator of the initial states (uniform in [-0.05, 0.05]^4). With G seeds
        the environments form G equal consecutive groups, each drawing its start states from
        its own generator (one group per setting when a batch of settings shares the array: a
        setting's episodes then do not depend on the others).

    Attributes
    ----------
    state : float64 array (4, N)
        Rows x, x_dot, theta, theta_dot (gymnasium's order).
    steps : int array (N,)
        Steps taken in the current episode.
    """

    def __init__(self, num_envs: int, *, max_episode_steps: int = 500, seed=0):
        self.num_envs = validate.positive("num_envs", num_envs, integer=True)
        self.max_episode_steps = validate.positive(
            "max_episode_steps", max_episode_steps, integer=True
        )
        seeds = [seed] if np.ndim(seed) == 0 else list(seed)
        if not seeds or self.num_envs % len(seeds):
            raise ValueError(
                f"seed must be an int or G seeds with G dividing num_envs = "
                f"{self.num_envs}, got {len(seeds)} seeds"
            )
        self.rngs = [np.random.default_rng(int(s)) for s in seeds]
        self.group_size = self.num_envs // len(seeds)
        self.state = np.zeros((4, self.num_envs))
        self.steps = np.zeros(self.num_envs, dtype=np.int64)

    def reset(self) -> np.ndarray:
        """Start every environment afresh; returns the observations, float32 ``(N, 4)``."""
        self._restart(np.ones(self.num_envs, dtype=bool))
        return self.state.T.astype(np.float32)

    def _restart(self, done: np.ndarray) -> None:
        """New start states where ``done``, each group's from its own generator."""
        n = self.group_size
        for g in np.unique(np.flatnonzero(done) // n):
            cols = g * n + np.flatnonzero(done[g * n : (g + 1) * n])
            self.state[:, cols] = self.rngs[g].uniform(-RESET_HIGH, RESET_HIGH, size=(4, len(cols)))
        self.steps[done] = 0

    def step(self, action):
        """Step every environment; returns ``(obs, reward, terminated, truncated, final_obs)``.

        ``action``: int or bool array (N,) of 0 (push left) and 1 (push right). ``obs`` (N, 4)
        float32 is the observation to act on next (a fresh episode's first one where an
        episode ended); ``reward`` (N,) float32 is 1 everywhere; ``terminated`` and
        ``truncated`` (N,) bool; ``final_obs`` (N, 4) float32 is the observation the step
        reached, before any reset (equal to ``obs`` where nothing ended).
        """
        a = np.asarray(action)
        if a.shape != (self.num_envs,):
            raise ValueError(f"action must have shape ({self.num_envs},), got {a.shape}")
        x, x_dot, theta, theta_dot = self.state
        force = np.where(a > 0, FORCE_MAG, -FORCE_MAG)
        costheta, sintheta = np.cos(theta), np.sin(theta)
        temp = (force + POLEMASS_LENGTH * np.square(theta_dot) * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASSPOLE * np.square(costheta) / TOTAL_MASS)
        )
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        change = np.empty_like(self.state)  # Euler: state + tau * derivative
        change[0], change[1], change[2], change[3] = x_dot, xacc, theta_dot, thetaacc
        change *= TAU
        change += self.state
        self.state = change
        terminated = (np.abs(self.state[0::2]) > _LIMITS).any(0)  # |x| > 2.4 or |theta| > 12 deg
        self.steps += 1
        truncated = self.steps >= self.max_episode_steps
        final_obs = self.state.T.astype(np.float32)
        done = terminated | truncated
        obs = final_obs
        if done.any():
            self._restart(done)
            obs = self.state.T.astype(np.float32)
        reward = np.ones(self.num_envs, dtype=np.float32)
        return obs, reward, terminated, truncated, final_obs
