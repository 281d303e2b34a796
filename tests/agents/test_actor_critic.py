"""rlviz.agents.actor_critic: the batched networks (torch and numpy agree, the layout of flat),
rollouts (each setting's from its own seed, truncations bootstrap from V(final obs)), the
regrouping by setting, the result object, the config checks and evaluation on gymnasium."""

import numpy as np
import pytest
import torch

from rlviz.agents.actor_critic import (
    ActorCritic,
    Runner,
    TrainResult,
    by_setting,
    check_callback,
    collect,
    evaluate,
    evaluate_settings,
    log_prob,
    rollout_values,
)
from rlviz.fn.returns import Transitions, gae


def test_numpy_policy_is_the_torch_actor_and_follows_updates():
    agent = ActorCritic.init([0, 1, 2], 8)
    obs = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))
    for _ in range(2):
        logits, _ = agent(obs)
        p_right = agent.prob_right_numpy(obs.numpy())
        np.testing.assert_allclose(
            p_right, torch.softmax(logits, -1)[..., 1].detach().numpy(), rtol=0, atol=1e-6
        )
        with torch.no_grad():  # an in-place update of flat, as the optimisers make
            agent.flat.add_(0.5)
    probs = agent.policy(2)(obs[2].numpy())
    assert probs.shape == (5, 2)
    np.testing.assert_allclose(probs[:, 1], agent.prob_right_numpy(obs.numpy())[2], rtol=0, atol=0)
    with pytest.raises(ValueError, match="k must be a setting index"):
        agent.policy(3)


def test_layout_rows_are_actors_then_critics_and_settings_are_their_seeds():
    pair, alone = ActorCritic.init([4, 9], 8), ActorCritic.init([9], 8)
    torch.testing.assert_close(pair.flat[[1, 3]], alone.flat[[0, 1]], rtol=0, atol=0)
    obs = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(1))
    # the gradient in flat's layout: a value term moves only critic rows, a logit only actors
    grad = pair.gradient(pair(obs)[1][1].sum())
    assert grad.shape == pair.flat.shape
    assert grad[[0, 1, 2]].abs().max() == 0 and grad[3].abs().max() > 0
    grad = pair.gradient(pair(obs)[0][0].sum())
    assert grad[[1, 2, 3]].abs().max() == 0 and grad[0].abs().max() > 0
    torch.testing.assert_close(
        pair.per_row(torch.tensor([[1.0], [2.0]])), torch.tensor([[1.0], [2.0], [1.0], [2.0]])
    )


def test_log_prob_picks_the_taken_actions():
    logits = torch.tensor([[[0.0, 1.0], [2.0, -1.0]]])
    actions = torch.tensor([[1, 0]])
    expected = torch.log_softmax(logits, -1)[0, [0, 1], [1, 0]]
    torch.testing.assert_close(log_prob(logits, actions)[0], expected)


def test_a_settings_rollout_depends_on_its_seed_only():
    n_envs, T = 3, 40
    mixed = collect(ActorCritic.init([5, 3], 8), Runner([5, 3], n_envs), T)
    alone = collect(ActorCritic.init([3], 8), Runner([3], n_envs), T)
    for field in ("obs", "actions", "rewards", "terminated", "truncated", "final_obs"):
        np.testing.assert_array_equal(getattr(mixed, field)[:, n_envs:], getattr(alone, field))
    assert mixed.terminated.any()  # episodes ended (random policies fall) and were reset


def test_by_setting_puts_setting_k_in_row_k_time_major():
    T, n_settings, n_envs = 3, 2, 4
    a = np.arange(T * n_settings * n_envs).reshape(T, n_settings * n_envs)  # a[t, col]
    rows = by_setting(a, n_settings)
    assert rows.shape == (n_settings, T * n_envs)
    for k in range(n_settings):
        for t in range(T):
            for i in range(n_envs):
                assert rows[k, t * n_envs + i] == a[t, k * n_envs + i]


def test_truncated_episodes_bootstrap_from_the_final_observation():
    agent = ActorCritic.init([0, 1], 8)
    runner = Runner([0, 1], 3)
    runner.env.max_episode_steps = 4  # truncate often
    ro = collect(agent, runner, 12)
    assert ro.truncated.any()
    logp_t, v_t, v_T, v_final = rollout_values(agent, ro)
    with torch.no_grad():
        logits, v_direct = agent(by_setting(ro.final_obs, 2))
        logp_direct = log_prob(agent(by_setting(ro.obs, 2))[0], by_setting(ro.actions, 2))
    torch.testing.assert_close(by_setting(logp_t, 2), logp_direct, rtol=0, atol=1e-6)
    v_direct = v_direct.view(2, 12, 3).transpose(0, 1).reshape(12, 6).numpy()
    t, n = np.nonzero(ro.truncated & ~ro.terminated)
    np.testing.assert_allclose(v_final[t, n], v_direct[t, n], rtol=0, atol=1e-6)
    # and GAE uses it: at a truncation the advantage is r + gamma V(final obs) - V(s)
    tr = Transitions(
        r_t=ro.rewards,
        v_t=v_t,
        v_T=v_T,
        terminated_t=ro.terminated,
        truncated_t=ro.truncated,
        v_final_t=v_final,
    )
    adv = gae(tr, gamma=np.full(6, 0.9), lam=np.full(6, 0.9))
    np.testing.assert_allclose(
        adv[t, n], ro.rewards[t, n] + 0.9 * v_direct[t, n] - v_t[t, n], rtol=0, atol=1e-5
    )
    # the final observation is not the next observation acted on (that one starts a new episode)
    nxt = ro.obs[t[0] + 1, n[0]] if t[0] + 1 < 12 else ro.last_obs[n[0]]
    assert not np.allclose(ro.final_obs[t[0], n[0]], nxt)


def test_mean_last_return_per_setting():
    runner = Runner([0, 1], 2)
    runner.last_return[:] = [10.0, np.nan, np.nan, np.nan]
    np.testing.assert_array_equal(runner.mean_last_return(), [10.0, np.nan])


def test_train_result_records_and_times_the_callback():
    seen = []
    result = TrainResult(ActorCritic.init([0], 4), [None], {"steps": [], "return": []})
    seconds = result.record({"steps": 8, "return": [1.0]}, lambda *a: seen.append(a), 1, 8)
    assert seen == [(1, 8, result.agent)] and seconds >= 0
    assert result.log("return").shape == (1, 1)
    with pytest.raises(ValueError, match="key must be one of"):
        result.log("kl")


@pytest.mark.parametrize("callback", [print, lambda update, steps, agent: None, None])
def test_callback_check_accepts_none_and_callables(callback):
    check_callback(callback)


@pytest.mark.parametrize("callback", ["print", 3, [print]])
def test_callback_check_names_the_protocol(callback):
    with pytest.raises(
        ValueError,
        match=rf"callback must be None or callable \(update, steps, agent\), got "
        rf"{type(callback).__name__}",
    ):
        check_callback(callback)


@pytest.mark.parametrize("seed", [-1, 2.0, True])
def test_evaluate_checks_its_seed(seed):
    with pytest.raises(ValueError, match=f"seed must be an integer >= 0, got {seed!r}"):
        evaluate(lambda obs: np.full((len(obs), 2), 0.5), 2, seed=seed)


def test_evaluate_runs_gymnasium_episodes():
    def always_left(obs):
        return np.tile([1.0, 0.0], (len(obs), 1))

    r = evaluate(always_left, 5, seed=0)
    assert r.shape == (5,) and (r < 20).all() and (r >= 8).all()
    sampled = evaluate(lambda obs: np.full((len(obs), 2), 0.5), 3, seed=0, deterministic=False)
    assert sampled.shape == (3,)
    with pytest.raises(ValueError, match="episodes"):
        evaluate(always_left, 0)
    assert (evaluate(always_left, 5, seed=0) == r).all()  # seeded


def test_evaluate_counts_each_episode_until_its_first_end_and_the_time_limit():
    import gymnasium as gym

    # balancing by the pole's angular velocity survives long; the time limit caps the return
    def balance(obs):
        right = obs[:, 3] > 0
        return np.stack([~right, right], axis=1).astype(float)

    capped = evaluate(balance, 4, seed=1, max_episode_steps=50)
    assert (capped == 50).all()
    # the same policy on gymnasium's single CartPole-v1 gives the same kind of returns
    env = gym.make("CartPole-v1", max_episode_steps=50)
    obs, _ = env.reset(seed=1)
    total, done = 0, False
    while not done:
        obs, r, term, trunc, _ = env.step(int(obs[3] > 0))
        total, done = total + r, term or trunc
    assert total == 50
    with pytest.raises(ValueError, match="policy must be callable"):
        evaluate("left", 3)


@pytest.mark.parametrize("deterministic", [True, False])
def test_evaluate_settings_equals_evaluate_per_setting(deterministic):
    agent = ActorCritic.init([0, 1, 2, 3], 8)
    rows = [3, 1]
    both = evaluate_settings(agent, rows, 7, seed=5, deterministic=deterministic)
    assert both.shape == (2, 7)
    for i, k in enumerate(rows):
        one = evaluate(agent.policy(k), 7, seed=5, deterministic=deterministic)
        assert (both[i] == one).all()
    if not deterministic:  # different agents draw different actions: a mixed-up row shows
        assert not (both[0] == both[1]).all()
    with pytest.raises(ValueError, match="rows must be setting indices"):
        evaluate_settings(agent, [4])
