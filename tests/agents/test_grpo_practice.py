"""The options of chapters 15-16 in the GRPO trainer: loss aggregation, clip-higher, GSPO,
CISPO, dynamic sampling and the KL in the reward (rlviz.agents.grpo.practice_objective)."""

import dataclasses

import pytest
import torch

from rlviz.agents.grpo import GRPOConfig, mixed_groups, practice_objective, train_grpo
from rlviz.fn.grpo_loss import grpo_objective

SHORT = GRPOConfig(
    max_steps=3, prompts_per_step=4, group_size=4, eval_every=3, stop_at_target=False
)


def _batch(seed=0, B=3, G=4, L=3):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, L + 1, (B, G), generator=g)
    mask = torch.arange(L)[None, None, :] < lengths[..., None]
    logp_old = -torch.rand(B, G, L, generator=g, dtype=torch.float64) * 2
    logp = (
        logp_old + 0.3 * torch.randn(B, G, L, generator=g, dtype=torch.float64)
    ).requires_grad_()
    logp_ref = logp_old + 0.2 * torch.randn(B, G, L, generator=g, dtype=torch.float64)
    adv = torch.randn(B, G, generator=g, dtype=torch.float64)
    return logp, logp_old, adv, mask, logp_ref


@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_token_ratio_seq_mean_token_mean_is_chapter_14s_objective(beta):
    logp, logp_old, adv, mask, ref = _batch()
    cfg = GRPOConfig(ratio="token", loss_agg="seq-mean-token-mean", beta=beta)
    mine = practice_objective(logp, logp_old, adv, mask, cfg, ref, beta)
    ch14 = grpo_objective(
        logp,
        logp_old,
        adv,
        mask,
        epsilon=0.2,
        ratio="token",
        length_norm="sequence",
        beta=beta,
        logp_ref_t=ref,
    ).mean()
    assert torch.allclose(mine, ch14, rtol=0, atol=1e-12)


def test_clip_higher_releases_good_tokens_above_one_plus_epsilon():
    logp, logp_old, adv, mask, _ = _batch(1)
    base = GRPOConfig(ratio="token", loss_agg="token-mean")
    low = practice_objective(logp, logp_old, adv.abs(), mask, base)
    high = practice_objective(
        logp, logp_old, adv.abs(), mask, dataclasses.replace(base, eps_high=10.0)
    )
    assert float(high.detach()) > float(low.detach())  # positive advantages: a higher cap adds


@pytest.mark.parametrize("ratio", ["token", "gspo", "cispo"])
def test_every_ratio_has_the_reinforce_gradient_at_theta_old(ratio):
    logp, logp_old, adv, mask, _ = _batch(2)
    at_old = logp_old.clone().requires_grad_()
    cfg = GRPOConfig(ratio=ratio, loss_agg="seq-mean-token-sum")
    (g,) = torch.autograd.grad(practice_objective(at_old, logp_old, adv, mask, cfg), at_old)
    scale = 1 / (mask.shape[0] * mask.shape[1])
    expected = adv[..., None] * mask * scale
    # GSPO's ratio s_i, broadcast to the answer's tokens as verl does, has ds_i = s_i/|y_i| per
    # token: summed over the |y_i| tokens it gives the token ratios' gradient at theta_old
    assert torch.allclose(g, expected.to(g.dtype), atol=1e-12)


def test_mixed_groups():
    r = torch.tensor([[1.0, 1, 1], [0, 1, 0], [0, 0, 0]])
    assert mixed_groups(r).tolist() == [False, True, False]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"ratio": "gspo"}, "need loss_agg"),
        ({"eps_high": 0.28}, "need loss_agg"),
        ({"loss_agg": "token-mean"}, "ratio must be one of"),  # with the notes' sequence ratio
        ({"loss_agg": "mean", "ratio": "token"}, "loss_agg must be None or one of"),
        ({"loss_agg": "token-mean", "ratio": "token", "eps_high": -1.0}, "eps_high"),
        ({"kl_in_reward": True}, "needs beta > 0"),
        ({"dynamic_sampling": 1}, "True or False"),
    ],
)
def test_config_names_the_bad_option(change, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**change)


@pytest.mark.parametrize(
    "change",
    [
        {"ratio": "token", "loss_agg": "token-mean", "eps_high": 0.28, "dynamic_sampling": True},
        {"ratio": "gspo", "loss_agg": "seq-mean-token-mean"},
        {"ratio": "cispo", "loss_agg": "token-mean", "eps_high": 1.0},
        {"beta": 0.04, "kl_in_reward": True},
    ],
)
def test_practice_options_train_and_are_seeded(setup, change):
    task, ref = setup
    cfg = dataclasses.replace(SHORT, **change)
    p1, log1 = train_grpo(task, ref, cfg)
    p2, log2 = train_grpo(task, ref, cfg)
    assert log1.held_out == log2.held_out
    assert all(torch.equal(a, b) for a, b in zip(p1.parameters(), p2.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(p1.parameters(), ref.parameters()))
