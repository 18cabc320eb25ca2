"""The shared argument checks: what they accept, what they refuse, and how they say it."""

import math

import numpy as np
import pytest

from optarena.checks import finite_number, whole_number, whole_numbers


@pytest.mark.parametrize("value, minimum", [(1, 1), (0, 0), (7, 2), (np.int64(3), 1)])
def test_whole_number_accepts_and_returns_an_int(value, minimum):
    accepted = whole_number("n", value, minimum)
    assert accepted == value and type(accepted) is int


@pytest.mark.parametrize("value", [0, -1, 1.0, True, "3", None, 2.5])
def test_whole_number_names_the_argument_the_minimum_and_the_value(value):
    with pytest.raises(ValueError) as raised:
        whole_number("steps", value)
    assert str(raised.value) == f"steps must be a whole number >= 1, got {value!r}"


def test_whole_number_allows_none_only_when_it_has_a_meaning():
    assert whole_number("chunk_size", None, none_means="automatic") is None
    with pytest.raises(ValueError, match=r"chunk_size must be a whole number >= 1 \(or None for automatic\), got 0"):
        whole_number("chunk_size", 0, none_means="automatic")


def test_whole_numbers_reports_the_first_bad_one():
    whole_numbers(2, a=2, b=3)
    with pytest.raises(ValueError, match="^b must be a whole number >= 2, got 1$"):
        whole_numbers(2, a=2, b=1, c=0)


@pytest.mark.parametrize("value", [0, 0.0, 1e-300, 3, 2.5, np.float32(1.5)])
def test_finite_number_accepts_non_negative_reals(value):
    assert finite_number("noise", value) == float(value)


@pytest.mark.parametrize("value", [-1e-9, math.inf, math.nan, True, "1", None])
def test_finite_number_refuses_with_its_meaning(value):
    with pytest.raises(ValueError) as raised:
        finite_number("noise", value, meaning="a standard deviation")
    assert str(raised.value) == f"noise must be a finite number >= 0 (a standard deviation), got {value!r}"


def test_finite_number_strict_refuses_the_minimum_itself():
    assert finite_number("b", 0.5, strict=True) == 0.5
    with pytest.raises(ValueError, match="^b must be a finite number > 0, got 0$"):
        finite_number("b", 0, strict=True)
