"""core.stats: the Wilson interval against hand-computed values, a published table and scipy."""
from __future__ import annotations

import math

import pytest
from scipy.stats import binomtest

from core.stats import accuracy_interval, compare_accuracies, format_interval, wilson_interval


def test_half_of_four_by_hand():
    # p = 0.5, n = 4, z = 2: centre (0.5 + 4/8) / (1 + 1) = 0.5, half 2/2 * sqrt(0.25/4 + 4/64) = sqrt(0.125)
    low, high = wilson_interval(2, 4, z=2.0)
    assert low == pytest.approx(0.5 - math.sqrt(0.125)) and high == pytest.approx(0.5 + math.sqrt(0.125))


def test_none_of_n_by_hand():
    # p = 0: the interval is [0, z^2 / (n + z^2)], here 4 / 14
    assert wilson_interval(0, 10, z=2.0) == (0.0, pytest.approx(4 / 14))
    assert wilson_interval(10, 10, z=2.0) == (pytest.approx(10 / 14), 1.0)


@pytest.mark.parametrize("k, n, low, high", [
    # Newcombe (1998), Stat. Med. 17:857-872, Table II, method 3 (score interval without continuity correction)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_newcombes_published_values(k, n, low, high):
    got = wilson_interval(k, n)
    assert got == (pytest.approx(low, abs=6e-5), pytest.approx(high, abs=6e-5))


@pytest.mark.parametrize("k, n", [(985, 1000), (974, 1000), (500, 1000), (1, 1000), (1000, 1000), (3, 7)])
def test_agrees_with_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    # scipy uses the exact 97.5 % normal quantile (1.95996...), the app z = 1.96
    assert wilson_interval(k, n, z=1.959963984540054) == (pytest.approx(ci.low, abs=1e-12),
                                                         pytest.approx(ci.high, abs=1e-12))
    assert wilson_interval(k, n) == (pytest.approx(ci.low, abs=2e-5), pytest.approx(ci.high, abs=2e-5))


def test_a_thousand_images_near_98_percent_carry_about_one_point():
    low, high = accuracy_interval(0.985, 1000)
    assert low < 0.985 < high and 0.006 < 0.985 - low < 0.01 and 0.004 < high - 0.985 < 0.008
    assert format_interval(low, high) == f"{low * 100:.1f}–{high * 100:.1f} %"
    assert format_interval(0.976, 0.991) == "97.6–99.1 %"


@pytest.mark.parametrize("k, n, z", [(1, 0, 1.96), (-1, 10, 1.96), (11, 10, 1.96), (5, 10, 0.0)])
def test_bad_arguments_are_refused(k, n, z):
    with pytest.raises(ValueError):
        wilson_interval(k, n, z)


def test_compare_accuracies_says_whether_the_intervals_overlap():
    close = compare_accuracies(0.985, 0.980, 1000)
    assert close.startswith("B − A: −0.5 points of test accuracy (A 97.5–99.1 %, B ") and "may be" in close
    far = compare_accuracies(0.985, 0.860, 1000)
    assert "−12.5 points" in far and "do not overlap" in far
