"""rlviz.agents.token_ppo: the config names each bad field, GAE over answer tokens by hand, the
normalisation and the loss ignore padding, a short run is deterministic for a seed and starts
from the reference, and a non-finite loss stops the run."""

import dataclasses

import numpy as np
import pytest
import torch

from rlviz.agents.addition_task import EOS, AdditionTask, success_rates
from rlviz.agents.token_ppo import (
    PPOConfig,
    normalize_over_tokens,
    token_advantages,
    token_ppo_loss,
    train_ppo,
)

SHORT = PPOConfig(max_steps=3, eval_every=3, batch_size=16, stop_at_target=False)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"batch_size": 1}, "batch_size must be >= 2 .*got 1"),
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0"),
        ({"epsilon": -0.2}, "epsilon must be a finite number > 0, got -0.2"),
        ({"gamma": 1.5}, r"gamma must be in \[0, 1\], got 1.5"),
        ({"lam": -0.1}, r"lam must be in \[0, 1\], got -0.1"),
        ({"value_coef": -1.0}, "value_coef must be a finite number >= 0, got -1.0"),
        ({"eval_every": 0}, "eval_every must be an integer >= 1, got 0"),
    ],
)
def test_config_names_the_bad_field(change, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig(**change)


def test_token_advantages_by_hand():
    """Answers of 1, 2 and 3 tokens, reward at the last token, terminated there."""
    mask = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    rewards = torch.tensor([1.0, 1.0, 0.0])
    v = torch.tensor([[0.4, 9.0, 9.0], [0.5, 0.8, 9.0], [0.1, 0.2, 0.3]])
    gl = 0.9 * 0.5
    adv = token_advantages(rewards, mask, v, gamma=0.9, lam=0.5)
    assert adv.dtype == torch.float32
    d2 = [0.0 + 0.9 * 0.2 - 0.1, 0.0 + 0.9 * 0.3 - 0.2, 0.0 - 0.3]
    want = [
        [1 - 0.4],
        [0.9 * 0.8 - 0.5 + gl * (1 - 0.8), 1 - 0.8],
        [d2[0] + gl * (d2[1] + gl * d2[2]), d2[1] + gl * d2[2], d2[2]],
    ]
    for row, w in enumerate(want):
        np.testing.assert_allclose(adv[row, : len(w)].numpy(), w, rtol=1e-6)


def test_normalize_over_tokens_ignores_padding():
    mask = torch.tensor([[True, False, False], [True, True, True]])
    adv = torch.tensor([[1.0, 50.0, -7.0], [2.0, 3.0, 6.0]])
    out = normalize_over_tokens(adv, mask)
    valid = out[mask]
    assert abs(float(valid.mean())) < 1e-6 and abs(float(valid.std()) - 1) < 1e-6
    assert torch.all(out[~mask] == 0)
    other = adv.clone()
    other[~mask] = 1e6
    torch.testing.assert_close(normalize_over_tokens(other, mask), out)


def test_loss_at_the_old_policy_is_minus_the_mean_advantage_over_tokens():
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[True, False, False], [True, True, True]])
    logp = -torch.rand(2, 3, generator=g)
    adv = torch.randn(2, 3, generator=g)
    v = torch.randn(2, 3, generator=g)
    loss = token_ppo_loss(logp, logp, adv, v, v, mask, epsilon=0.2, value_coef=0.5)
    assert float(loss) == pytest.approx(-float(adv[mask].mean()), rel=1e-6)
    junk = adv.clone()
    junk[~mask] = 1e3
    v_junk = v.clone()
    v_junk[~mask] = -1e3
    again = token_ppo_loss(logp, logp, junk, v_junk, v, mask, epsilon=0.2, value_coef=0.5)
    assert float(again) == pytest.approx(float(loss), rel=1e-6)
    with_value = token_ppo_loss(logp, logp, adv, v + 1.0, v, mask, epsilon=0.2, value_coef=0.5)
    assert float(with_value - loss) == pytest.approx(0.5, rel=1e-6)  # c1 * mean (1^2) over tokens


def test_short_run_is_deterministic_and_starts_from_the_reference(setup):
    task, ref = setup
    p1, log1 = train_ppo(task, ref, SHORT)
    p2, log2 = train_ppo(task, ref, SHORT)
    assert log1.step == [0, 3] and log1.samples == [0, 48]
    assert log1.held_out[0] == success_rates(ref, task, task.held_out)
    assert log1.held_out == log2.held_out
    assert all(torch.equal(a, b) for a, b in zip(p1.parameters(), p2.parameters()))
    p3, _ = train_ppo(task, ref, dataclasses.replace(SHORT, seed=1))
    assert not torch.equal(p1.value.weight, p3.value.weight)
    assert not torch.equal(p1.head.weight, ref.head.weight)  # it trained


def test_non_finite_loss_stops_the_run(setup):
    task, ref = setup

    class HugeReward(AdditionTask):
        def reward(self, idx, tokens, mask):
            return (tokens[:, 0] != EOS).double() * 1e300

    huge = HugeReward(**{f.name: getattr(task, f.name) for f in dataclasses.fields(task)})
    with pytest.raises(FloatingPointError, match="token PPO update 1: loss is not finite"):
        train_ppo(huge, ref, SHORT)
