"""rlviz.fn.offpolicy: importance, truncated and masked weights at token and sequence level, and
the corrected policy-gradient surrogate, against loops written out by hand (float64, 1e-12); the
registered corrections and the OffPolicy value that chooses one."""

import dataclasses
import math
import typing

import pytest
import torch

from rlviz.fn.offpolicy import (
    CORRECTIONS,
    IS_LEVELS,
    OffPolicy,
    capped_weights,
    corrected_pg_objective,
    correction_weights,
    importance_weights,
    masked_weights,
    truncated_weights,
)

D = torch.float64


def _batch(seed=0, B=2, G=3, L=4):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(B, G, L, generator=g, dtype=D) * 2
    logp_mu = -torch.rand(B, G, L, generator=g, dtype=D) * 2
    lengths = torch.randint(1, L + 1, (B, G), generator=g)
    mask = torch.arange(L)[None, None, :] < lengths[..., None]
    adv = torch.randn(B, G, generator=g, dtype=D)
    return logp, logp_mu, mask, adv


def _reference_weight(logp, logp_mu, mask, correction, level, cap):
    """The weight of every token, one at a time."""
    B, G, L = logp.shape
    out = torch.ones(B, G, L, dtype=D)
    for b in range(B):
        for i in range(G):
            seq = sum(float(logp[b, i, t] - logp_mu[b, i, t]) for t in range(L) if mask[b, i, t])
            for t in range(L):
                if not mask[b, i, t] or correction == "none":
                    continue
                rho = math.exp(
                    seq if level == "sequence" else float(logp[b, i, t] - logp_mu[b, i, t])
                )
                if correction == "tis":
                    rho = min(rho, cap)
                elif correction == "mis":
                    rho = rho if rho <= cap else 0.0
                out[b, i, t] = rho
    return out


@pytest.mark.parametrize("correction", CORRECTIONS)
@pytest.mark.parametrize("level", IS_LEVELS)
@pytest.mark.parametrize("cap", [0.5, 1.0, 2.0, math.inf])
def test_weights_match_the_loop(correction, level, cap):
    logp, logp_mu, mask, _ = _batch()
    got = correction_weights(logp, logp_mu, mask, correction, level, cap)
    want = _reference_weight(logp, logp_mu, mask, correction, level, cap)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_sequence_weight_is_the_product_of_token_weights():
    logp, logp_mu, mask, _ = _batch(1)
    tok = importance_weights(logp, logp_mu, mask, "token")
    seq = importance_weights(logp, logp_mu, mask, "sequence")
    prod = torch.where(mask, tok, torch.ones_like(tok)).prod(-1)
    torch.testing.assert_close(seq[..., 0], prod, rtol=1e-12, atol=0)


def test_infinite_cap_is_plain_importance_sampling():
    logp, logp_mu, mask, _ = _batch(2)
    for level in IS_LEVELS:
        rho = correction_weights(logp, logp_mu, mask, "is", level)
        for c in ("tis", "mis"):
            torch.testing.assert_close(
                correction_weights(logp, logp_mu, mask, c, level, math.inf), rho
            )


def test_truncated_and_masked_weights_elementwise():
    rho = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=D)
    assert truncated_weights(rho, 2.0).tolist() == [0.5, 1.0, 2.0, 2.0]
    assert masked_weights(rho, 2.0).tolist() == [0.5, 1.0, 2.0, 0.0]


def test_corrected_objective_gradient_is_weighted_score():
    logp, logp_mu, mask, adv = _batch(3)
    theta = logp.clone().requires_grad_(True)
    w = correction_weights(theta, logp_mu, mask, "tis", "token", 1.5)
    obj = corrected_pg_objective(theta, w, adv, mask)
    obj.sum().backward()
    want = torch.where(mask, w.detach() * adv[..., None], torch.zeros_like(logp))
    torch.testing.assert_close(theta.grad, want, rtol=1e-12, atol=1e-12)


CAPPING = tuple(c for c in CORRECTIONS if c != "none")


def test_the_corrections_are_registered():
    assert CORRECTIONS.names() == ("none", "is", "tis", "mis") and CAPPING == ("is", "tis", "mis")
    assert CORRECTIONS["none"].fn is None
    assert CORRECTIONS["tis"].fn is truncated_weights and CORRECTIONS["mis"].fn is masked_weights
    # OffPolicy's field types are the registry's names and the levels
    hints = typing.get_type_hints(OffPolicy)
    assert typing.get_args(hints["correction"]) == CORRECTIONS.names()
    assert typing.get_args(hints["level"]) == IS_LEVELS


@pytest.mark.parametrize("correction", CAPPING)
@pytest.mark.parametrize("level", IS_LEVELS)
def test_capped_weights_of_precomputed_ratios_match_the_loop(correction, level):
    logp, logp_mu, mask, _ = _batch(1)
    rho = importance_weights(logp, logp_mu, mask, level)
    got = capped_weights(rho, mask, correction, 1.2)
    want = _reference_weight(logp, logp_mu, mask, correction, level, 1.2)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="correction must be one of 'is', 'tis', 'mis'"):
        capped_weights(rho, mask, "none", 1.2)


def test_bad_inputs_raise():
    logp, logp_mu, mask, adv = _batch()
    with pytest.raises(ValueError, match="level must be one of"):
        importance_weights(logp, logp_mu, mask, "segment")
    with pytest.raises(ValueError, match="correction must be one of 'none', .*'mis', got 'clip'"):
        correction_weights(logp, logp_mu, mask, "clip")
    with pytest.raises(ValueError, match="correction must be one of .*got 'clip'"):
        capped_weights(logp, mask, "clip", 2.0)
    with pytest.raises(ValueError, match="cap must be > 0"):
        correction_weights(logp, logp_mu, mask, "tis", "token", 0.0)
    with pytest.raises(ValueError, match="cap must be a number"):
        truncated_weights(logp, "big")
    with pytest.raises(ValueError, match="logp_old_t must have the shape of mask_t"):
        importance_weights(logp, logp_mu[..., :2], mask)
    with pytest.raises(ValueError, match="adv must have shape"):
        corrected_pg_objective(logp, logp, adv[:, :2], mask)
    with pytest.raises(ValueError, match="weight_t must have the shape"):
        corrected_pg_objective(logp, logp[..., :2], adv, mask)


# ---------------------------------------------------------------- OffPolicy
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"correction": "clip"}, "correction must be one of 'none', .*'mis', got 'clip'"),
        ({"correction": "tis", "level": "group", "cap": 2.0}, "level must be one of"),
        ({"correction": "tis", "cap": 0.0}, "cap must be > 0"),
        ({"correction": "tis", "cap": -1.0}, "cap must be > 0"),
        ({"correction": "tis", "cap": True}, "cap must be a number"),
        ({"correction": "mis", "cap": "big"}, "cap must be a number"),
        ({"level": "sequence"}, "correction 'none' takes no level and no cap"),
        ({"cap": 2.0}, "correction 'none' takes no level and no cap"),
        ({"correction": "is", "cap": 2.0}, "correction 'is' is not capped"),
        ({"correction": "tis"}, "correction 'tis' needs a finite cap"),
        ({"correction": "mis", "level": "sequence"}, "correction 'mis' needs a finite cap"),
    ],
)
def test_off_policy_refuses_what_would_do_nothing_or_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OffPolicy(**kwargs)


def test_off_policy_values_and_labels():
    assert OffPolicy() == OffPolicy(correction="none", level="token", cap=math.inf)
    assert not OffPolicy().active and OffPolicy().label == "naive (no weight)"
    assert OffPolicy(correction="is", level="sequence").label == "IS, sequence"
    tis = OffPolicy(correction="tis", level="token", cap=2.0)
    assert tis.active and tis.label == "TIS, token, C = 2"
    assert OffPolicy(correction="mis", level="sequence", cap=1.5).label == "MIS, sequence, C = 1.5"
    with pytest.raises(dataclasses.FrozenInstanceError):
        tis.cap = 3.0
    with pytest.raises(TypeError):
        OffPolicy("tis", "token", 2.0)  # keywords only


@pytest.mark.parametrize(
    "off",
    [
        OffPolicy(correction="is", level="token"),
        OffPolicy(correction="is", level="sequence"),
        OffPolicy(correction="tis", level="token", cap=1.2),
        OffPolicy(correction="mis", level="sequence", cap=1.2),
    ],
)
def test_off_policy_fields_give_correction_weights_the_loop(off):
    logp, logp_mu, mask, _ = _batch(4)
    got = correction_weights(logp, logp_mu, mask, off.correction, off.level, off.cap)
    want = _reference_weight(logp, logp_mu, mask, off.correction, off.level, off.cap)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
