"""rlviz.agents.grpo: the config names each bad field and its string options are the registries'
names, a short run is deterministic for a seed, groups whose rewards are all equal leave the
policy unchanged (beta = 0), a non-finite loss stops the run, and the callback sees every
update."""

import dataclasses
import typing

import pytest
import torch

from rlviz.agents import grpo
from rlviz.agents.addition_task import MAX_LEN, AdditionTask, sample_answers
from rlviz.agents.grpo import GRPOConfig, group_log_probs, train_grpo
from rlviz.fn.grpo_aggregation import AGGREGATIONS
from rlviz.fn.grpo_loss import ADVANTAGES, KL_ESTIMATORS, KL_PLACEMENTS, LENGTH_NORMS
from rlviz.fn.ratios import POLICY_TERMS

SHORT = GRPOConfig(
    max_steps=3, eval_every=3, prompts_per_step=4, group_size=4, stop_at_target=False
)


class ConstantReward(AdditionTask):
    """Every answer gets the same reward: every group's rewards are all equal."""

    def reward(self, idx, tokens, mask):
        return torch.full((len(idx),), 0.7)


class HugeReward(AdditionTask):
    """Rewards of 1e300 (finite in float64) overflow the float32 advantages."""

    def reward(self, idx, tokens, mask):
        return (tokens[:, 0] % 2 == 0).double() * 1e300


def with_reward(cls, task):
    return cls(**{f.name: getattr(task, f.name) for f in dataclasses.fields(task)})


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize(
    "change,message",
    [
        ({"group_size": 0}, "group_size must be a positive integer, got 0"),
        ({"group_size": 1}, "group_size must be >= 2 .*, got 1"),
        ({"advantage": "loo", "group_size": 1}, "group_size must be >= 2 .*, got 1"),
        ({"prompts_per_step": 2.0}, "prompts_per_step must be a positive integer, got 2.0"),
        ({"epsilon": 0.0}, "epsilon must be a finite number > 0, got 0.0"),
        ({"beta": -0.1}, "beta must be a finite number >= 0, got -0.1"),
        ({"advantage": "median"}, "advantage must be one of .*'loo'.*, got 'median'"),
        ({"advantage": "none"}, "advantage must be one of .*, got 'none'"),  # the old name
        ({"term": "word"}, "term must be one of .*'dual-clip'.*, got 'word'"),
        ({"kl": "k4"}, "kl must be one of .*, got 'k4'"),
        ({"kl_placement": "advantage"}, "kl_placement must be one of .*, got 'advantage'"),
        (
            {"term": "token", "length_norm": "answer"},
            "length_norm must be one of .*, got 'answer'",
        ),
        ({"length_norm": "group"}, "length_norm must be None with term='sequence'.*got 'group'"),
        ({"eval_every": 0}, "eval_every must be an integer >= 1, got 0"),
    ],
)
def test_config_names_the_bad_field(change, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**change)


def test_config_refuses_the_old_field_names():
    for old in ({"ratio": "token"}, {"kl_in_reward": True}, {"correction": "tis"}):
        with pytest.raises(TypeError, match=next(iter(old))):
            GRPOConfig(**old)


PRACTICE = {"term": "token", "loss_agg": "token-mean"}


@pytest.mark.parametrize(
    "field, literal, names, companions",
    [
        ("advantage", grpo.Advantage, ADVANTAGES.names(), {}),
        ("term", grpo.Term, POLICY_TERMS.names(), {"loss_agg": "token-mean"}),
        ("loss_agg", grpo.LossAgg, AGGREGATIONS.names(), {"term": "token"}),
        ("kl", grpo.Kl, KL_ESTIMATORS.names(), {"beta": 0.1}),
        ("kl_placement", grpo.KlPlacement, KL_PLACEMENTS.names(), {**PRACTICE, "beta": 0.1}),
        ("length_norm", grpo.LengthNorm, LENGTH_NORMS, {"term": "token"}),
    ],
)
def test_each_option_type_is_its_registry_s_names(field, literal, names, companions):
    """A name registered without its Literal (or the reverse) fails here: the types the
    config's fields are annotated with are the registries' names, in their order, and the
    config accepts each of them."""
    assert typing.get_args(literal) == tuple(names)
    hint = typing.get_type_hints(GRPOConfig)[field]
    assert hint == literal or hint == (literal | None)
    for name in names:
        extra = {"clip_c": 3.0} if name == "dual-clip" else {}
        assert getattr(GRPOConfig(**companions, **extra, **{field: name}), field) == name


def test_short_run_is_deterministic_for_a_seed(setup):
    task, ref = setup
    p1, log1 = train_grpo(task, ref, SHORT)
    p2, log2 = train_grpo(task, ref, SHORT)
    assert log1.step == [0, 3] and log1.samples == [0, 3 * 16]
    assert log1.held_out == log2.held_out and log1.train == log2.train
    assert same_weights(p1, p2)
    p3, _ = train_grpo(task, ref, dataclasses.replace(SHORT, seed=1))
    assert not same_weights(p1, p3)
    assert not same_weights(p1, ref)  # it trained


@pytest.mark.parametrize("advantage", ["mean", "std", "loo"])
def test_all_equal_rewards_leave_the_policy_unchanged(setup, advantage):
    task, ref = setup
    flat = with_reward(ConstantReward, task)
    for term, norm in (("sequence", None), ("token", "sequence")):
        cfg = dataclasses.replace(SHORT, advantage=advantage, term=term, length_norm=norm)
        policy, _ = train_grpo(flat, ref, cfg)
        assert same_weights(policy, ref), (advantage, term)
    # the same run with the task's own rewards does move the policy
    assert not same_weights(
        train_grpo(task, ref, dataclasses.replace(SHORT, advantage=advantage))[0], ref
    )


def test_dual_clip_trains_and_with_a_huge_c_is_the_token_clip(setup):
    task, ref = setup
    two = dataclasses.replace(SHORT, max_steps=2, eval_every=2, term="token", loss_agg="token-mean")
    dual = dataclasses.replace(two, term="dual-clip", clip_c=3.0)
    policy, log = train_grpo(task, ref, dual)
    assert log.step == [0, 2] and not same_weights(policy, ref)
    # no ratio reaches c = 1e9: the dual clip never acts, the run is the token clip's bit for bit
    huge, _ = train_grpo(task, ref, dataclasses.replace(dual, clip_c=1e9))
    token, _ = train_grpo(task, ref, two)
    assert same_weights(huge, token)


def test_kl_penalty_alone_keeps_the_policy_at_the_reference(setup):
    """All-equal rewards and beta > 0: the policy starts at the reference, where the k3
    penalty's gradient is zero, so it stays there (to rounding)."""
    task, ref = setup
    policy, _ = train_grpo(
        with_reward(ConstantReward, task), ref, dataclasses.replace(SHORT, beta=0.5)
    )
    for a, b in zip(policy.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_non_finite_loss_stops_the_run(setup):
    task, ref = setup
    with pytest.raises(FloatingPointError, match="GRPO update 1: loss is not finite"):
        train_grpo(with_reward(HugeReward, task), ref, SHORT)


def test_callback_sees_every_update_and_can_stop_the_run(setup):
    task, ref = setup
    seen = []
    train_grpo(task, ref, SHORT, callback=lambda step, total: seen.append((step, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    def stop(step, total):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_grpo(task, ref, SHORT, callback=stop)


def test_stops_at_the_target(setup):
    task, ref = setup
    _, log = train_grpo(
        task,
        ref,
        dataclasses.replace(SHORT, max_steps=50, eval_every=2, target=0.0, stop_at_target=True),
    )
    assert log.step == [0, 2] and log.reached_step == 0


def test_group_log_probs_are_constants_grouped_by_prompt(setup):
    task, ref = setup
    batch = sample_answers(ref, task, 3, 5, torch.Generator().manual_seed(0))
    logp = group_log_probs(ref, batch.prompts, batch.tokens, 5)
    assert logp.shape == (3, 5, MAX_LEN) and not logp.requires_grad
    torch.testing.assert_close(logp[1, 2], ref.teacher(batch.prompts, batch.tokens)[0][7].detach())
