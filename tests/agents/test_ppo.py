"""rlviz.agents.ppo: a tiny run logs what it should, NaN stops it, settings are independent in a batch,
the per-column GAE is rlviz's GAE, and truncated episodes bootstrap from V(final obs)."""

import dataclasses

import numpy as np
import pytest
import torch

from rlviz.fn.returns import gae
from rlviz.agents.ppo import (ActorCritic, PPOConfig, _Runner, collect, evaluate, gae_per_column,
                       rollout_values, train)

TINY = PPOConfig(total_steps=4 * 16 * 3, n_envs=4, n_steps=16, epochs=2, minibatches=2, hidden=8)


def test_tiny_run_logs_kl_and_clip_fraction():
    res = train(TINY)
    assert res.log("approx_kl").shape == (3, 1) and res.log("clip_fraction").shape == (3, 1)
    assert np.isfinite(res.log("approx_kl")).all() and (res.log("approx_kl") >= 0).all()
    assert ((res.log("clip_fraction") >= 0) & (res.log("clip_fraction") <= 1)).all()
    assert res.log("steps").tolist() == [64, 128, 192]


def test_nan_stops_training_with_a_clear_error():
    def poison(update, steps, agent):
        if update == 1:
            agent.flat[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match=r"PPO update 2 \(epoch 1\): loss is not finite"):
        train(TINY, callback=poison)


def test_a_setting_does_not_depend_on_the_rest_of_the_batch():
    a = dataclasses.replace(TINY, seed=5)
    b = dataclasses.replace(TINY, seed=7, gamma=0.9, clip_eps=0.1, norm_adv=False, clip_value=0.3)
    alone = train(a)
    pair = train([a, a])  # two identical settings
    mixed = train([b, a])  # the same setting beside a different one
    for key in ("approx_kl", "value_loss", "policy_loss"):
        np.testing.assert_allclose(pair.log(key)[:, 0], pair.log(key)[:, 1], rtol=0, atol=1e-6)
        np.testing.assert_allclose(pair.log(key)[:, 0], alone.log(key)[:, 0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(mixed.log(key)[:, 1], alone.log(key)[:, 0], rtol=1e-4, atol=1e-6)
    # rows of flat: actors then critics; setting a is row 0 alone, 0 in pair, 1 in mixed (K = 2)
    for alone_row, pair_row, mixed_row in ((0, 0, 1), (1, 2, 3)):
        torch.testing.assert_close(pair.agent.flat[pair_row], alone.agent.flat[alone_row],
                                   rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(mixed.agent.flat[mixed_row], alone.agent.flat[alone_row],
                                   rtol=1e-4, atol=1e-5)


def test_configs_in_one_batch_must_share_sizes():
    with pytest.raises(ValueError, match="must share n_envs"):
        train([TINY, dataclasses.replace(TINY, n_envs=8)])
    with pytest.raises(ValueError, match="minibatches must divide"):
        PPOConfig(n_envs=3, n_steps=5, minibatches=2)
    with pytest.raises(ValueError, match="gamma"):
        PPOConfig(gamma=1.5)


def test_gae_per_column_is_rlviz_gae():
    rng = np.random.default_rng(0)
    T, N = 40, 6
    ro = dict(r_t=rng.normal(size=(T, N)), v_t=rng.normal(size=(T, N)), v_T=rng.normal(size=N),
              terminated_t=rng.random((T, N)) < 0.05, truncated_t=rng.random((T, N)) < 0.05,
              v_final_t=rng.normal(size=(T, N)))
    gammas, lams = np.array([0.9, 0.9, 0.99, 0.99, 1.0, 0.5]), np.array([0.95, 0.0, 1.0, 0.8, 0.7, 0.5])
    per_col = gae_per_column(**ro, gamma_n=gammas, lam_n=lams)
    for n in range(N):
        col = {k: (v[:, n:n + 1] if np.ndim(v) == 2 else v[n:n + 1]) for k, v in ro.items()}
        np.testing.assert_allclose(per_col[:, n:n + 1], gae(**col, gamma=gammas[n], lam=lams[n]),
                                   rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="gamma_n must be in"):
        gae_per_column(**ro, gamma_n=gammas + 0.5, lam_n=lams)


def test_truncated_episodes_bootstrap_from_the_final_observation():
    agent = ActorCritic.init([0, 1], 8)
    runner = _Runner([0, 1], 3)
    runner.env.max_episode_steps = 4  # truncate often
    ro = collect(agent, runner, 12)
    assert ro.truncated.any()
    logp_t, v_t, v_T, v_final = rollout_values(agent, ro)
    with torch.no_grad():
        _, v_direct = agent(torch.from_numpy(ro.final_obs).view(12, 2, 3, 4).transpose(0, 1)
                            .reshape(2, 36, 4))
    v_direct = v_direct.view(2, 12, 3).transpose(0, 1).reshape(12, 6).numpy()
    t, n = np.nonzero(ro.truncated & ~ro.terminated)
    np.testing.assert_allclose(v_final[t, n], v_direct[t, n], rtol=0, atol=1e-6)
    # and GAE uses it: at a truncation the advantage is r + gamma V(final obs) - V(s)
    gam = np.full(6, 0.9, np.float32)
    adv = gae_per_column(ro.rewards, v_t, v_T=v_T, terminated_t=ro.terminated,
                         truncated_t=ro.truncated, v_final_t=v_final, gamma_n=gam, lam_n=gam)
    np.testing.assert_allclose(adv[t, n], ro.rewards[t, n] + 0.9 * v_direct[t, n] - v_t[t, n],
                               rtol=0, atol=1e-5)
    # the final observation is not the next observation acted on (that one starts a new episode)
    assert not np.allclose(ro.final_obs[t[0], n[0]], ro.obs[t[0] + 1, n[0]] if t[0] + 1 < 12 else ro.last_obs[n[0]])


def test_evaluate_runs_gymnasium_episodes():
    always_left = lambda obs: np.tile([1.0, 0.0], (len(obs), 1))  # noqa: E731
    r = evaluate(always_left, 5, seed=0)
    assert r.shape == (5,) and (r < 20).all() and (r >= 8).all()
    sampled = evaluate(lambda obs: np.full((len(obs), 2), 0.5), 3, seed=0, deterministic=False)
    assert sampled.shape == (3,)
