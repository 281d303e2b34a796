"""rlviz's GRPO functions against verl's own code (``verl.trainer.ppo.core_algos`` and
``verl.trainer.ppo.rollout_corr_helper``), on the same float64 tensors.

verl works on flat ``(bs, L)`` batches (row ``b*G + i`` is answer ``i`` of group ``b``, the group
given by ``index``) and returns losses to *minimise*; rlviz works on ``(B, G, L)`` and returns
objectives to *maximise*, so the rlviz side is negated. Values and gradients (with respect to
the current log-probabilities) must agree to ``TOL`` (conftest). Differences by design are
pinned: each has its own test that states the formula verl uses instead.

Pinned differences:

* ``seq-mean-token-mean``: verl divides a sequence's token sum by ``|y_i| + 1e-8`` (a relative
  change of about 1e-8, above float precision): the rlviz side multiplies by
  ``|y_i| / (|y_i| + 1e-8)`` (:func:`verl_seq_factor`) and is then equal to float precision;
* dual-clip PPO (verl's ``clip_ratio_c = 3``, always on in ``vanilla``): for ``A < 0`` the loss is
  capped at ``-c A``; the batches keep every ratio below ``c`` except in the test that pins it;
* ``k3`` (``low_var_kl``): verl clamps the log-ratio to [-20, 20] and the estimate to [-10, 10];
  ``k1+``/``k3+``: the value of k1/k3 with the gradient of k2 (straight-through);
* rollout correction weights are 0 on padding in verl, 1 in rlviz (padding never enters a loss).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from verl.trainer.ppo import core_algos as ca
from verl.trainer.ppo import rollout_corr_helper as rc
from verl.workers.config import ActorConfig
from verl.workers.config.actor import PolicyLossConfig

from rlviz.fn import grpo_aggregation as agg
from rlviz.fn import grpo_loss as gl
from rlviz.fn import offpolicy as op
from rlviz.fn import ratios as rt
from rlviz.fn.grpo_practice import REGISTRIES, practice_objective
from rlviz.fn.registry import NotInLibrary

LIB = "verl"
TOL = 1e-12  # as in conftest
MODES = agg.AGG_MODES  # rlviz's names are verl's loss_agg_mode names
CLIPS = [(0.2, 0.2), (0.2, 0.28)]  # symmetric PPO/GRPO; DAPO's clip-higher


def _config_kwargs(eps_low=0.2, eps_high=0.2, **global_batch_info) -> dict:
    return dict(
        strategy="fsdp",
        rollout_n=4,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio=eps_low,
        clip_ratio_low=eps_low,
        clip_ratio_high=eps_high,
        global_batch_info=dict(global_batch_info),
    )


def config(eps_low=0.2, eps_high=0.2, **global_batch_info) -> ActorConfig:
    return ActorConfig(**_config_kwargs(eps_low, eps_high, **global_batch_info))


def verl_seq_factor(b, mode: str) -> torch.Tensor:
    """(B, G, 1): |y_i| / (|y_i| + 1e-8) in seq-mean-token-mean (verl's 1e-8), else 1."""
    n = b.mask_t.to(torch.float64).sum(-1, keepdim=True)
    return n / (n + 1e-8) if mode == "seq-mean-token-mean" else torch.ones_like(n)


def index(b) -> np.ndarray:
    return np.repeat(np.arange(b.B), b.G)


def leaf(x: torch.Tensor) -> torch.Tensor:
    return x.detach().clone().requires_grad_(True)


def grad(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    (g,) = torch.autograd.grad(loss, x)
    return g


def verl_policy_loss(fn, b, adv_t, mode: str, cfg, logp_old_t=None, **kwargs):
    """verl's policy loss ``fn`` (``compute_policy_loss_*``) on ``b``'s flattened tensors, its
    current log-probabilities a fresh leaf: ``(loss, that leaf, a leaf of the same values in
    rlviz's (B, G, L) shape)``. ``logp_old_t``: the old log-probabilities (``b.logp_old_t``)."""
    x_theirs, x_ours = leaf(b.flat(b.logp_t)), leaf(b.logp_t)
    old = b.logp_old_t if logp_old_t is None else logp_old_t
    mask = b.flat(b.mask_t).double()
    loss, _ = fn(b.flat(old), x_theirs, b.flat(adv_t), mask, mode, cfg, **kwargs)
    return loss, x_theirs, x_ours


def assert_grads_close(assert_close, b, name, case, ours, x_ours, theirs, x_theirs, tol=None):
    """The gradients of both losses with respect to their own leaf, in verl's flat shape."""
    extra = () if tol is None else (tol,)
    assert_close(LIB, name, case, b.flat(grad(ours, x_ours)), grad(theirs, x_theirs), *extra)


# ---------------------------------------------------------------- aggregation
@pytest.mark.parametrize("mode", MODES)
def test_agg_loss(batch, mode, assert_close):
    x_t = torch.randn(
        batch.mask_t.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    m = batch.flat(batch.mask_t).to(torch.float64)
    theirs = ca.agg_loss(batch.flat(x_t), m, mode)
    ours = agg.aggregate(x_t * verl_seq_factor(batch, mode), batch.mask_t, mode)
    assert_close(LIB, "agg_loss ~ aggregate", mode, ours, theirs)
    if mode == "seq-mean-token-sum-norm":  # Dr. GRPO's constant C: loss_scale_factor ~ norm
        theirs = ca.agg_loss(batch.flat(x_t), m, mode, loss_scale_factor=64)
        ours = agg.aggregate(x_t, batch.mask_t, mode, norm=64)
        assert_close(LIB, "agg_loss ~ aggregate", mode + ", C=64", ours, theirs)


def test_agg_loss_token_sum(batch, assert_close):
    """verl's token-sum: rlviz's seq-mean-token-sum with n_seqs = 1."""
    x_t = torch.randn(
        batch.mask_t.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2)
    )
    theirs = ca.agg_loss(batch.flat(x_t), batch.flat(batch.mask_t).double(), "token-sum")
    ours = agg.aggregate(x_t, batch.mask_t, "seq-mean-token-sum", n_seqs=1)
    assert_close(LIB, "agg_loss ~ aggregate", "token-sum", ours, theirs)


def test_agg_loss_seq_mean_token_mean_epsilon_pinned(batch):
    """Without the factor the two differ by verl's 1e-8 in the token count: more than TOL,
    less than 1e-7 (relative)."""
    x_t = torch.randn(
        batch.mask_t.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3)
    )
    mode = "seq-mean-token-mean"
    theirs = ca.agg_loss(batch.flat(x_t), batch.flat(batch.mask_t).double(), mode)
    ours = agg.aggregate(x_t, batch.mask_t, mode)
    assert 1e-13 < float((ours - theirs).abs()) < 1e-7 * float(ours.abs())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("global_counts", [True, False])
def test_agg_loss_micro_batches(mode, global_counts, assert_close, make_batch):
    """Gradient accumulation over micro-batches of 1 and 2 groups: verl's agg_loss per
    micro-batch (with the global batch's N and T, or with each micro-batch's own) ~ rlviz's
    accumulated."""
    b = make_batch(4, B=3)
    sizes = [1, 2]
    x_t = torch.randn(
        b.mask_t.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(5)
    )
    kw = {}
    if global_counts:
        kw = {"global_batch_size": b.B * b.G, "batch_num_tokens": b.mask_t.sum()}
    parts = [
        ca.agg_loss(x.reshape(-1, x.shape[-1]), m.reshape(-1, m.shape[-1]).double(), mode, **kw)
        for x, m in zip(torch.split(x_t, sizes), torch.split(b.mask_t, sizes))
    ]
    theirs = torch.stack(parts).sum() if global_counts else torch.stack(parts).mean()
    x_ours = x_t * verl_seq_factor(b, mode)
    ours = agg.accumulated(x_ours, b.mask_t, mode, sizes, global_counts=global_counts)
    case = f"{mode}, micro-batches, {'global' if global_counts else 'local'} counts"
    assert_close(LIB, "agg_loss ~ accumulated", case, ours, theirs)
    if global_counts:  # and so the full batch's loss
        assert_close(
            LIB, "agg_loss ~ aggregate", case, agg.aggregate(x_ours, b.mask_t, mode), theirs
        )


# ---------------------------------------------------------------- policy losses
def _adv_t(b) -> torch.Tensor:
    adv = gl.group_advantages(b.r, "std")
    return adv[..., None].expand(b.mask_t.shape)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("eps", CLIPS, ids=["sym", "clip-higher"])
def test_vanilla_policy_loss(batch, mode, eps, assert_close):
    lo, hi = eps
    adv_t = _adv_t(batch)
    theirs, x_theirs, x_ours = verl_policy_loss(
        ca.compute_policy_loss_vanilla, batch, adv_t, mode, config(lo, hi)
    )
    rho_t = gl.token_ratios(x_ours, batch.logp_old_t, batch.mask_t)
    per_tok = rt.asymmetric_clipped_surrogate(rho_t, adv_t, lo, hi)
    ours = -agg.aggregate(per_tok * verl_seq_factor(batch, mode), batch.mask_t, mode)
    case = f"{mode}, eps=({lo}, {hi})"
    assert_close(
        LIB,
        "compute_policy_loss_vanilla ~ asymmetric_clipped_surrogate+aggregate",
        case,
        ours,
        theirs,
    )
    assert_grads_close(
        assert_close,
        batch,
        "grad compute_policy_loss_vanilla ~ grad rlviz",
        case,
        ours,
        x_ours,
        theirs,
        x_theirs,
    )


@pytest.mark.parametrize("mode", ["seq-mean-token-mean", "token-mean"])
def test_vanilla_policy_loss_vs_grpo_objective(mode, assert_close, make_batch):
    """Chapter 14's grpo_objective(ratio="token"): its length_norm "sequence" is verl's
    seq-mean-token-mean; "group" (per-group token mean) is token-mean for a batch of one group."""
    b = make_batch(6, B=3 if mode == "seq-mean-token-mean" else 1)
    adv = gl.group_advantages(b.r, "std")
    adv_t = adv[..., None].expand(b.mask_t.shape)
    theirs, x_theirs, x_ours = verl_policy_loss(
        ca.compute_policy_loss_vanilla, b, adv_t, mode, config()
    )
    # verl's 1e-8 (seq-mean-token-mean) enters through A: the clipped surrogate is linear in
    # a positive scale of A
    f = verl_seq_factor(b, mode)[..., 0]
    norm = "sequence" if mode == "seq-mean-token-mean" else "group"
    obj = gl.grpo_objective(
        x_ours, b.logp_old_t, adv * f, b.mask_t, epsilon=0.2, ratio="token", length_norm=norm
    )
    ours = -obj.mean()
    tol = 1e-12
    assert_close(
        LIB, "compute_policy_loss_vanilla ~ grpo_objective(token)", mode, ours, theirs, tol
    )
    assert_grads_close(
        assert_close,
        b,
        "grad compute_policy_loss_vanilla ~ grad grpo_objective(token)",
        mode,
        ours,
        x_ours,
        theirs,
        x_theirs,
        tol,
    )


def test_vanilla_dual_clip_pinned(assert_close, make_batch):
    """verl's dual clip (clip_ratio_c = 3): for A < 0 the per-token loss is
    min(-c A, -surrogate), i.e. rlviz's objective max(c A, surrogate). Ratios up to e^1.5."""
    b = make_batch(7, spread=1.5)
    adv_t = _adv_t(b)
    rho_t = gl.token_ratios(b.logp_t, b.logp_old_t, b.mask_t)
    assert bool(((rho_t > 3) & (adv_t < 0) & b.mask_t).any())  # the cap binds somewhere
    mode = "token-mean"
    theirs, _, _ = verl_policy_loss(ca.compute_policy_loss_vanilla, b, adv_t, mode, config())
    surr = rt.asymmetric_clipped_surrogate(rho_t, adv_t, 0.2, 0.2)
    dual = torch.where(adv_t < 0, torch.maximum(3.0 * adv_t, surr), surr)
    assert_close(
        LIB,
        "compute_policy_loss_vanilla ~ rlviz + dual clip",
        "c=3",
        -agg.aggregate(dual, b.mask_t, mode),
        theirs,
    )
    plain = -agg.aggregate(surr, b.mask_t, mode)
    assert float((plain - theirs).abs()) > 1e-3  # and without it they differ


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("eps", [(3e-4, 4e-4), (0.2, 0.28)], ids=["gspo-paper", "wide"])
def test_gspo_policy_loss(batch, mode, eps, assert_close):
    """verl's gspo: the token-level ratio sg[s_i] pi_t / sg[pi_t], s_i = rlviz's gspo_ratios.
    Values in every mode; in seq-mean-token-mean (GSPO's own) the gradient equals that of
    rlviz's per-answer clipped surrogate of s_i, averaged over answers."""
    lo, hi = eps
    adv = gl.group_advantages(batch.r, "std")
    adv_t = adv[..., None].expand(batch.mask_t.shape)
    theirs, x_theirs, x_ours = verl_policy_loss(
        ca.compute_policy_loss_gspo, batch, adv_t, mode, config(lo, hi)
    )
    s = rt.gspo_ratios(x_ours, batch.logp_old_t, batch.mask_t)  # (B, G)
    per_seq = rt.asymmetric_clipped_surrogate(s, adv, lo, hi)
    per_tok = per_seq[..., None].expand(batch.mask_t.shape)
    f = verl_seq_factor(batch, mode)
    ours = -agg.aggregate(per_tok * f, batch.mask_t, mode)
    case = f"{mode}, eps=({lo}, {hi})"
    assert_close(
        LIB,
        "compute_policy_loss_gspo ~ gspo_ratios+asymmetric_clipped_surrogate",
        case,
        ours,
        theirs,
    )
    if mode == "seq-mean-token-mean":
        ours_seq = -(per_seq * f[..., 0]).mean()
        assert_grads_close(
            assert_close,
            batch,
            "grad compute_policy_loss_gspo ~ grad rlviz (per answer)",
            case,
            ours_seq,
            x_ours,
            theirs,
            x_theirs,
        )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("eps", [(0.2, 0.28), (0.9, 4.0)], ids=["narrow", "wide"])
def test_cispo_policy_loss(batch, mode, eps, assert_close):
    lo, hi = eps
    adv_t = _adv_t(batch)
    theirs, x_theirs, x_ours = verl_policy_loss(
        ca.compute_policy_loss_cispo, batch, adv_t, mode, config(lo, hi)
    )
    per_tok = rt.cispo_surrogate(x_ours, batch.logp_old_t, adv_t, lo, hi)
    ours = -agg.aggregate(per_tok * verl_seq_factor(batch, mode), batch.mask_t, mode)
    case = f"{mode}, eps=({lo}, {hi})"
    assert_close(LIB, "compute_policy_loss_cispo ~ cispo_surrogate+aggregate", case, ours, theirs)
    assert_grads_close(
        assert_close,
        batch,
        "grad compute_policy_loss_cispo ~ grad rlviz",
        case,
        ours,
        x_ours,
        theirs,
        x_theirs,
    )


# ---------------------------------------------------------------- KL
KL_NAMES = {"k1": ("k1", "kl"), "k2": ("k2", "mse"), "k3": ("k3", "low_var_kl")}


@pytest.mark.parametrize("ours_name", gl.KL_ESTIMATORS.names())
def test_kl_penalty(batch, ours_name, assert_close):
    for name in KL_NAMES[ours_name]:
        x_theirs, x_ours = leaf(batch.logp_t), leaf(batch.logp_t)
        theirs = ca.kl_penalty(x_theirs, batch.logp_ref_t, name)
        ours = gl.kl_estimate(ours_name, x_ours, batch.logp_ref_t)
        assert_close(LIB, "kl_penalty ~ kl_estimate", name, ours, theirs)
        assert_close(
            LIB,
            "grad kl_penalty ~ grad kl_estimate",
            name,
            grad(ours.sum(), x_ours),
            grad(theirs.sum(), x_theirs),
        )


@pytest.mark.parametrize("name", ["k1+", "k3+"])
def test_kl_penalty_straight_through_pinned(batch, name, assert_close):
    """k1+, k3+: the value of k1/k3, the gradient of k2 (whose gradient is that of the KL)."""
    x_theirs, x2 = leaf(batch.logp_t), leaf(batch.logp_t)
    theirs = ca.kl_penalty(x_theirs, batch.logp_ref_t, name)
    assert_close(
        LIB,
        "kl_penalty(+) ~ value of kl_estimate",
        name,
        gl.kl_estimate(name[:2], batch.logp_t, batch.logp_ref_t),
        theirs,
    )
    assert_close(
        LIB,
        "grad kl_penalty(+) ~ grad kl_k2",
        name,
        grad(gl.kl_k2(x2, batch.logp_ref_t).sum(), x2),
        grad(theirs.sum(), x_theirs),
    )


def test_kl_k3_clamp_pinned(assert_close):
    """verl's k3 clamps log(pi_ref/pi) to [-20, 20] and the estimate to [-10, 10]."""
    logp = torch.tensor([-1.0, -1.0, -30.0, -1.0], dtype=torch.float64)
    ref = torch.tensor([-1.5, -14.0, -1.0, 20.0], dtype=torch.float64)
    theirs = ca.kl_penalty(logp, ref, "k3")
    log_rho = torch.clamp(ref - logp, -20, 20)
    pinned = torch.clamp(gl.kl_k3(torch.zeros_like(log_rho), log_rho), -10, 10)
    assert_close(LIB, "kl_penalty ~ clamp(kl_k3)", "k3 clamps", pinned, theirs)
    assert float((gl.kl_k3(logp, ref) - theirs).abs().max()) > 1.0


def test_kl_in_reward(batch, assert_close):
    """compute_rewards: the KL in the reward, token score - beta * (log pi_old - log pi_ref),
    i.e. rlviz's k1 at the sampling policy."""
    scores = torch.zeros_like(batch.logp_t)
    scores[..., -1] = batch.r
    theirs = ca.compute_rewards(
        batch.flat(scores), batch.flat(batch.logp_old_t), batch.flat(batch.logp_ref_t), 0.05
    )
    ours = scores - 0.05 * gl.kl_k1(batch.logp_old_t, batch.logp_ref_t)
    assert_close(LIB, "compute_rewards ~ r - beta kl_k1", "beta=0.05", batch.flat(ours), theirs)


# ---------------------------------------------------------------- advantages
def _token_rewards(b) -> torch.Tensor:
    """The outcome reward on each answer's last token (verl sums the row)."""
    last = b.mask_t.sum(-1) - 1
    out = torch.zeros(b.mask_t.shape, dtype=torch.float64)
    out.scatter_(-1, last[..., None], b.r[..., None])
    return b.flat(out)


@pytest.mark.parametrize("fn", ["grpo", "grpo_vectorized"])
@pytest.mark.parametrize("norm", [True, False], ids=["std", "no-std"])
def test_grpo_advantage(batch, fn, norm, assert_close):
    est = ca.get_adv_estimator_fn(fn)
    m = batch.flat(batch.mask_t).double()
    theirs, _ = est(
        _token_rewards(batch), m, index(batch), epsilon=1e-4, norm_adv_by_std_in_grpo=norm
    )
    ours = gl.group_advantages(batch.r, "std" if norm else "mean", std_eps=1e-4)
    ours2 = gl.group_advantages(batch.r[None], "std" if norm else "mean", std_eps=1e-4)[0]
    case = f"{fn}, {'std' if norm else 'no std (Dr. GRPO)'}"
    if fn == "grpo_vectorized":
        case += ", float32 statistics"
    # grpo_vectorized computes the group statistics in float32 (verl.utils.group_mean_std,
    # one-pass sum of squares): pinned at float32 precision
    tol = 1e-6 if fn == "grpo_vectorized" else TOL
    for pair, x in (("group_advantages", ours), ("group_advantages (..., B, G)", ours2)):
        x = batch.flat(x[..., None] * batch.mask_t)
        assert_close(LIB, f"{fn} advantage ~ {pair}", case, x, theirs, tol)
    if fn == "grpo_vectorized":  # and it is not float64
        assert float((x - theirs).abs().max()) > 1e-10


@pytest.mark.parametrize("fn", ["rloo", "rloo_vectorized"])
def test_rloo_advantage(batch, fn, assert_close):
    est = ca.get_adv_estimator_fn(fn)
    theirs, _ = est(_token_rewards(batch), batch.flat(batch.mask_t).double(), index(batch))
    ours = gl.group_advantages(batch.r, "loo")
    loop = torch.as_tensor(agg.rloo_advantages_reference(batch.r.numpy()))
    assert_close(
        LIB,
        "rloo advantage ~ group_advantages(loo)",
        fn,
        batch.flat(ours[..., None] * batch.mask_t),
        theirs,
    )
    assert_close(
        LIB,
        "rloo advantage ~ rloo_advantages_reference",
        fn,
        batch.flat(loop[..., None] * batch.mask_t),
        theirs,
    )


# ---------------------------------------------------------------- off-policy correction
def _sampler(b) -> torch.Tensor:
    """A sampler's log-probs within 0.6 of the learner's (token ratios in about (0.55, 1.8))."""
    g = torch.Generator().manual_seed(11)
    return b.logp_t + 0.6 * (2 * torch.rand(b.mask_t.shape, generator=g, dtype=torch.float64) - 1)


@pytest.mark.parametrize("level", op.IS_LEVELS)
@pytest.mark.parametrize("cap", [1.2, 2.0, 1e6])
def test_rollout_is_truncated(batch, level, cap, assert_close):
    mu = _sampler(batch)
    m = batch.flat(batch.mask_t).double()
    theirs, _ = rc.compute_rollout_correction_weights(batch.flat(batch.logp_t - mu), m, level, cap)
    ours = op.correction_weights(batch.logp_t, mu, batch.mask_t, "tis", level, cap) * batch.mask_t
    assert_close(
        LIB,
        "compute_rollout_correction_weights ~ correction_weights(tis)",
        f"{level}, C={cap}",
        batch.flat(ours),
        theirs,
    )


@pytest.mark.parametrize("level", op.IS_LEVELS)
@pytest.mark.parametrize("cap", [1.2, 2.0])
def test_rollout_is_masked(batch, level, cap, assert_close):
    """IcePop ("lower_upper"): with a lower bound below every weight it is rlviz's masked IS."""
    mu = _sampler(batch)
    m = batch.flat(batch.mask_t).double()
    theirs, _ = rc.compute_rollout_correction_weights(
        batch.flat(batch.logp_t - mu), m, level, f"1e-9_{cap}"
    )
    ours = op.correction_weights(batch.logp_t, mu, batch.mask_t, "mis", level, cap) * batch.mask_t
    assert bool((ours == 0).any() & batch.mask_t.any())
    assert_close(
        LIB,
        "compute_rollout_correction_weights ~ correction_weights(mis)",
        f"{level}, C={cap}",
        batch.flat(ours),
        theirs,
    )


@pytest.mark.parametrize("level", op.IS_LEVELS)
def test_corrected_policy_gradient(batch, level, assert_close):
    """At theta = theta_old the vanilla loss times verl's TIS weights has rlviz's corrected
    policy gradient (corrected_pg_objective, seq-mean-token-sum)."""
    mu = _sampler(batch)
    adv = gl.group_advantages(batch.r, "std")
    w = op.correction_weights(batch.logp_t, mu, batch.mask_t, "tis", level, 2.0)
    w_theirs, _ = rc.compute_rollout_correction_weights(
        batch.flat(batch.logp_t - mu), batch.flat(batch.mask_t).double(), level, 2.0
    )
    theirs, x_theirs, x_ours = verl_policy_loss(
        ca.compute_policy_loss_vanilla,
        batch,
        adv[..., None].expand(batch.mask_t.shape),
        "seq-mean-token-sum",
        config(),
        logp_old_t=batch.logp_t,  # at theta = theta_old
        rollout_is_weights=w_theirs,
    )
    ours = -op.corrected_pg_objective(x_ours, w, adv, batch.mask_t).mean()
    assert_grads_close(
        assert_close,
        batch,
        "grad vanilla(rollout_is_weights) ~ grad corrected_pg_objective",
        f"tis, {level}",
        ours,
        x_ours,
        theirs,
        x_theirs,
    )


@pytest.mark.parametrize("level", op.IS_LEVELS)
@pytest.mark.parametrize("correction", ["tis", "mis"])
@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
def test_trainer_objective_with_rollout_weights(batch, level, correction, mode, assert_close):
    """The objective train_grpo optimises with chapter 17's correction
    (rlviz.fn.grpo_practice.practice_objective with the weight of offpolicy_weights: pi_old / mu,
    truncated or masked at C = 2, times each token's clipped term) is verl's vanilla loss with
    rollout_is_weights, at any theta (not only theta_old): value and gradient."""
    from rlviz.agents.grpo import GRPOConfig, OffPolicy

    mu = _sampler(batch)
    adv = gl.group_advantages(batch.r, "std")
    adv_t = adv[..., None].expand(batch.mask_t.shape)
    w = op.correction_weights(batch.logp_old_t, mu, batch.mask_t, correction, level, 2.0)
    threshold = 2.0 if correction == "tis" else "1e-9_2.0"  # verl's MIS: an interval
    w_theirs, _ = rc.compute_rollout_correction_weights(
        batch.flat(batch.logp_old_t - mu), batch.flat(batch.mask_t).double(), level, threshold
    )
    theirs, x_theirs, x_ours = verl_policy_loss(
        ca.compute_policy_loss_vanilla,
        batch,
        adv_t,
        mode,
        config(0.2, 0.28),
        rollout_is_weights=w_theirs,
    )
    cfg = GRPOConfig(  # the trainer's config, unpacked as train_grpo unpacks it
        term="token",
        loss_agg=mode,
        eps_high=0.28,
        off_policy=OffPolicy(correction=correction, level=level, cap=2.0),
    )
    f = verl_seq_factor(batch, mode)[..., 0]  # verl's 1e-8, through A (linear in A > 0 scale)
    ours = -practice_objective(
        x_ours, batch.logp_old_t, adv * f, batch.mask_t, weight_t=w, **cfg.objective_args
    )
    case = f"{correction}, {level}, {mode}"
    assert_close(LIB, "vanilla(rollout_is_weights) ~ train_grpo's objective", case, ours, theirs)
    assert_grads_close(
        assert_close,
        batch,
        "grad vanilla(rollout_is_weights) ~ grad train_grpo's objective",
        case,
        ours,
        x_ours,
        theirs,
        x_theirs,
    )


# ---------------------------------------------------------------- negative controls
def test_negative_control_dropped_token_normaliser(batch, monkeypatch):
    """The comparison sees a perturbed rlviz loss: with the aggregation's seq-mean-token-mean
    made to forget dividing each answer by its length (the bug of summing tokens), verl's
    vanilla loss no longer matches, in value and gradient."""
    mode, adv_t = "seq-mean-token-mean", _adv_t(batch)

    def both():
        theirs, x_t, x_o = verl_policy_loss(
            ca.compute_policy_loss_vanilla, batch, adv_t, mode, config()
        )
        rho_t = gl.token_ratios(x_o, batch.logp_old_t, batch.mask_t)
        per_tok = rt.asymmetric_clipped_surrogate(rho_t, adv_t, 0.2, 0.2)
        ours = -agg.aggregate(per_tok * verl_seq_factor(batch, mode), batch.mask_t, mode)
        d_value = float((ours - theirs).abs().detach())
        d_grad = float((batch.flat(grad(ours, x_o)) - grad(theirs, x_t)).abs().max())
        return d_value, d_grad

    assert max(both()) <= TOL
    right = agg._reduce

    def dropped(x_t, mask_t, mode, dims, n_seqs, n_tokens, norm):
        if mode == "seq-mean-token-mean":
            mode = "seq-mean-token-sum"
        return right(x_t, mask_t, mode, dims, n_seqs, n_tokens, norm)

    monkeypatch.setattr(agg, "_reduce", dropped)
    d_value, d_grad = both()
    assert d_value > 1e-3 and d_grad > 1e-3


def test_negative_control_dropped_std(batch, monkeypatch):
    """group_advantages with the standard deviation dropped ("std" computed as "mean") no
    longer matches verl's GRPO advantage."""
    est = ca.get_adv_estimator_fn("grpo")
    theirs, _ = est(
        _token_rewards(batch), batch.flat(batch.mask_t).double(), index(batch), epsilon=1e-4
    )
    right = gl.group_advantages
    monkeypatch.setattr(gl, "group_advantages", lambda r, kind="mean", **k: right(r, "mean"))
    ours = gl.group_advantages(batch.r, "std", std_eps=1e-4)
    assert float((batch.flat(ours[..., None] * batch.mask_t) - theirs).abs().max()) > 1e-2


# ---------------------------------------------------------------- Clip-Cov
@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-sum"])
def test_clip_cov_policy_loss(batch, mode, assert_close):
    """verl's clip_cov with the band (lb, ub) = (0, 1e9) and clip_cov_ratio = 1 detaches every
    token whose covariance score (over the batch's valid tokens) is positive and that the clip
    has not already stopped, so its random draw is no draw: rlviz's covariance_scores with
    clip_cov_mask(k = all tokens) gives the same set. Value and gradient."""
    lo, hi = 0.2, 0.28
    adv_t = _adv_t(batch)
    cfg = ActorConfig(
        strategy="fsdp",
        rollout_n=4,
        ppo_micro_batch_size_per_gpu=1,
        clip_ratio=lo,
        clip_ratio_low=lo,
        clip_ratio_high=hi,
        policy_loss=PolicyLossConfig(
            loss_mode="clip_cov", clip_cov_ratio=1.0, clip_cov_lb=0.0, clip_cov_ub=1e9
        ),
    )
    theirs, x_theirs, x_ours = verl_policy_loss(
        ca.compute_policy_loss_clip_cov, batch, adv_t, mode, cfg
    )
    rho_t = gl.token_ratios(x_ours, batch.logp_old_t, batch.mask_t)
    m = batch.mask_t
    scores = rt.covariance_scores(x_ours.detach()[m], adv_t[m])
    # verl leaves out the tokens its clip already stops (the clipped term strictly smaller)
    stopped = rt.clip_stops_gradient(rho_t.detach(), adv_t, lo, hi) & (adv_t != 0)
    scores = torch.where(stopped[m], torch.full_like(scores, -torch.inf), scores)
    detach = torch.zeros(m.shape, dtype=torch.bool)
    detach[m] = rt.clip_cov_mask(scores, int(m.sum()))
    assert int(detach.sum()) > 0
    per_tok = rt.asymmetric_clipped_surrogate(rho_t, adv_t, lo, hi)
    per_tok = torch.where(detach, torch.zeros_like(per_tok), per_tok)
    ours = -agg.aggregate(per_tok, m, mode)
    case = f"{mode}, eps=({lo}, {hi}), {int(detach.sum())} of {int(m.sum())} tokens detached"
    assert_close(
        LIB, "compute_policy_loss_clip_cov ~ covariance_scores+clip_cov_mask", case, ours, theirs
    )
    assert_grads_close(
        assert_close,
        batch,
        "grad compute_policy_loss_clip_cov ~ grad rlviz",
        case,
        ours,
        x_ours,
        theirs,
        x_theirs,
    )


# ---------------------------------------------------------------- the registries
# registered name -> the verl function (and settings) this file compares it with; a name
# registered with a verl counterpart but missing here fails test_registry_covered
VERL_TERMS = {
    "token": (ca.compute_policy_loss_vanilla, 1e9),  # (loss, clip_ratio_c): c above every ratio
    "dual-clip": (ca.compute_policy_loss_vanilla, 3.0),
    "gspo": (ca.compute_policy_loss_gspo, None),
    "cispo": (ca.compute_policy_loss_cispo, None),
}
VERL_CASES = {
    "term": VERL_TERMS,
    "loss_agg": {m: "agg_loss" for m in agg.AGG_MODES},  # test_agg_loss
    "kl": KL_NAMES,  # test_kl_penalty
    "advantage": {"mean": "grpo", "std": "grpo", "loo": "rloo"},  # test_grpo/rloo_advantage
    "kl_placement": {"loss": "kl_penalty", "reward": "compute_rewards"},  # test_kl_in_reward
    "correction": {
        "none": "rollout_is=None",
        "is": "threshold 1e6",
        "tis": "truncate",
        "mis": "mask",
    },
}


@pytest.mark.parametrize(
    "axis, name", [(axis, name) for axis, reg in REGISTRIES.items() for name in reg.names()]
)
def test_registry_covered(axis, name, registry_covered):
    """Every registered name has its verl comparison here, or says why there is none: a
    newly registered function without either fails."""
    registry_covered("verl", VERL_CASES, axis, name)


@pytest.mark.parametrize("eps", CLIPS, ids=["sym", "clip-higher"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("term", rt.POLICY_TERMS.names())
def test_policy_term(term, mode, eps, assert_close, make_batch):
    """Each registered policy term through rlviz's practice_objective against the verl policy
    loss it names: values in every mode; gradients in every mode, except GSPO's (verl's
    token-level form sg[s_i] pi_t / sg[pi_t] has GSPO's gradient in seq-mean-token-mean only).
    The dual clip on a batch whose ratios reach e^1.5, so c = 3 binds."""
    if isinstance(rt.POLICY_TERMS[term].verl, NotInLibrary):
        assert term not in VERL_TERMS
        return  # test_registry_covered holds the reason
    fn, c = VERL_TERMS[term]
    lo, hi = eps
    b = make_batch(7, spread=1.5) if term == "dual-clip" else make_batch(0)
    adv = gl.group_advantages(b.r, "std")
    adv_t = adv[..., None].expand(b.mask_t.shape)
    cfg = config(lo, hi)
    if c is not None:
        cfg = ActorConfig(**{**_config_kwargs(lo, hi), "clip_ratio_c": c})
    theirs, x_theirs, x_ours = verl_policy_loss(fn, b, adv_t, mode, cfg)
    f = verl_seq_factor(b, mode)[..., 0]  # verl's 1e-8, through A (linear in a positive scale)
    clip_c = c if term == "dual-clip" else None
    ours = -practice_objective(
        x_ours,
        b.logp_old_t,
        adv * f,
        b.mask_t,
        term=term,
        agg=mode,
        eps_low=lo,
        eps_high=hi,
        clip_c=clip_c,
    )
    case = f"{term}, {mode}, eps=({lo}, {hi})"
    assert_close(LIB, "policy loss ~ practice_objective(term)", case, ours, theirs)
    if term == "dual-clip":  # the cap binds, and without it the two differ
        rho_t = gl.token_ratios(b.logp_t, b.logp_old_t, b.mask_t)
        assert bool(((rho_t > c) & (adv_t < 0) & b.mask_t).any())
        plain = -practice_objective(
            b.logp_t,
            b.logp_old_t,
            adv * f,
            b.mask_t,
            term="token",
            agg=mode,
            eps_low=lo,
            eps_high=hi,
        )
        assert float((plain - theirs).abs()) > 1e-4
    if term != "gspo" or mode == "seq-mean-token-mean":
        assert_grads_close(
            assert_close,
            b,
            "grad policy loss ~ grad practice_objective(term)",
            case,
            ours,
            x_ours,
            theirs,
            x_theirs,
        )
