"""rlviz.agents.ppo: a tiny run logs what it should, NaN stops it, settings are independent in a
batch, the trainer runs rlviz's GAE, and its parts (Settings, minibatches, the loss, gradient
clipping, the per-row Adam) do what their docstrings say."""

import dataclasses

import numpy as np
import pytest
import torch

from rlviz.agents import actor_critic
from rlviz.agents.actor_critic import ActorCritic, Runner, by_setting, collect, rollout_values
from rlviz.agents.ppo import (
    Batch,
    PPOConfig,
    RowAdam,
    Settings,
    clip_grad_norm_per_setting,
    minibatches,
    ppo_loss,
    train,
)
from rlviz.fn.ppo_loss import entropy
from rlviz.fn.returns import Transitions, gae

TINY = PPOConfig(total_steps=4 * 16 * 3, n_envs=4, n_steps=16, epochs=2, minibatches=2, hidden=8)


def test_tiny_run_logs_kl_and_clip_fraction():
    res = train(TINY)
    for key in (
        "approx_kl",
        "clip_fraction",
        "max_ratio",
        "policy_loss",
        "value_loss",
        "entropy",
        "lr",
        "epsilon",
        "return",
    ):
        assert res.log(key).shape == (3, 1), key
    assert np.isfinite(res.log("approx_kl")).all() and (res.log("approx_kl") >= 0).all()
    assert ((res.log("clip_fraction") >= 0) & (res.log("clip_fraction") <= 1)).all()
    assert res.log("steps").tolist() == [64, 128, 192]
    # the learning rate anneals linearly to 0 over the budget, epsilon stays (anneal_clip off)
    np.testing.assert_allclose(
        res.log("lr")[:, 0], TINY.lr * np.array([1, 2 / 3, 1 / 3]), rtol=1e-6
    )
    np.testing.assert_allclose(res.log("epsilon")[:, 0], TINY.clip_eps, rtol=1e-6)
    assert set(res.last_batch) == {
        "obs",
        "actions",
        "logp_old",
        "adv",
        "targets",
        "v_old",
        "flat_before",
        "epsilon",
    }
    assert res.last_batch["obs"].shape == (1, 64, 4)


def test_nan_stops_training_with_a_clear_error():
    def poison(update, steps, agent):
        if update == 1:
            agent.flat[0, 0] = float("nan")

    with pytest.raises(
        FloatingPointError,
        match=r"PPO update 2 \(epoch 1\): loss is not finite for setting\(s\) \[0\] "
        r"\(policy_loss \[nan\]",
    ):
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
    # rows of flat: actors then critics; setting a is row 0 alone, 0 in pair, 1 in mixed
    for alone_row, pair_row, mixed_row in ((0, 0, 1), (1, 2, 3)):
        torch.testing.assert_close(
            pair.agent.flat[pair_row], alone.agent.flat[alone_row], rtol=1e-4, atol=1e-5
        )
        torch.testing.assert_close(
            mixed.agent.flat[mixed_row], alone.agent.flat[alone_row], rtol=1e-4, atol=1e-5
        )


def test_train_runs_rlviz_gae_with_each_settings_gamma_and_lambda(monkeypatch):
    calls = []

    def spy(*args, **kwargs):
        (tr,) = args  # the Transitions form, truncations with their bootstrap values
        assert isinstance(tr, Transitions) and tr.v_final_t is not None
        out = gae(*args, **kwargs)
        calls.append((kwargs["gamma"], kwargs["lam"], out))
        return out

    monkeypatch.setattr(actor_critic, "gae", spy)  # the trainers call it via rollout_advantages
    configs = [dataclasses.replace(TINY, gamma=0.9, lam=0.5), dataclasses.replace(TINY, seed=1)]
    res = train(configs)
    assert len(calls) == TINY.updates
    gamma, lam, adv = calls[-1]
    n = TINY.n_envs  # columns grouped by setting
    np.testing.assert_array_equal(gamma, np.float32([0.9] * n + [TINY.gamma] * n))
    np.testing.assert_array_equal(lam, np.float32([0.5] * n + [TINY.lam] * n))
    torch.testing.assert_close(res.last_batch["adv"], by_setting(adv, 2), rtol=0, atol=0)


@pytest.mark.parametrize(
    "change,match",
    [
        ({"total_steps": 0}, "total_steps"),
        ({"n_envs": 2.0}, "n_envs"),
        ({"epochs": True}, "epochs"),
        ({"hidden": -1}, "hidden"),
        ({"lr": 0}, "lr"),
        ({"lr": "0.01"}, "lr"),
        ({"gamma": 1.5}, "gamma"),
        ({"lam": -0.1}, "lam"),
        ({"clip_eps": float("nan")}, "clip_eps"),
        ({"vf_coef": -1}, "vf_coef"),
        ({"ent_coef": float("inf")}, "ent_coef"),
        ({"clip_value": 0}, "clip_value"),
        ({"max_grad_norm": -0.5}, "max_grad_norm"),
        ({"anneal_lr": 1}, "anneal_lr"),
        ({"norm_adv": "yes"}, "norm_adv"),
        ({"anneal_clip": None}, "anneal_clip"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"n_envs": 3, "n_steps": 5, "minibatches": 2}, "minibatches must divide"),
        ({"n_envs": 2, "n_steps": 2, "minibatches": 4}, "at least 2 samples"),
    ],
)
def test_config_rejects_every_bad_field(change, match):
    with pytest.raises(ValueError, match=match):
        PPOConfig(**change)


def test_train_rejects_bad_input():
    with pytest.raises(ValueError, match="must share n_envs"):
        train([TINY, dataclasses.replace(TINY, n_envs=8)])
    with pytest.raises(ValueError, match="config must be a PPOConfig"):
        train([])
    with pytest.raises(ValueError, match="config must be a PPOConfig"):
        train({"lr": 0.1})
    with pytest.raises(ValueError, match="callback"):
        train(TINY, callback=3)
    with pytest.raises(ValueError, match="threads"):
        train(TINY, threads=0)


def test_settings_columns_and_schedule():
    configs = [
        PPOConfig(),
        PPOConfig(
            lr=0.1,
            anneal_lr=False,
            clip_eps=0.3,
            anneal_clip=True,
            max_grad_norm=None,
            norm_adv=False,
        ),
    ]
    s = Settings.from_configs(configs)
    for name in ("lr", "clip_eps", "vf_coef", "max_grad_norm", "norm_adv"):
        assert getattr(s, name).shape == (2, 1), name
    assert s.clip_value is None and s.ent_coef is None  # "off" in every setting
    assert s.max_grad_norm[1, 0] == float("inf") and s.norm_adv.tolist() == [[True], [False]]
    lr, eps = s.schedule(0.25)
    torch.testing.assert_close(lr, torch.tensor([[0.25 * 1.5e-2], [0.1]]))
    torch.testing.assert_close(eps, torch.tensor([[0.2], [0.25 * 0.3]]))
    mixed = Settings.from_configs([PPOConfig(clip_value=0.2), PPOConfig(ent_coef=0.01)])
    assert mixed.clip_value.tolist() == [[pytest.approx(0.2)], [float("inf")]]
    assert mixed.ent_coef.tolist() == [[0.0], [pytest.approx(0.01)]]


def _batch(n_settings=2, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return Batch(
        obs=torch.randn(n_settings, size, 4, generator=g),
        actions=torch.randint(0, 2, (n_settings, size), generator=g),
        logp_old=torch.randn(n_settings, size, generator=g).clamp(max=-0.1),
        adv=torch.randn(n_settings, size, generator=g),
        targets=torch.randn(n_settings, size, generator=g),
        v_old=torch.randn(n_settings, size, generator=g),
    )


def test_minibatches_partition_each_setting_by_its_own_generator():
    batch = _batch(2, 12)
    norm_adv = torch.tensor([[True], [False]])
    whole = list(minibatches(batch, 1, 3, None, norm_adv))  # one minibatch: the batch, in order
    assert [epoch for epoch, _ in whole] == [0, 1, 2]
    for _, mb in whole:
        torch.testing.assert_close(mb.obs, batch.obs, rtol=0, atol=0)
        torch.testing.assert_close(mb.adv[1], batch.adv[1], rtol=0, atol=0)  # not normalised
        torch.testing.assert_close(
            mb.adv[0], (batch.adv[0] - batch.adv[0].mean()) / (batch.adv[0].std() + 1e-8)
        )
    parts = list(
        minibatches(batch, 3, 2, [np.random.default_rng(0), np.random.default_rng(1)], norm_adv)
    )
    assert [(epoch, mb.size) for epoch, mb in parts] == [(0, 4)] * 3 + [(1, 4)] * 3
    for epoch in range(2):
        mbs = [mb for e, mb in parts if e == epoch]
        for k in range(2):  # every sample of every setting exactly once per epoch
            seen = torch.cat([mb.targets[k] for mb in mbs])
            torch.testing.assert_close(
                seen.sort().values, batch.targets[k].sort().values, rtol=0, atol=0
            )
        for mb in mbs:  # standardised per minibatch where the setting normalises
            assert abs(float(mb.adv[0].mean())) < 1e-6
            assert float(mb.adv[0].std()) == pytest.approx(1.0, abs=1e-5)
    # the shuffle differs between epochs, and setting 1's depends on its generator only
    assert not torch.equal(parts[0][1].targets, parts[3][1].targets)
    alone = list(
        minibatches(
            Batch(*(a[1:] for a in vars(batch).values())),
            3,
            2,
            [np.random.default_rng(1)],
            norm_adv[1:],
        )
    )
    for (_, p), (_, q) in zip(parts, alone):
        torch.testing.assert_close(p.obs[1], q.obs[0], rtol=0, atol=0)
        torch.testing.assert_close(p.adv[1], q.adv[0], rtol=0, atol=0)


def test_ppo_loss_terms_and_coefficients_per_setting():
    agent = ActorCritic.init([0, 1], 8)
    mb = _batch(2, 16)
    with torch.no_grad():  # theta = theta_old: every ratio is 1
        logits, _ = agent(mb.obs)
        mb.logp_old = torch.log_softmax(logits, -1).gather(-1, mb.actions[..., None])[..., 0]
    configs = [
        PPOConfig(vf_coef=0.5, ent_coef=0.0),
        PPOConfig(vf_coef=2.0, ent_coef=0.1, norm_adv=False),
    ]
    s = Settings.from_configs(configs)
    with torch.no_grad():
        terms = ppo_loss(agent, mb.standardised(s.norm_adv), s, s.clip_eps)
    # at ratio 1, L_CLIP is the mean advantage: normalised (0) for setting 0, raw for setting 1
    assert abs(float(terms.policy[0, 0])) < 1e-6
    assert float(terms.policy[1, 0]) == pytest.approx(float(mb.adv[1].mean()), abs=1e-6)
    assert float(torch.exp(terms.logratio).sub(1).abs().max()) < 1e-6
    ent = entropy(terms.logits).mean(1, keepdim=True)
    assert (ent > 0.5).all()  # near-uniform policies: a term that matters
    expected = (
        -terms.policy
        + torch.tensor([[0.5], [2.0]]) * terms.value
        - torch.tensor([[0.0], [0.1]]) * ent
    )
    torch.testing.assert_close(terms.loss, expected)
    torch.testing.assert_close(terms.value[:, 0], (agent(mb.obs)[1] - mb.targets).square().mean(1))


def test_gradient_clipping_per_setting():
    g = torch.Generator().manual_seed(0)
    grad = torch.randn(6, 10, generator=g)  # 3 settings: rows 0-2 actors, 3-5 critics
    max_norm = torch.tensor([[0.5], [float("inf")], [1e3]])
    out = clip_grad_norm_per_setting(grad, max_norm)

    def norm(x, k):
        return float(torch.cat([x[k], x[3 + k]]).norm())

    assert norm(out, 0) == pytest.approx(0.5, rel=1e-5)  # clipped to its bound
    torch.testing.assert_close(
        out[[0, 3]] / grad[[0, 3]], torch.full((2, 10), out[0, 0] / grad[0, 0])
    )
    torch.testing.assert_close(out[[1, 4, 2, 5]], grad[[1, 4, 2, 5]], rtol=0, atol=0)  # unchanged


def test_row_adam_is_adam_with_one_step_size_per_row():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(3, 5, generator=g, dtype=torch.float64)
    grads = [torch.randn(3, 5, generator=g, dtype=torch.float64) for _ in range(6)]
    lr = torch.tensor([[0.1], [0.01], [0.5]], dtype=torch.float64)
    params = start.clone()
    adam = RowAdam(params)
    for grad in grads:
        adam.step(grad, lr)
    for row in range(3):  # torch's Adam on that row alone, with that row's step size
        p = start[row].clone().requires_grad_()
        ref = torch.optim.Adam([p], lr=float(lr[row, 0]), betas=(0.9, 0.999), eps=1e-5)
        for grad in grads:
            p.grad = grad[row].clone()
            ref.step()
        torch.testing.assert_close(params[row], p.detach(), rtol=0, atol=1e-12)


def test_one_update_by_hand_equals_train():
    """train's update is collect, gae, ppo_loss, clipping and RowAdam: redo one update by hand."""
    cfg = dataclasses.replace(TINY, total_steps=64, minibatches=1, epochs=3)
    res = train(cfg)
    s = Settings.from_configs([cfg])
    agent, runner = ActorCritic.init([cfg.seed], cfg.hidden), Runner([cfg.seed], cfg.n_envs)
    ro = collect(agent, runner, cfg.n_steps)
    logp_t, v_t, v_T, v_final_t = rollout_values(agent, ro)
    tr = Transitions(
        r_t=ro.rewards,
        v_t=v_t,
        v_T=v_T,
        terminated_t=ro.terminated,
        truncated_t=ro.truncated,
        v_final_t=v_final_t,
    )
    adv = gae(tr, gamma=cfg.gamma, lam=cfg.lam)
    batch = Batch.from_rollout(ro, logp_t, adv, v_t, 1)
    adam = RowAdam(agent.flat)
    lr, eps = s.schedule(1.0)
    for _ in range(cfg.epochs):
        loss = ppo_loss(agent, batch.standardised(s.norm_adv), s, eps).loss.sum()
        adam.step(
            clip_grad_norm_per_setting(agent.gradient(loss), s.max_grad_norm), agent.per_row(lr)
        )
    torch.testing.assert_close(res.agent.flat, agent.flat, rtol=0, atol=1e-6)
