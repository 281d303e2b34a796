"""Chapter 17's options in the GRPO trainer: a sampler that is not the learner
(``sampler_delta``) and the off-policy weight of each token (``correction``, ``correction_level``,
``correction_cap``), built from :mod:`rlviz.fn.offpolicy`."""

import dataclasses
import math

import pytest
import torch

from rlviz.agents.addition_task import ANSWER_VOCAB, EOS, MAX_LEN, Policy
from rlviz.agents.grpo import GRPOConfig, practice_objective, sampler_bias, train_grpo

SHORT = GRPOConfig(
    max_steps=3,
    prompts_per_step=4,
    group_size=4,
    eval_every=3,
    stop_at_target=False,
    ratio="token",
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
    cfg = dataclasses.replace(SHORT, loss_agg="seq-mean-token-sum")
    at_old = logp_old.clone().requires_grad_()
    (grad,) = torch.autograd.grad(
        practice_objective(at_old, logp_old, adv, mask, cfg, weight_t=weight), at_old
    )
    # d/dlogp of w * min(r A, clip(r) A) at r = 1 is w * A, on answer tokens only, and
    # seq-mean-token-sum divides by the number of answers
    n = mask.shape[0] * mask.shape[1]
    assert torch.allclose(grad, weight * adv[..., None] * mask / n, atol=1e-12)
    with pytest.raises(ValueError, match="weight_t must have the shape"):
        practice_objective(at_old, logp_old, adv, mask, cfg, weight_t=weight[..., :2])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"sampler_delta": -0.1}, "sampler_delta must be a finite number >= 0"),
        ({"sampler_delta": math.nan}, "sampler_delta must be a finite number >= 0"),
        ({"correction": "clip"}, "correction must be one of"),
        ({"correction_level": "group"}, "correction_level must be one of"),
        ({"correction": "tis", "correction_cap": 0.0}, "correction_cap must be a number > 0"),
        ({"correction": "tis", "loss_agg": None, "ratio": "sequence"}, "needs loss_agg"),
    ],
)
def test_config_names_the_bad_option(change, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(SHORT, **change)


def test_on_policy_importance_weights_are_one_so_the_run_is_unchanged(setup):
    """With the learner as the sampler every weight is exactly 1: the corrected run is the
    uncorrected one, bit for bit (a wrong weight, e.g. old/ref or a shifted index, breaks it)."""
    task, ref = setup
    _, plain = train_grpo(task, ref, SHORT)
    cfg = dataclasses.replace(SHORT, correction="is", correction_level="sequence")
    _, corrected = train_grpo(task, ref, cfg)
    assert plain.held_out == corrected.held_out and plain.train == corrected.train
    assert corrected.capped == 0.0 and plain.capped is None


def test_a_perturbed_sampler_changes_the_run_and_the_cap_binds(setup):
    task, ref = setup
    naive = dataclasses.replace(SHORT, sampler_delta=3.0)
    _, on = train_grpo(task, ref, SHORT)
    _, off = train_grpo(task, ref, naive)
    assert on.held_out[-1] != off.held_out[-1]
    # a cap below every weight truncates every token (token level); no cap truncates none
    _, tiny = train_grpo(
        task, ref, dataclasses.replace(naive, correction="tis", correction_cap=1e-9)
    )
    _, none = train_grpo(task, ref, dataclasses.replace(naive, correction="tis"))
    assert tiny.capped == 1.0 and none.capped == 0.0
    # plain IS has no cap to act: a finite correction_cap changes no weight
    _, plain_is = train_grpo(
        task, ref, dataclasses.replace(naive, correction="is", correction_cap=1e-9)
    )
    assert plain_is.capped == 0.0
    # seeded: the same config gives the same run
    _, again = train_grpo(task, ref, naive)
    assert again.held_out == off.held_out
