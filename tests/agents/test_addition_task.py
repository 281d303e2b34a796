"""rlviz.agents.addition_task: the task and its reward, the GRU policy (generation agrees with
teacher forcing), the rollout, the cached reference, the shared config, log and optimiser step."""

import dataclasses

import numpy as np
import pytest
import torch

from rlviz.agents.addition_task import (
    ANSWER_VOCAB,
    EOS,
    MAX_LEN,
    AdditionTask,
    Policy,
    RunConfig,
    TrainLog,
    gradient_step,
    greedy_success,
    pretrain_reference,
    sample_answers,
    success_rates,
)


def test_split_is_stratified_and_disjoint(task):
    assert task.prompts.shape == (81, 2)
    assert len(task.train) == 61 and len(task.held_out) == 20
    assert len(np.intersect1d(task.train, task.held_out)) == 0
    assert int(task.carry[task.held_out].sum()) == 11  # round(0.25 * 45) of the 45 carry prompts
    assert torch.equal(AdditionTask.make().held_out, task.held_out)
    assert not torch.equal(AdditionTask.make(split_seed=1).held_out, task.held_out)


def test_answers_right_and_wrong(task):
    k = int(np.flatnonzero((task.prompts == torch.tensor([7, 6])).all(1))[0])
    assert task.answers[k].tolist() == [1, 3, EOS] and task.answer_mask[k].all()
    assert task.wrong[k].tolist() == [3, EOS, EOS] and task.wrong_mask[k].tolist() == [
        True,
        True,
        False,
    ]
    k = int(np.flatnonzero((task.prompts == torch.tensor([2, 5])).all(1))[0])
    assert task.answers[k].tolist() == [7, EOS, EOS] and torch.equal(task.answers[k], task.wrong[k])


def test_reward_is_exact_match(task):
    idx = torch.arange(81)
    assert torch.all(task.reward(idx, task.answers, task.answer_mask) == 1)
    carry = task.carry
    assert torch.equal(task.reward(idx, task.wrong, task.wrong_mask), (~carry).float())
    # the right digits without the end token (cut at 3 tokens) is wrong
    k = int(np.flatnonzero(carry)[0])
    tokens = task.answers[k : k + 1].clone()
    tokens[0, 2] = 4
    assert float(task.reward(idx[k : k + 1], tokens, torch.ones(1, MAX_LEN, dtype=torch.bool))) == 0


def test_teacher_forcing_gives_a_distribution_over_all_answers():
    """All 1 + 10 + 100 * 11 answers of at most 3 tokens: their probabilities sum to 1."""
    torch.manual_seed(0)
    policy = Policy()
    digits = range(10)
    answers = (
        [[EOS, EOS, EOS]]
        + [[d, EOS, EOS] for d in digits]
        + [[d, e, t] for d in digits for e in digits for t in range(ANSWER_VOCAB)]
    )
    tokens = torch.tensor(answers)
    mask = torch.tensor([[True, False, False]] + [[True, True, False]] * 10 + [[True] * 3] * 1100)
    prompts = torch.tensor([[4, 9]]).expand(len(answers), 2)
    with torch.no_grad():
        logp, v = policy.teacher(prompts, tokens)
    assert v is None
    total = torch.exp((logp * mask).sum(-1).double()).sum()
    assert abs(float(total) - 1) < 1e-5


def test_generate_pads_after_eos_and_is_seeded():
    torch.manual_seed(1)
    policy = Policy()
    prompts = torch.randint(1, 10, (300, 2))
    tok, mask = policy.generate(prompts, generator=torch.Generator().manual_seed(3))
    tok2, mask2 = policy.generate(prompts, generator=torch.Generator().manual_seed(3))
    assert torch.equal(tok, tok2) and torch.equal(mask, mask2)
    assert mask[:, 0].all()
    ends = (tok == EOS) & mask
    for row in range(len(tok)):
        n = int(mask[row].sum())
        assert not mask[row, n:].any() and torch.all(tok[row, n:] == EOS)
        assert n == MAX_LEN or ends[row, n - 1]  # an answer stops at EOS or at 3 tokens
    greedy = policy.generate(prompts, greedy=True)[0]
    assert torch.equal(greedy, policy.generate(prompts, greedy=True)[0])


def test_sample_answers_groups_are_consecutive(task):
    torch.manual_seed(0)
    policy = Policy()
    batch = sample_answers(policy, task, 5, 4, torch.Generator().manual_seed(0))
    assert batch.tokens.shape == (20, MAX_LEN) and batch.rewards.shape == (20,)
    groups = batch.idx.view(5, 4)
    assert torch.all(groups == groups[:, :1])
    assert set(batch.idx.tolist()) <= set(task.train.tolist())
    assert torch.equal(batch.rewards, task.reward(batch.idx, batch.tokens, batch.mask))
    again = sample_answers(policy, task, 5, 4, torch.Generator().manual_seed(0))
    assert torch.equal(again.tokens, batch.tokens) and torch.equal(again.idx, batch.idx)


def test_success_rates_are_exact_probabilities(task):
    torch.manual_seed(0)
    policy = Policy()
    idx = task.held_out
    with torch.no_grad():
        logp, _ = policy.teacher(task.prompts[idx], task.answers[idx])
    p = np.exp((logp * task.answer_mask[idx]).sum(-1).numpy())
    assert success_rates(policy, task, idx) == pytest.approx(p.mean(), rel=1e-6)
    assert 0 <= greedy_success(policy, task, idx) <= 1


@pytest.mark.slow  # three reference pretrainings: about 2-4 s
def test_reference_is_cached_per_task_and_returned_as_a_copy(task):
    a = pretrain_reference(task, steps=15)
    b = pretrain_reference(task, steps=15)
    assert a is not b
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    with torch.no_grad():
        next(a.parameters()).add_(1.0)  # changing a copy leaves the cache alone
    c = pretrain_reference(task, steps=15)
    assert torch.equal(next(c.parameters()), next(b.parameters()))
    other = pretrain_reference(AdditionTask.make(), steps=15, forget_carry=0.0)
    assert not torch.equal(next(other.parameters()), next(b.parameters()))
    with pytest.raises(ValueError, match="forget_carry must be in"):
        pretrain_reference(task, forget_carry=1.5)
    with pytest.raises(ValueError, match="steps"):
        pretrain_reference(task, steps=0)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"eval_every": 0}, "eval_every must be an integer >= 1, got 0"),
        ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ({"updates_per_batch": 1.5}, "updates_per_batch must be an integer >= 1, got 1.5"),
        ({"max_steps": 0}, "max_steps must be an integer >= 1, got 0"),
        ({"max_seconds": 0}, "max_seconds must be a number > 0"),
        ({"max_seconds": float("nan")}, "max_seconds must be a number > 0"),
        ({"target": 1.2}, r"target must be in \[0, 1\], got 1.2"),
        ({"stop_at_target": "yes"}, "stop_at_target must be True or False, got 'yes'"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
    ],
)
def test_run_config_names_the_bad_field(change, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**change)
    RunConfig(max_seconds=float("inf"))  # no time limit is allowed


def test_train_log_evaluates_on_schedule_and_stops_at_target(task):
    torch.manual_seed(0)
    policy = Policy()
    cfg = RunConfig(max_steps=7, eval_every=3, target=1.0)
    log = TrainLog()
    assert [s for s in range(1, 8) if log.evaluate(s, 0.1 * s, 10 * s, policy, task, cfg)] == []
    assert log.step == [3, 6, 7] and log.samples == [30, 60, 70] and log.reached_step is None
    log = TrainLog()
    assert log.evaluate(3, 0.5, 30, policy, task, dataclasses.replace(cfg, target=0.0))
    assert (log.reached_step, log.reached_seconds) == (3, 0.5)
    assert TrainLog().evaluate(5, 61.0, 50, policy, task, RunConfig(target=1.0))  # out of time


def test_gradient_step_refuses_a_non_finite_loss():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    gradient_step(opt, (w**2).sum(), trainer="test", step=1)
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))
    with pytest.raises(FloatingPointError, match=r"test update 2: loss is not finite \(nan\)"):
        gradient_step(opt, (w * float("nan")).sum(), trainer="test", step=2)
    assert torch.allclose(w.detach(), torch.full((3,), 0.8))


def test_held_out_entropy_is_log_vocab_for_a_uniform_policy_and_lower_otherwise(task):
    import math

    from rlviz.agents.addition_task import ANSWER_VOCAB, Policy, held_out_entropy

    policy = Policy()
    with torch.no_grad():
        policy.head.weight.zero_()
        policy.head.bias.zero_()
    assert abs(held_out_entropy(policy, task) - math.log(ANSWER_VOCAB)) < 1e-6
    with torch.no_grad():
        policy.head.bias[3] = 5.0  # one token likely everywhere
    assert held_out_entropy(policy, task) < math.log(ANSWER_VOCAB) - 0.5
    log = TrainLog()
    log.record(0, 0.0, 0, policy, task, 0.95)
    assert log.entropy == [held_out_entropy(policy, task)]
