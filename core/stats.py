"""How sure a measured accuracy is: confidence intervals for a share of correct answers.

An accuracy on 1,000 test images is a share of 1,000 yes/no outcomes, so it carries sampling noise
of about ±1 point near 98 %. `wilson_interval` gives the range a 95 % interval puts around it.
"""
from __future__ import annotations

import math


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (low, high), as fractions 0..1, for `successes` out of `n` trials.

    z = 1.96 gives the usual 95 % interval. Unlike the textbook p ± z·sqrt(p(1-p)/n), it never
    leaves [0, 1] and does not shrink to a point at 0 % or 100 % (Wilson 1927; Newcombe 1998
    recommends it). Written out here because it is two lines and takes z directly; the tests
    check it against scipy's binomtest(...).proportion_ci(method="wilson") and Newcombe's table.
    """
    if n <= 0:
        raise ValueError(f"need at least one trial, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in 0..{n}, got {successes}")
    if z <= 0:
        raise ValueError(f"z must be positive, got {z}")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(accuracy: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """`wilson_interval` for an accuracy measured on `n` images (the count of hits is rounded)."""
    return wilson_interval(round(accuracy * n), n, z)


def format_interval(low: float, high: float) -> str:
    """An interval of fractions the way the app writes percentages: "97.6–99.1 %"."""
    return f"{low * 100:.1f}–{high * 100:.1f} %"


def compare_accuracies(a: float, b: float, n: int, z: float = 1.96) -> str:
    """One sentence on B − A for two accuracies measured on the same `n` images, with their intervals.

    Non-overlapping 95 % intervals mean a difference beyond the test set's noise; overlapping ones
    do not prove the two equal, so the sentence only says the difference may be noise.
    """
    (a_low, a_high), (b_low, b_high) = accuracy_interval(a, n, z), accuracy_interval(b, n, z)
    change = f"{(b - a) * 100:+.1f}".replace("-", "\u2212")
    verdict = ("The two 95 % intervals overlap: this difference may be the test set's noise."
               if max(a_low, b_low) <= min(a_high, b_high)
               else "The two 95 % intervals do not overlap: the difference is larger than the test set's noise.")
    return (f"B − A: {change} points of test accuracy (A {format_interval(a_low, a_high)}, "
            f"B {format_interval(b_low, b_high)}). {verdict}")
