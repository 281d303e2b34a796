"""rlviz.agents.cartpole: the batched CartPole against gymnasium's single CartPole-v1, step by step."""

import gymnasium as gym
import numpy as np
import pytest

from rlviz.agents.cartpole import BatchedCartPole


def balancing_actions(obs, rng, noise):
    """A linear controller (push towards the falling side) with random actions mixed in."""
    a = (obs[:, 2] + 0.3 * obs[:, 3] + 0.01 * obs[:, 0] + 0.05 * obs[:, 1] > 0).astype(np.int64)
    flip = rng.random(len(a)) < noise
    return np.where(flip, rng.integers(0, 2, len(a)), a)


@pytest.mark.slow  # 2500 steps of 6 gymnasium envs: about 3 s each
@pytest.mark.parametrize("limit,noise,ending", [(500, 0.05, "truncated"), (40, 0.5, "terminated")])
def test_agrees_with_gymnasium_single_env(limit, noise, ending):
    n, steps = 6, 2500
    env = BatchedCartPole(n, max_episode_steps=limit, seed=3)
    singles = [gym.make("CartPole-v1", max_episode_steps=limit) for _ in range(n)]

    def restart(i, state):
        singles[i].reset(seed=i)  # resets the TimeLimit counter
        singles[i].unwrapped.state = state.copy()

    obs = env.reset()
    for i in range(n):
        restart(i, env.state[:, i])
    rng = np.random.default_rng(0)
    counts = {"terminated": 0, "truncated": 0}
    for _ in range(steps):
        a = balancing_actions(obs, rng, noise)
        obs, r, term, trunc, final = env.step(a)
        for i, single in enumerate(singles):
            o1, r1, te1, tr1, _ = single.step(int(a[i]))
            np.testing.assert_array_equal(final[i], o1)  # float32 observations, bit for bit
            assert (r[i], term[i], trunc[i]) == (r1, te1, tr1)
            if te1 or tr1:
                counts["terminated"] += te1
                counts["truncated"] += tr1
                restart(i, env.state[:, i])
                np.testing.assert_array_equal(obs[i], env.state[:, i].astype(np.float32))
            else:
                np.testing.assert_array_equal(obs[i], o1)
    # the run exercised the way of ending it was built for (time limit 500 / falls)
    assert counts[ending] > 5, counts


def test_final_obs_and_reset():
    env = BatchedCartPole(3, max_episode_steps=5, seed=0)
    env.reset()
    for _t in range(5):
        obs, r, term, trunc, final = env.step(np.zeros(3, dtype=np.int64))
    assert trunc.all() and (env.steps == 0).all()
    assert not np.array_equal(obs, final)  # obs is the next episode's start
    assert np.abs(obs).max() <= 0.05


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_envs"):
        BatchedCartPole(0)
    env = BatchedCartPole(2)
    env.reset()
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros(3))
