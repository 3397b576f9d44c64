"""Percentile CIs from a bootstrap over patients (the cluster bootstrap of every metric).

Rows may be tumours, several per patient; a resample draws patients with replacement and takes
all their rows (cluster bootstrap, Field & Welsh, JRSS B 2007), so the CIs account for tumours of
one patient being alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = [
    "BOOTSTRAP_METHOD",
    "bootstrap_info",
    "check_level",
    "cluster_bootstrap_indices",
    "finite_or_none",
    "with_cis",
]

BOOTSTRAP_METHOD = "percentile, resampling groups (patients)"

Statistics = Callable[[np.ndarray], dict[str, float | None]]


def finite_or_none(value: Any) -> float | None:
    """A finite float, or None for None, NaN and infinities."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else value


def check_level(level: float, n_bootstrap: int) -> None:
    """Refuse a CI level outside (0, 1) or a negative number of resamples."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be >= 0, got {n_bootstrap}")


def bootstrap_info(n_bootstrap: int, level: float) -> dict[str, Any]:
    """How the CIs were made, as ``metrics.json`` records it."""
    return {"n": n_bootstrap, "method": BOOTSTRAP_METHOD, "level": level}


def cluster_bootstrap_indices(groups: Any, n_bootstrap: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of each of ``n_bootstrap`` resamples: as many groups as there are, drawn with
    replacement, each contributing all its rows (a group drawn twice appears twice)."""
    codes = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    order = np.argsort(codes, kind="stable")
    members = np.split(order, np.flatnonzero(np.diff(codes[order])) + 1) if len(codes) else []
    rng = np.random.default_rng(seed)
    for _ in range(n_bootstrap):
        drawn = rng.integers(0, len(members), size=len(members))
        yield np.concatenate([members[g] for g in drawn]) if len(members) else np.array([], int)


def with_cis(
    statistics: Statistics, groups: np.ndarray, n_bootstrap: int, seed: int, level: float
) -> dict[str, dict[str, Any]]:
    """Point estimates on all rows and percentile CIs over cluster resamples, for several
    statistics computed together.

    A resample where a statistic is undefined (None) is skipped for that statistic and the
    number of resamples used is reported as ``n_used``; the CI is None when the point estimate
    is undefined or fewer than half of the resamples (or fewer than two) could be used.
    """
    values = {k: finite_or_none(v) for k, v in statistics(np.arange(len(groups))).items()}
    draws: dict[str, list[float]] = {k: [] for k in values}
    for rows in cluster_bootstrap_indices(groups, n_bootstrap, seed):
        for name, drawn in statistics(rows).items():
            finite = finite_or_none(drawn)
            if finite is not None:
                draws[name].append(finite)
    tail = (1 - level) / 2 * 100
    out: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        used = len(draws[name])
        result: dict[str, Any] = {"value": value, "ci": None}
        if value is not None and used >= max(2, math.ceil(n_bootstrap / 2)):
            low, high = np.percentile(draws[name], [tail, 100 - tail])
            result["ci"] = [float(low), float(high)]
        if used < n_bootstrap:
            result["n_used"] = used
        out[name] = result
    return out
