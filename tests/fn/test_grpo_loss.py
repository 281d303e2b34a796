"""rlviz.fn.grpo_loss: group advantages, ratios, KL estimators and placements, length
normalisation and the GRPO objective, against hand-computed values and reference loops; and the
registry type of rlviz.fn.registry that holds the named options."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlviz.fn import grpo_loss as grpo
from rlviz.fn.ppo_loss import k3
from rlviz.fn.registry import Entry, NotInLibrary, Registry


def tensors(B=2, G=3, L=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, G, L, generator=g, dtype=torch.float64) * 2
    old = -torch.rand(B, G, L, generator=g, dtype=torch.float64) * 2
    mask = torch.ones(B, G, L, dtype=torch.bool)
    mask[0, 0, 2:] = False
    mask[1, 2, 1:] = False
    return logp, old, mask


# ---------------------------------------------------------------- advantages
def test_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 5.0]], dtype=torch.float64)
    np.testing.assert_allclose(
        grpo.group_advantages(r, "mean"), [[0.5, -0.5, -0.5, 0.5], [-0.75, -0.75, -0.75, 2.25]]
    )
    np.testing.assert_allclose(
        grpo.group_advantages(r, "loo"), [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [-1, -1, -1, 3]]
    )
    std = r.std(dim=1, keepdim=True)
    np.testing.assert_allclose(
        grpo.group_advantages(r, "std", std_eps=1e-4), (r - r.mean(1, keepdim=True)) / (std + 1e-4)
    )
    # one std for the whole batch (Bessel-corrected over all B G rewards)
    c = r - r.mean(1, keepdim=True)
    np.testing.assert_allclose(grpo.group_advantages(r, "batch-std"), c / (r.std() + 1e-4))


def test_the_advantage_kinds_are_the_registry_s():
    assert grpo.ADVANTAGES.names() == ("mean", "std", "batch-std", "loo")


@pytest.mark.parametrize("kind", grpo.ADVANTAGES.names())
def test_leading_axes_are_independent_batches(kind):
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 5.0]], dtype=torch.float64)
    rr = torch.stack([r, 2 * r + 1])
    out = grpo.group_advantages(rr, kind)
    assert out.shape == rr.shape
    torch.testing.assert_close(out[0], grpo.group_advantages(r, kind), rtol=0, atol=0)
    torch.testing.assert_close(out[1], grpo.group_advantages(2 * r + 1, kind), rtol=0, atol=0)


def test_loo_is_reference_loop():
    r = torch.randn(5, 4, dtype=torch.float64)
    ref = torch.stack(
        [
            torch.stack([r[b, i] - torch.cat([r[b, :i], r[b, i + 1 :]]).mean() for i in range(4)])
            for b in range(5)
        ]
    )
    torch.testing.assert_close(grpo.group_advantages(r, "loo"), ref)


@pytest.mark.parametrize(
    "bad,msg",
    [
        (torch.tensor([[1.0, float("nan")]]), "finite"),
        (torch.tensor([1.0, 2.0]), "shape"),
        (torch.tensor([[1.0]]), "G >= 2"),
    ],
)
def test_advantages_bad_inputs(bad, msg):
    for kind in grpo.ADVANTAGES:  # G >= 2 for every kind (one answer: no group to compare)
        with pytest.raises(ValueError, match=msg):
            grpo.group_advantages(bad, kind)


def test_advantages_bad_kind():
    with pytest.raises(ValueError, match="kind must be one of 'mean', .*'loo', got 'median'"):
        grpo.group_advantages(torch.zeros(2, 3), "median")
    with pytest.raises(ValueError, match="got 'none'"):  # the old name of "mean"
        grpo.group_advantages(torch.zeros(2, 3), "none")
    with pytest.raises(ValueError, match="std_eps must be > 0"):
        grpo.group_advantages(torch.zeros(2, 3), "std", std_eps=0.0)


def test_mixed_groups():
    r = torch.tensor([[1.0, 1, 1], [0, 1, 0], [0, 0, 0]])
    assert grpo.mixed_groups(r).tolist() == [False, True, False]
    # (..., B, G) -> (..., B)
    rr = torch.stack([r, torch.tensor([[0.0, 0, 1], [2, 2, 2], [0.5, 0.25, 0.5]])])
    assert grpo.mixed_groups(rr).tolist() == [[False, True, False], [True, False, True]]


# ---------------------------------------------------------------- ratios and KL estimators
def test_sequence_ratio_is_product_of_token_ratios():
    logp, old, mask = tensors()
    tok = grpo.token_ratios(logp, old, mask)
    torch.testing.assert_close(grpo.sequence_ratios(logp, old, mask), tok.prod(-1))
    assert torch.all(tok[~mask] == 1)


def test_shape_mismatch_raises():
    logp, old, mask = tensors()
    with pytest.raises(ValueError, match="shape of mask_t"):
        grpo.token_ratios(logp, old[:, :, :2], mask)
    empty = mask.clone()
    empty[0, 1] = False
    with pytest.raises(ValueError, match="at least one token"):
        grpo.sequence_log_prob(logp, empty)


def test_kl_estimators_by_hand():
    lp, lr = torch.tensor([np.log(0.5)]), torch.tensor([np.log(0.25)])
    rho = 0.5
    assert float(grpo.kl_k1(lp, lr)) == pytest.approx(-np.log(rho))
    assert float(grpo.kl_k2(lp, lr)) == pytest.approx(0.5 * np.log(rho) ** 2)
    assert float(grpo.kl_k3(lp, lr)) == pytest.approx(rho - 1 - np.log(rho))


def test_kl_k3_is_the_one_k3():
    lp = torch.tensor([-0.1, -2.0, -0.7], dtype=torch.float64)
    lr = torch.tensor([-0.3, -0.5, -0.7], dtype=torch.float64)
    torch.testing.assert_close(grpo.kl_k3(lp, lr), k3(lr - lp), rtol=0, atol=0)
    assert float(grpo.kl_k3(lp, lr)[2]) == 0.0


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 7), st.integers(0, 10_000), st.floats(0.05, 3.0))
def test_kl_estimators_are_unbiased_and_k3_nonnegative(n, seed, scale):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, n)) * scale
    logp = torch.log_softmax(torch.tensor(a), 0)
    logp_ref = torch.log_softmax(torch.tensor(b), 0)
    p = logp.exp()
    kl = float((p * (logp - logp_ref)).sum())
    for name in ("k1", "k3"):
        assert abs(float((p * grpo.kl_estimate(name, logp, logp_ref)).sum()) - kl) < 1e-10
    assert float(grpo.kl_k3(logp, logp_ref).min()) >= 0
    with pytest.raises(ValueError, match="kl must be one of 'k1', 'k2', 'k3', got 'k4'"):
        grpo.kl_estimate("k4", logp, logp_ref)


def test_kl_registries_hold_the_estimators_and_placements():
    assert grpo.KL_ESTIMATORS.names() == ("k1", "k2", "k3")
    for name, fn in (("k1", grpo.kl_k1), ("k2", grpo.kl_k2), ("k3", grpo.kl_k3)):
        assert grpo.KL_ESTIMATORS[name].fn is fn
    assert grpo.KL_PLACEMENTS.names() == ("loss", "reward")
    assert grpo.KL_PLACEMENTS["loss"].fn is grpo.kl_loss_penalty
    assert grpo.KL_PLACEMENTS["reward"].fn is grpo.kl_reward_penalty


def test_kl_loss_penalty_subtracts_beta_k():
    per_tok = torch.tensor([[[1.0, 2.0]]], dtype=torch.float64)
    k_t = torch.tensor([[[0.5, 4.0]]], dtype=torch.float64)
    assert grpo.kl_loss_penalty(per_tok, k_t, 0.1).tolist() == [[[0.95, 1.6]]]


def test_kl_reward_penalty_is_the_summed_k1_of_the_sampler():
    _, old, mask = tensors(seed=3)
    ref = old - torch.linspace(0.1, 0.4, 4, dtype=torch.float64)  # k1 = old - ref per token
    r = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    got = grpo.kl_reward_penalty(r, old, ref, mask, 0.5)
    want = r.clone()
    for b in range(2):
        for i in range(3):
            k1 = sum(float(old[b, i, t] - ref[b, i, t]) for t in range(4) if mask[b, i, t])
            want[b, i] -= 0.5 * k1
    torch.testing.assert_close(got, want, rtol=0, atol=1e-14)
    # padding never enters
    poisoned = torch.where(mask, old, torch.full_like(old, float("nan")))
    torch.testing.assert_close(grpo.kl_reward_penalty(r, poisoned, ref, mask, 0.5), got)


# ---------------------------------------------------------------- length normalisation, objective
def test_length_normalised_by_hand():
    x = torch.ones(1, 2, 3, dtype=torch.float64)
    mask = torch.tensor([[[True, False, False], [True, True, True]]])
    assert float(grpo.length_normalised(x, mask, "sequence")) == pytest.approx(1.0)
    assert float(grpo.length_normalised(x, mask, "group")) == pytest.approx(1.0)
    assert float(grpo.length_normalised(x, mask, "constant")) == pytest.approx(4 / 6)


def test_objective_at_old_policy_is_mean_advantage():
    logp, _, mask = tensors()
    adv = torch.randn(2, 3, dtype=torch.float64)
    seq = grpo.grpo_objective(logp, logp, adv, mask, epsilon=0.2)
    torch.testing.assert_close(seq, adv.mean(1))
    tok = grpo.grpo_objective(logp, logp, adv, mask, epsilon=0.2, ratio="token")
    torch.testing.assert_close(tok, adv.mean(1))


def test_objective_kl_term_and_checks():
    logp, old, mask = tensors()
    adv = torch.zeros(2, 3, dtype=torch.float64)
    ref = logp - 0.3
    out = grpo.grpo_objective(
        logp, old, adv, mask, epsilon=0.2, ratio="token", beta=0.5, logp_ref_t=ref, kl="k1"
    )
    torch.testing.assert_close(out, torch.full((2,), -0.5 * 0.3, dtype=torch.float64))
    with pytest.raises(ValueError, match="beta"):
        grpo.grpo_objective(logp, old, adv, mask, epsilon=0.2, beta=-1.0)
    with pytest.raises(ValueError, match="epsilon"):
        grpo.grpo_objective(logp, old, adv, mask, epsilon=0.0)
    with pytest.raises(ValueError, match="logp_ref_t"):
        grpo.grpo_objective(logp, old, adv, mask, epsilon=0.2, beta=0.1)
    with pytest.raises(ValueError, match="length_norm"):
        grpo.grpo_objective(logp, old, adv, mask, epsilon=0.2, length_norm="group")
    with pytest.raises(ValueError, match="adv"):
        grpo.grpo_objective(logp, old, adv[:, :2], mask, epsilon=0.2)


def test_clip_blocks_gradient_beyond_epsilon():
    logp, _, mask = tensors()
    logp = logp.clone().requires_grad_(True)
    old = (logp - 0.5).detach()  # every ratio e^0.5 > 1.2
    adv = torch.ones(2, 3, dtype=torch.float64)
    grpo.grpo_objective(logp, old, adv, mask, epsilon=0.2, ratio="token").sum().backward()
    assert torch.all(logp.grad == 0)


def test_padding_never_reaches_the_objective():
    logp, old, mask = tensors()
    adv = torch.randn(2, 3, dtype=torch.float64)
    ref = logp - 0.2
    poisoned = [torch.where(mask, x, torch.full_like(x, float("nan"))) for x in (logp, old, ref)]
    for ratio, norm in (
        ("sequence", None),
        ("token", "sequence"),
        ("token", "group"),
        ("token", "constant"),
    ):
        clean = grpo.grpo_objective(
            logp,
            old,
            adv,
            mask,
            epsilon=0.2,
            ratio=ratio,
            length_norm=norm,
            beta=0.1,
            logp_ref_t=ref,
        )
        dirty = grpo.grpo_objective(
            *poisoned[:2],
            adv,
            mask,
            epsilon=0.2,
            ratio=ratio,
            length_norm=norm,
            beta=0.1,
            logp_ref_t=poisoned[2],
        )
        torch.testing.assert_close(dirty, clean, rtol=0, atol=0)


def test_sequence_objective_kl_sums_over_tokens():
    logp, _, mask = tensors()
    adv = torch.zeros(2, 3, dtype=torch.float64)
    out = grpo.grpo_objective(
        logp, logp, adv, mask, epsilon=0.2, beta=0.5, logp_ref_t=logp - 0.3, kl="k1"
    )
    lengths = mask.sum(-1).to(torch.float64)  # k1 = 0.3 on each token
    torch.testing.assert_close(out, (-0.5 * 0.3 * lengths).mean(1))


# ---------------------------------------------------------------- the registry type
def _registry():
    reg = Registry("colour")
    reg.register("red", label="Red", paper="p", trl="x", verl=NotInLibrary("none in verl"))(abs)
    reg.register("blue", label="Blue", paper="p", trl="y", verl="z", params=("c",))(min)
    return reg


def test_registry_lookup_names_and_labels():
    reg = _registry()
    assert reg.names() == ("red", "blue") and list(reg) == ["red", "blue"] and len(reg) == 2
    assert reg["red"].fn is abs and reg["blue"].params == ("c",) and reg["red"].params == ()
    assert reg.label("blue") == "Blue" and reg.check("red") == "red"
    assert "red" in reg and "green" not in reg


def test_a_registry_miss_lists_the_known_names():
    reg = _registry()
    for call in (lambda: reg["green"], lambda: reg.check("green"), lambda: reg.label("green")):
        with pytest.raises(ValueError, match="colour must be one of 'red', 'blue', got 'green'"):
            call()
    with pytest.raises(ValueError, match=r"colour must be one of .*, got \['red'\]"):
        reg[["red"]]  # unhashable: a miss, not a TypeError


def test_registering_a_name_twice_is_refused():
    reg = _registry()
    with pytest.raises(ValueError, match="colour 'red' is registered already"):
        reg.register("red", label="again", paper="p", trl="x", verl="y")
    assert reg["red"].fn is abs  # the first stays


@pytest.mark.parametrize("reason", ["", "   ", None, 3])
def test_not_in_library_needs_a_reason(reason):
    with pytest.raises(ValueError, match="reason must be a non-empty string"):
        NotInLibrary(reason)


@pytest.mark.parametrize("lib", ["trl", "verl"])
@pytest.mark.parametrize("bad", ["", "  ", None, 0, ("loss_type",)])
def test_an_entry_names_the_library_option_or_says_why_not(lib, bad):
    ok = {"trl": "x", "verl": NotInLibrary("why")}
    with pytest.raises(ValueError, match=f"red: {lib} must name the library's option"):
        Entry("red", abs, "Red", "p", **{**ok, lib: bad})
    reg = Registry("colour")
    with pytest.raises(ValueError, match=f"{lib} must name"):
        reg.register("red", label="Red", paper="p", **{**ok, lib: bad})(abs)
    assert "red" not in reg


def test_every_registered_entry_names_its_libraries():
    from rlviz.fn.grpo_aggregation import AGGREGATIONS
    from rlviz.fn.offpolicy import CORRECTIONS
    from rlviz.fn.ratios import POLICY_TERMS

    for reg in (
        grpo.ADVANTAGES,
        grpo.KL_ESTIMATORS,
        grpo.KL_PLACEMENTS,
        AGGREGATIONS,
        POLICY_TERMS,
        CORRECTIONS,
    ):
        for name in reg:
            e = reg[name]
            assert e.name == name and e.label and e.paper, (reg.axis, name)
            assert all(isinstance(v, (str, NotInLibrary)) for v in (e.trl, e.verl))
            assert isinstance(e.params, tuple) and all(isinstance(p, str) for p in e.params)
