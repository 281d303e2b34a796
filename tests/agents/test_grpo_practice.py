"""The options of chapters 15-16 in the GRPO trainer: the practice objective
(rlviz.fn.grpo_practice.practice_objective: loss aggregation, the policy terms, clip-higher, the
dual clip, the KL in the loss) against chapter 14's objective and by hand, what it refuses, and
the config's options (dynamic sampling, the KL in the reward) in training."""

import dataclasses
import inspect

import pytest
import torch

from rlviz.agents.grpo import GRPOConfig, train_grpo
from rlviz.fn.grpo_loss import grpo_objective
from rlviz.fn.grpo_practice import practice_objective
from rlviz.fn.offpolicy import OffPolicy
from rlviz.fn.ratios import POLICY_TERMS

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


# ---------------------------------------------------------------- against chapter 14's objective
@pytest.mark.parametrize("beta", [0.0, 0.04])
def test_token_ratio_seq_mean_token_mean_is_chapter_14s_objective(beta):
    logp, logp_old, adv, mask, ref = _batch()
    mine = practice_objective(
        logp,
        logp_old,
        adv,
        mask,
        term="token",
        agg="seq-mean-token-mean",
        beta=beta,
        logp_ref_t=ref if beta > 0 else None,
    )
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


@pytest.mark.parametrize("seed", range(3))
def test_sequence_term_seq_mean_token_mean_is_the_notes_objective(seed):
    """The notes' sequence ratio on each of the answer's tokens, averaged over the tokens and
    then the answers, is chapter 14's per-answer objective (beta = 0: the notes sum the KL over
    the tokens, the aggregation averages it)."""
    logp, logp_old, adv, mask, _ = _batch(seed)
    mine = practice_objective(logp, logp_old, adv, mask, term="sequence", agg="seq-mean-token-mean")
    ch14 = grpo_objective(logp, logp_old, adv, mask, epsilon=0.2, ratio="sequence").mean()
    assert torch.allclose(mine, ch14, rtol=0, atol=1e-12)
    (g1,) = torch.autograd.grad(mine, logp)
    (g2,) = torch.autograd.grad(ch14, logp)
    assert torch.allclose(g1, g2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-sum"])
def test_dual_clip_with_a_huge_c_is_the_token_clip(agg):
    logp, logp_old, adv, mask, _ = _batch(3)
    far = (logp.detach() + 1.0).requires_grad_()  # ratios e^1.3 and more: the clip acts
    token = practice_objective(far, logp_old, adv, mask, term="token", agg=agg)
    huge = practice_objective(far, logp_old, adv, mask, term="dual-clip", agg=agg, clip_c=1e9)
    assert torch.equal(huge, token)
    (g1,) = torch.autograd.grad(token, far)
    (g2,) = torch.autograd.grad(huge, far)
    assert torch.equal(g1, g2)
    # a c the ratios pass does change it: bad tokens above c keep c A, no gradient
    low = practice_objective(far, logp_old, adv, mask, term="dual-clip", agg=agg, clip_c=1.5)
    assert float(low.detach()) > float(token.detach())


def test_clip_higher_releases_good_tokens_above_one_plus_epsilon():
    logp, logp_old, adv, mask, _ = _batch(1)
    low = practice_objective(logp, logp_old, adv.abs(), mask, term="token", agg="token-mean")
    high = practice_objective(
        logp, logp_old, adv.abs(), mask, term="token", agg="token-mean", eps_high=10.0
    )
    assert float(high.detach()) > float(low.detach())  # positive advantages: a higher cap adds


@pytest.mark.parametrize("term", POLICY_TERMS.names())
def test_every_term_has_the_reinforce_gradient_at_theta_old(term):
    logp, logp_old, adv, mask, _ = _batch(2)
    at_old = logp_old.clone().requires_grad_()
    clip_c = 3.0 if term == "dual-clip" else None
    objective = practice_objective(
        at_old, logp_old, adv, mask, term=term, agg="seq-mean-token-sum", clip_c=clip_c
    )
    (g,) = torch.autograd.grad(objective, at_old)
    scale = 1 / (mask.shape[0] * mask.shape[1])
    expected = adv[..., None] * mask * scale
    # GSPO's ratio s_i, broadcast to the answer's tokens as verl does, has ds_i = s_i/|y_i| per
    # token: summed over the |y_i| tokens it gives the token ratios' gradient at theta_old. The
    # notes' sequence ratio has d rho_i = rho_i per token: on each of the |y_i| tokens, |y_i|
    # times the token gradient when the tokens are summed.
    if term == "sequence":
        expected = expected * mask.sum(-1, keepdim=True)
    assert torch.allclose(g, expected.to(g.dtype), atol=1e-12)


def test_the_kl_in_the_loss_is_subtracted_per_token():
    logp, logp_old, adv, mask, ref = _batch(4)
    zero = torch.zeros_like(adv)
    for kl in ("k1", "k2", "k3"):
        got = practice_objective(
            logp, logp_old, zero, mask, agg="token-sum", beta=0.5, kl=kl, logp_ref_t=ref
        )
        log_rho = ref - logp
        k_t = {"k1": -log_rho, "k2": 0.5 * log_rho**2, "k3": log_rho.exp() - 1 - log_rho}[kl]
        want = -0.5 * torch.where(mask, k_t, torch.zeros_like(k_t)).sum()
        assert torch.allclose(got, want, rtol=0, atol=1e-12), kl


def test_norm_is_dr_grpo_s_constant():
    logp, logp_old, adv, mask, _ = _batch(5)
    a = practice_objective(logp, logp_old, adv, mask, agg="seq-mean-token-sum-norm", norm=6.0)
    b = practice_objective(logp, logp_old, adv, mask, agg="seq-mean-token-sum-norm", norm=3.0)
    assert torch.allclose(2 * a, b, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "change, message",
    [
        ({"term": "token", "clip_c": 3.0}, "clip_c is read by term 'dual-clip' only"),
        ({"term": "gspo", "clip_c": 3.0}, "clip_c is read by term 'dual-clip' only"),
        ({"term": "dual-clip"}, "term 'dual-clip' needs clip_c"),
        ({"term": "dual-clip", "clip_c": 1.0}, "clip_c must be > 1"),
        ({"beta": 0.0, "logp_ref_t": "ref"}, "logp_ref_t is read only when beta > 0"),
        ({"beta": 0.1}, "logp_ref_t must be given when beta > 0"),
        ({"beta": -0.1}, "beta must be >= 0"),
        ({"term": "ratio"}, "term must be one of .*'dual-clip', got 'ratio'"),
        ({"agg": "mean"}, "must be one of .*'token-sum', got 'mean'"),
        ({"kl": "k4"}, "kl must be one of"),
        ({"agg": "token-mean", "norm": 3.0}, "norm is not read by mode 'token-mean'"),
        ({"eps_low": 1.0}, "eps_low must be < 1"),
        ({"eps_high": 0.0}, "eps_high must be a finite number > 0"),
        ({"weight_t": "short"}, "weight_t must have the shape"),
    ],
)
def test_practice_objective_refuses(change, message):
    logp, logp_old, adv, mask, ref = _batch(6)
    change = {
        k: ref if v == "ref" else logp_old[..., :2] if v == "short" else v
        for k, v in change.items()
    }
    with pytest.raises(ValueError, match=message):
        practice_objective(logp, logp_old, adv, mask, **change)


# ---------------------------------------------------------------- the config's options
def test_objective_args_are_the_practice_objective_s_keywords():
    cfg = GRPOConfig(
        term="dual-clip", loss_agg="seq-mean-token-mean", clip_c=3.0, eps_high=0.28, beta=0.04
    )
    assert cfg.objective_args == {
        "term": "dual-clip",
        "agg": "seq-mean-token-mean",
        "eps_low": 0.2,
        "eps_high": 0.28,
        "clip_c": 3.0,
        "beta": 0.04,
        "kl": "k3",
    }
    keywords = inspect.signature(practice_objective).parameters
    assert all(keywords[k].kind is inspect.Parameter.KEYWORD_ONLY for k in cfg.objective_args)
    # the notes' sequence term is a registered term: it takes an aggregation too
    assert GRPOConfig(loss_agg="token-mean").objective_args["term"] == "sequence"
    # the KL in the reward: none in the loss
    moved = dataclasses.replace(cfg, kl_placement="reward")
    assert moved.objective_args["beta"] == 0.0 and moved.beta == 0.04


@pytest.mark.parametrize(
    "change, message",
    [
        # without loss_agg: chapter 14's objective, the practice options refused (named)
        ({"term": "gspo"}, "without loss_agg .*term must be one of .*got term='gspo'"),
        ({"term": "dual-clip", "clip_c": 3.0}, "without loss_agg .*term='dual-clip', clip_c=3.0"),
        ({"eps_high": 0.28}, "without loss_agg .*eps_high=0.28"),
        ({"clip_c": 3.0}, "without loss_agg .*clip_c=3.0"),
        ({"dynamic_sampling": True}, "without loss_agg .*dynamic_sampling=True"),
        ({"beta": 0.04, "kl_placement": "reward"}, "without loss_agg .*kl_placement='reward'"),
        (
            {"off_policy": OffPolicy(correction="is")},
            "without loss_agg .*off_policy=OffPolicy",
        ),
        # with loss_agg
        ({"loss_agg": "mean", "term": "token"}, "loss_agg must be one of .*got 'mean'"),
        (
            {"loss_agg": "token-mean", "term": "token", "length_norm": "group"},
            "length_norm must be None with loss_agg",
        ),
        ({"loss_agg": "token-mean", "term": "token", "eps_high": -1.0}, "eps_high"),
        ({"loss_agg": "token-mean", "term": "token", "clip_c": 3.0}, "clip_c is set exactly"),
        ({"loss_agg": "token-mean", "term": "dual-clip"}, "clip_c is set exactly"),
        ({"loss_agg": "token-mean", "term": "dual-clip", "clip_c": 1.0}, "clip_c must be a finite"),
        (
            {"loss_agg": "token-mean", "term": "token", "kl_placement": "reward"},
            "kl_placement='reward' needs beta > 0",
        ),
        ({"dynamic_sampling": 1, "loss_agg": "token-mean"}, "dynamic_sampling must be True or"),
    ],
)
def test_config_names_the_bad_option(change, message):
    with pytest.raises(ValueError, match=message):
        GRPOConfig(**change)


@pytest.mark.parametrize(
    "change",
    [
        {"term": "token", "loss_agg": "token-mean", "eps_high": 0.28, "dynamic_sampling": True},
        {"term": "gspo", "loss_agg": "seq-mean-token-mean"},
        {"term": "cispo", "loss_agg": "token-mean", "eps_high": 1.0},
        {"term": "token", "loss_agg": "token-sum"},
        {"term": "token", "loss_agg": "token-mean", "beta": 0.04, "kl_placement": "reward"},
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


def test_kl_in_the_reward_is_not_the_kl_in_the_loss(setup):
    task, ref = setup
    base = dataclasses.replace(SHORT, term="token", loss_agg="token-mean", beta=0.5)
    p_loss, _ = train_grpo(task, ref, base)
    p_reward, _ = train_grpo(task, ref, dataclasses.replace(base, kl_placement="reward"))
    assert not all(torch.equal(a, b) for a, b in zip(p_loss.parameters(), p_reward.parameters()))
