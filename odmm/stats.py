"""Small statistics used to judge measurements (no SciPy needed)."""

from __future__ import annotations

import math


def binomial_interval(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """Central interval [lo, hi] holding a Binomial(n, p) count with at least ``confidence``.

    Exact: built from the probability mass function in log space, so it works for the
    thousands of packets a loss test sends.
    """
    if n <= 0:
        return 0, 0
    if p <= 0.0:
        return 0, 0
    if p >= 1.0:
        return n, n
    tail = (1.0 - confidence) / 2.0
    logp, logq = math.log(p), math.log1p(-p)
    pmf = [math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * logp + (n - k) * logq)
           for k in range(n + 1)]
    lo, acc = 0, 0.0
    while lo < n and acc + pmf[lo] <= tail:
        acc += pmf[lo]
        lo += 1
    hi, acc = n, 0.0
    while hi > 0 and acc + pmf[hi] <= tail:
        acc += pmf[hi]
        hi -= 1
    return lo, hi
