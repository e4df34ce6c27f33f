"""Small statistics for the judging report: Student-t intervals of a mean and Krippendorff's alpha.

Written out here (a few dozen lines) rather than pulling SciPy into the service's dependencies; the
tests check both against textbook values.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Metric = Literal["nominal", "ordinal", "interval"]


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / (c if abs(c) > tiny else tiny)
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / (c if abs(c) > tiny else tiny)
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on the CDF; 1e-10 is plenty for a report)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be within (0, 1), got {p}")
    if df <= 0:
        raise ValueError(f"df must be positive, got {df}")
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return (lo + hi) / 2.0


@dataclass(frozen=True)
class MeanCI:
    n: int
    mean: float | None
    half_width: float | None  # None below two ratings (no spread to estimate)
    sd: float | None

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    def to_json(self) -> dict:
        return {"n": self.n, "mean": self.mean, "ci95": self.half_width, "low": self.low, "high": self.high,
                "sd": self.sd}  # fmt: skip


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> MeanCI:
    """Mean with a two-sided Student-t confidence interval: mean ± t(1-(1-c)/2, n-1) · s / sqrt(n)."""
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        return MeanCI(0, None, None, None)
    mean = sum(xs) / n
    if n == 1:
        return MeanCI(1, mean, None, None)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(1.0 - (1.0 - confidence) / 2.0, n - 1) * sd / math.sqrt(n)
    return MeanCI(n, mean, half, sd)


def krippendorff_alpha(units: Mapping[Hashable, Mapping[Hashable, float]], metric: Metric = "interval") -> float | None:
    """Krippendorff's alpha over ``units`` = {unit: {coder: value}} (missing values simply absent).

    Only units with at least two values are pairable and count. ``ordinal`` uses the rank-based
    distance over the values seen (Krippendorff 2011, "Computing Krippendorff's alpha-reliability").
    None when nothing is pairable or all pairable values are equal (alpha undefined).
    """
    coincidence: dict[tuple[float, float], float] = defaultdict(float)
    for ratings in units.values():
        values = list(ratings.values())
        m = len(values)
        if m < 2:
            continue
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if i != j:
                    coincidence[(a, b)] += 1.0 / (m - 1)
    if not coincidence:
        return None
    n_c: dict[float, float] = defaultdict(float)
    for (a, _b), weight in coincidence.items():
        n_c[a] += weight
    n = sum(n_c.values())
    ordered = sorted(n_c)

    def delta(a: float, b: float) -> float:
        if metric == "nominal":
            return 0.0 if a == b else 1.0
        if metric == "interval":
            return (a - b) ** 2
        if metric == "ordinal":
            lo, hi = sorted((a, b))
            between = sum(n_c[v] for v in ordered if lo <= v <= hi)
            return (between - (n_c[lo] + n_c[hi]) / 2.0) ** 2
        raise ValueError(f"unknown metric {metric!r}; known: nominal, ordinal, interval")

    observed = sum(w * delta(a, b) for (a, b), w in coincidence.items())
    expected = sum(n_c[a] * n_c[b] * delta(a, b) for a in ordered for b in ordered) / (n - 1)
    if expected == 0:
        return None
    return 1.0 - observed / expected
