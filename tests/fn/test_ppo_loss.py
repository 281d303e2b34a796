"""rlviz.fn.ppo_loss: properties of the clipped surrogate and the other PPO loss terms, input checks."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlviz.fn import ppo_loss as L

floats = st.floats(-5, 5, allow_nan=False, width=64)


@settings(max_examples=40, deadline=None)
@given(
    r=st.lists(st.floats(0.01, 5, width=64), min_size=1, max_size=20),
    a=st.data(),
    eps=st.floats(0.01, 0.9),
)
def test_clip_is_a_lower_bound_and_equal_inside(r, a, eps):
    ratio = torch.tensor(r, dtype=torch.float64)
    adv = torch.tensor(
        a.draw(st.lists(floats, min_size=len(r), max_size=len(r))), dtype=torch.float64
    )
    clip = L.clipped_surrogate(ratio, adv, eps)
    pg = L.policy_gradient_surrogate(ratio, adv)
    assert (clip <= pg + 1e-12).all()  # L_CLIP <= L_PG sample by sample
    inside = (ratio - 1).abs() <= eps
    assert torch.equal(clip[inside], pg[inside])


def test_zero_gradient_where_clipped_in_the_improving_direction():
    ratio = torch.tensor([1.5, 0.5, 1.5, 0.5, 1.05], dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0, 2.0], dtype=torch.float64)
    L.clipped_surrogate(ratio, adv, 0.2).sum().backward()
    # r > 1 + eps with A > 0 and r < 1 - eps with A < 0: clipped, no gradient; otherwise A
    assert ratio.grad.tolist() == [0.0, 0.0, -1.0, 1.0, 2.0]


def test_per_setting_epsilon_broadcasts():
    ratio = torch.full((2, 3), 1.25)
    adv = torch.ones(2, 3)
    out = L.clipped_surrogate(ratio, adv, torch.tensor([[0.1], [0.3]]))
    assert torch.allclose(out[0], torch.full((3,), 1.1)) and torch.allclose(
        out[1], torch.full((3,), 1.25)
    )


def test_value_loss_clipping_is_a_max():
    v, tgt, old = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 0.0]), torch.tensor([0.0, 1.0])
    plain = L.value_loss(v, tgt)
    clipped = L.value_loss(v, tgt, old, clip=0.5)
    assert plain.tolist() == [4.0, 0.0]
    # sample 0: max(4, (0 + 0.5)^2) = 4; sample 1: max(0, (1 - 0.5)^2) = 0.25
    assert clipped.tolist() == [4.0, 0.25]
    assert (clipped >= plain).all()


def test_entropy_and_kl():
    logits = torch.tensor([[0.0, 0.0], [10.0, -10.0]], dtype=torch.float64)
    h = L.entropy(logits)
    assert math.isclose(h[0].item(), math.log(2)) and h[1].item() < 1e-7
    lr = torch.linspace(-2, 2, 9, dtype=torch.float64)
    k3 = L.approx_kl(lr)
    assert (k3 >= 0).all() and k3[4] == 0
    assert L.clip_fraction(torch.tensor([1.0, 1.3, 0.7, 1.1]), 0.2).tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("eps", [0, -0.1, float("nan"), float("inf"), "a"])
def test_bad_epsilon(eps):
    with pytest.raises(ValueError, match="epsilon"):
        L.clipped_surrogate(torch.ones(3), torch.ones(3), eps)


def test_bad_shapes_and_types():
    with pytest.raises(ValueError, match="adv must have the shape of ratio"):
        L.clipped_surrogate(torch.ones(3), torch.ones(3, 1), 0.2)
    with pytest.raises(ValueError, match="ratio must be a torch.Tensor"):
        L.clipped_surrogate([1.0], torch.ones(1), 0.2)
    with pytest.raises(ValueError, match="epsilon of shape"):
        L.clipped_surrogate(torch.ones(2, 3), torch.ones(2, 3), torch.ones(3, 1))
    with pytest.raises(ValueError, match="v_old must be given"):
        L.value_loss(torch.ones(2), torch.ones(2), clip=0.2)
    with pytest.raises(ValueError, match="clip must be"):
        L.value_loss(torch.ones(2), torch.ones(2), torch.ones(2), clip=-1.0)
    with pytest.raises(ValueError, match="logits"):
        L.entropy(torch.ones(3, 1))
    with pytest.raises(ValueError, match="floating-point"):
        L.approx_kl(torch.ones(3, dtype=torch.int64))
