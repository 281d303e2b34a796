"""Chapter 17's options in the GRPO trainer: a sampler that is not the learner
(``sampler_delta``) and the off-policy weight of each token (``off_policy``, an
:class:`rlviz.fn.offpolicy.OffPolicy`), built from :mod:`rlviz.fn.offpolicy`."""

import dataclasses
import math

import pytest
import torch

from rlviz.agents.addition_task import ANSWER_VOCAB, EOS, MAX_LEN, Policy, sample_answers
from rlviz.agents.grpo import (
    GRPOConfig,
    group_log_probs,
    offpolicy_weights,
    sampler_bias,
    train_grpo,
)
from rlviz.fn.grpo_practice import practice_objective
from rlviz.fn.offpolicy import OffPolicy, correction_weights, importance_weights

SHORT = GRPOConfig(
    max_steps=3,
    prompts_per_step=4,
    group_size=4,
    eval_every=3,
    stop_at_target=False,
    term="token",
    loss_agg="token-mean",
)


def test_the_sampler_bias_steers_generation_and_its_log_probs():
    torch.manual_seed(0)
    policy = Policy()
    prompts = torch.tensor([[1, 2], [3, 4], [5, 6]])
    bias = torch.zeros(MAX_LEN, ANSWER_VOCAB)
    bias[0, 7] = 60.0  # the sampler all but always writes 7 first
    tokens, mask = policy.generate(
        prompts, generator=torch.Generator().manual_seed(0), logit_bias=bias
    )
    assert tokens[:, 0].tolist() == [7, 7, 7] and mask[:, 0].all()
    with torch.no_grad():
        mu = policy.teacher(prompts, tokens, bias)[0]
        pi = policy.teacher(prompts, tokens)[0]
    assert torch.allclose(mu[:, 0], torch.zeros(3), atol=1e-6)  # mu(7) = 1
    assert (pi[:, 0] < -0.5).all()  # the learner itself is far from writing 7 for sure
    # the other positions carry no bias: the two agree there
    assert torch.equal(mu[:, 1:], pi[:, 1:])


def test_generate_refuses_a_bias_of_the_wrong_shape():
    with pytest.raises(ValueError, match="logit_bias must have shape"):
        Policy().generate(torch.tensor([[1, 2]]), logit_bias=torch.zeros(ANSWER_VOCAB))


def test_sampler_bias_is_delta_times_a_seeded_table():
    one, two = sampler_bias(1.0, seed=3), sampler_bias(2.0, seed=3)
    assert one.shape == (MAX_LEN, ANSWER_VOCAB)
    assert torch.equal(2 * one, two)
    assert not torch.equal(one, sampler_bias(1.0, seed=4))
    assert torch.equal(sampler_bias(0.0), torch.zeros(MAX_LEN, ANSWER_VOCAB))
    assert EOS < ANSWER_VOCAB  # the end token can be biased too


def _batch(seed=0, B=2, G=3, L=3):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, L + 1, (B, G), generator=g)
    mask = torch.arange(L)[None, None, :] < lengths[..., None]
    logp_old = -torch.rand(B, G, L, generator=g, dtype=torch.float64) * 2
    adv = torch.randn(B, G, generator=g, dtype=torch.float64)
    return logp_old, adv, mask, g


def test_the_weight_scales_each_tokens_gradient_at_theta_old():
    logp_old, adv, mask, g = _batch()
    weight = torch.rand(logp_old.shape, generator=g, dtype=torch.float64) * 3
    args = dict(dataclasses.replace(SHORT, loss_agg="seq-mean-token-sum").objective_args)
    at_old = logp_old.clone().requires_grad_()
    (grad,) = torch.autograd.grad(
        practice_objective(at_old, logp_old, adv, mask, **args, weight_t=weight), at_old
    )
    # d/dlogp of w * min(r A, clip(r) A) at r = 1 is w * A, on answer tokens only, and
    # seq-mean-token-sum divides by the number of answers
    n = mask.shape[0] * mask.shape[1]
    assert torch.allclose(grad, weight * adv[..., None] * mask / n, atol=1e-12)
    with pytest.raises(ValueError, match="weight_t must have the shape"):
        practice_objective(at_old, logp_old, adv, mask, **args, weight_t=weight[..., :2])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sampler_delta": -0.1}, "sampler_delta must be a finite number >= 0"),
        ({"sampler_delta": math.nan}, "sampler_delta must be a finite number >= 0"),
        ({"sampler_delta": True}, "sampler_delta must be a finite number >= 0"),
        ({"off_policy": "tis"}, "off_policy must be an rlviz.fn.offpolicy.OffPolicy"),
        (
            {"off_policy": OffPolicy(correction="tis", cap=2.0), "loss_agg": None},
            "without loss_agg .*off_policy=OffPolicy",
        ),
    ],
)
def test_config_names_the_bad_option(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SHORT, **change)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"correction": "clip"}, "correction must be one of"),
        ({"correction": "tis", "level": "group", "cap": 2.0}, "level must be one of"),
        ({"correction": "tis", "cap": 0.0}, "cap must be > 0"),
        ({"correction": "tis"}, "needs a finite cap"),
        ({"correction": "is", "cap": 1e-9}, "'is' is not capped"),
    ],
)
def test_a_bad_off_policy_is_refused_before_the_config(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SHORT, off_policy=OffPolicy(**kwargs))


def test_offpolicy_weights_of_the_learner_as_sampler(setup):
    task, ref = setup
    batch = sample_answers(ref, task, 3, 4, torch.Generator().manual_seed(0))
    logp_old = group_log_probs(ref, batch.prompts, batch.tokens, 4)
    assert offpolicy_weights(ref, batch, logp_old, OffPolicy(), None) == (None, 0)
    mask = batch.mask.view(logp_old.shape)
    bias = sampler_bias(2.0, seed=1)
    for off in (
        OffPolicy(correction="is", level="sequence"),
        OffPolicy(correction="tis", level="token", cap=1.5),
    ):
        # no bias: the sampler is the learner, every importance weight is 1
        w, n = offpolicy_weights(ref, batch, logp_old, off, None)
        assert torch.allclose(w, torch.ones_like(w), rtol=0, atol=1e-6) and n == 0
        # a biased sampler: the weight of fn.offpolicy for the sampler's log-probabilities
        w, n = offpolicy_weights(ref, batch, logp_old, off, bias)
        logp_mu = group_log_probs(ref, batch.prompts, batch.tokens, 4, bias)
        want = correction_weights(logp_old, logp_mu, mask, off.correction, off.level, off.cap)
        torch.testing.assert_close(w, want, rtol=0, atol=0)
        rho = importance_weights(logp_old, logp_mu, mask, off.level)
        assert n == int(((rho > off.cap) & mask).sum())  # the tokens the cap changed
        assert (n > 0) == (off.correction == "tis")


def test_on_policy_importance_weights_are_one_so_the_run_is_unchanged(setup):
    """With the learner as the sampler every weight is exactly 1: the corrected run is the
    uncorrected one, bit for bit (a wrong weight, e.g. old/ref or a shifted index, breaks it)."""
    task, ref = setup
    _, plain = train_grpo(task, ref, SHORT)
    cfg = dataclasses.replace(SHORT, off_policy=OffPolicy(correction="is", level="sequence"))
    _, corrected = train_grpo(task, ref, cfg)
    assert plain.held_out == corrected.held_out and plain.train == corrected.train
    assert corrected.capped == 0.0 and plain.capped is None


def test_a_perturbed_sampler_changes_the_run_and_the_cap_binds(setup):
    task, ref = setup
    naive = dataclasses.replace(SHORT, sampler_delta=3.0)
    _, on = train_grpo(task, ref, SHORT)
    _, off = train_grpo(task, ref, naive)
    assert on.held_out[-1] != off.held_out[-1]
    # a cap below every weight truncates every token (token level); a cap above every weight
    # truncates none
    for cap, share in ((1e-9, 1.0), (1e9, 0.0)):
        tis = OffPolicy(correction="tis", cap=cap)
        _, run = train_grpo(task, ref, dataclasses.replace(naive, off_policy=tis))
        assert run.capped == share, cap
    # plain IS has no cap (OffPolicy refuses one): no weight is counted as capped
    _, plain_is = train_grpo(
        task, ref, dataclasses.replace(naive, off_policy=OffPolicy(correction="is"))
    )
    assert plain_is.capped == 0.0
    # seeded: the same config gives the same run
    _, again = train_grpo(task, ref, naive)
    assert again.held_out == off.held_out
