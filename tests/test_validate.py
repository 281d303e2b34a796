"""rlviz._validate: each check accepts what it allows and returns it converted, and rejects the
rest with a ValueError naming the argument, the value it got and what is allowed."""

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from strategies import coefficients

from rlviz import _validate as validate

# ---------------------------------------------------------------- numbers


@given(coefficients)
def test_unit_interval_accepts_zero_to_one(x):
    assert validate.unit_interval("gamma", x) == x


@given(st.floats(allow_nan=True).filter(lambda x: not 0 <= x <= 1))
def test_unit_interval_rejects_the_rest(x):
    with pytest.raises(ValueError, match=re.escape(f"gamma must be in [0, 1], got {x!r}")):
        validate.unit_interval("gamma", x)


def test_unit_interval_open_ends_and_non_numbers():
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\), got 1.0"):
        validate.unit_interval("eps", 1.0, open_left=True, open_right=True)
    with pytest.raises(ValueError, match=r"eps must be in \(0, 1\], got 0"):
        validate.unit_interval("eps", 0, open_left=True)
    with pytest.raises(ValueError, match=r"lam must be a number in \[0, 1\], got 'a'"):
        validate.unit_interval("lam", "a")


@pytest.mark.parametrize(
    "value, message",
    [
        (0, "lr must be a finite number > 0, got 0"),
        (-1.5, "lr must be a finite number > 0, got -1.5"),
        (math.inf, "lr must be a finite number > 0, got inf"),
        (math.nan, "lr must be a finite number > 0, got nan"),
        ("x", "lr must be a positive number, got 'x'"),
    ],
)
def test_positive_names_the_value(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate.positive("lr", value)


def test_positive_integer_and_inf_ok():
    assert validate.positive("n", np.int64(3), integer=True) == 3
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match=f"n must be a positive integer, got {bad!r}"):
            validate.positive("n", bad, integer=True)
    assert validate.positive("max_seconds", math.inf, inf_ok=True) == math.inf
    for bad in (0, -math.inf, math.nan):
        with pytest.raises(
            ValueError, match=f"max_seconds must be a number > 0 or inf \\(no limit\\), got {bad!r}"
        ):
            validate.positive("max_seconds", bad, inf_ok=True)


def test_non_negative():
    assert validate.non_negative("beta", 0) == 0.0
    for bad in (-0.1, math.inf, math.nan):
        with pytest.raises(ValueError, match=f"beta must be a finite number >= 0, got {bad!r}"):
            validate.non_negative("beta", bad)


# ---------------------------------------------------------------- types


@pytest.mark.parametrize("value", [3, np.int32(3), 0.5, np.float32(0.5), math.inf])
def test_real_accepts_python_and_numpy_numbers(value):
    out = validate.real("lr", value)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value", [True, np.bool_(False), "0.1", None, np.array([0.1]), 1j])
def test_real_rejects_bools_strings_and_arrays(value):
    with pytest.raises(ValueError, match=re.escape(f"lr must be a real number, got {value!r}")):
        validate.real("lr", value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_boolean_accepts_bools(value):
    out = validate.boolean("norm_adv", value)
    assert type(out) is bool and out == bool(value)


@pytest.mark.parametrize("value", [1, 0, "True", None, 1.0])
def test_boolean_rejects_the_rest(value):
    with pytest.raises(ValueError, match=f"norm_adv must be True or False, got {value!r}"):
        validate.boolean("norm_adv", value)


@given(st.integers(0, 2**40))
def test_integer_accepts_integers_from_the_minimum(n):
    assert validate.integer("seed", n, minimum=0) == n
    assert validate.integer("seed", np.int64(n), minimum=0) == n


@pytest.mark.parametrize(
    "value, minimum, message",
    [
        (-1, 0, "seed must be an integer >= 0, got -1"),
        (0, 1, "seed must be an integer >= 1, got 0"),
        (1.0, 0, "seed must be an integer >= 0, got 1.0"),
        (True, 0, "seed must be an integer >= 0, got True"),
        ("3", None, "seed must be an integer, got '3'"),
    ],
)
def test_integer_rejects_the_rest(value, minimum, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate.integer("seed", value, minimum=minimum)


# ---------------------------------------------------------------- choices


@pytest.mark.parametrize("allowed", [("token", "sequence"), ["token", "sequence"]])
def test_choice_returns_an_allowed_value(allowed):
    assert validate.choice("level", "sequence", allowed) == "sequence"


@pytest.mark.parametrize("value", ["word", None, ["token"], "Token"])
def test_choice_lists_the_allowed_values(value):
    message = f"level must be one of 'token', 'sequence', got {value!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        validate.choice("level", value, ("token", "sequence"))


def test_choice_takes_any_container_of_names():
    table = {"k1": None, "k3": None}  # a dict (or a registry) lists its keys
    assert validate.choice("kl", "k3", table) == "k3"
    with pytest.raises(ValueError, match=re.escape("kl must be one of 'k1', 'k3', got ['k2']")):
        validate.choice("kl", ["k2"], table)  # unhashable: in no dict, and still a ValueError


# ---------------------------------------------------------------- arrays and tensors


def test_array_checks_shape_and_finiteness():
    a = validate.array("x", [[1, 2]], shape=(None, 2))
    assert a.dtype == np.float64 and a.shape == (1, 2)
    with pytest.raises(ValueError, match=re.escape("x must have shape (*, 3), got (1, 2)")):
        validate.array("x", [[1, 2]], shape=(None, 3))
    with pytest.raises(ValueError, match=re.escape("x must have 1 dimension(s), got shape (1, 2)")):
        validate.array("x", [[1, 2]], ndim=1)
    with pytest.raises(ValueError, match=re.escape("x must be finite (no NaN or inf), got nan at")):
        validate.array("x", [0.0, np.nan])


def test_distribution_rows():
    validate.distribution_rows("pi", np.array([[0.25, 0.75]]))
    with pytest.raises(ValueError, match="pi must sum to 1 over its last axis, got sum 0.9"):
        validate.distribution_rows("pi", np.array([[0.2, 0.7]]))
    with pytest.raises(ValueError, match="pi must be non-negative probabilities, got -0.5"):
        validate.distribution_rows("pi", np.array([[1.5, -0.5]]))


def test_same_shape_tensors_refuses_broadcasting():
    assert validate.same_shape_tensors(ratio=torch.ones(4, 3), adv=torch.ones(4, 3)) == (4, 3)
    with pytest.raises(
        ValueError, match=re.escape("adv must have the shape of ratio (4, 3), got (4,)")
    ):
        validate.same_shape_tensors(ratio=torch.ones(4, 3), adv=torch.ones(4))
    with pytest.raises(ValueError, match="adv must be a floating-point tensor, got dtype"):
        validate.same_shape_tensors(ratio=torch.ones(2), adv=torch.ones(2, dtype=torch.long))
