"""The selectors of a study config (``selection[].method``), one entry each: the only list of
their names. The study config validates ``method`` against it, the study builds each step with
``make_selector``, and a test holds ``docs/study-config.md`` to a row per selector. Adding a
selector is its class and one entry here (CONTRIBUTING.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hepablate.selection._base import BaseSelector
from hepablate.selection.filters import MRMR, NearZeroVariance, Redundancy, Reproducible, Univariate
from hepablate.selection.model_based import Embedded, StabilitySelection, Wrapper

__all__ = ["SELECTORS", "make_selector", "selector_class"]

SELECTORS: Mapping[str, type[BaseSelector]] = {
    "near_zero_variance": NearZeroVariance,
    "reproducible": Reproducible,
    "univariate": Univariate,
    "redundancy": Redundancy,
    "mrmr": MRMR,
    "embedded": Embedded,
    "wrapper": Wrapper,
    "stability": StabilitySelection,
}
# Selectors that read the FeatureTable's ICCs (the study passes them unless a config does).
_READ_ICC = frozenset({"reproducible"})


def selector_class(method: str) -> type[BaseSelector]:
    """The class of ``method``; an unknown one is a ValueError naming the known ones."""
    try:
        return SELECTORS[method]
    except KeyError:
        raise ValueError(
            f"unknown selector {method!r} (the selectors: {', '.join(SELECTORS)})"
        ) from None


def make_selector(
    method: str,
    params: Mapping[str, Any],
    *,
    icc: Mapping[str, float],
    force: tuple[str, ...],
) -> BaseSelector:
    """The selector ``method`` with the config's ``params``, the study's forced columns and,
    for a selector that reads them, the FeatureTable's ICCs."""
    arguments = dict(params)
    if method in _READ_ICC:
        arguments.setdefault("icc", icc)
    return selector_class(method)(force=force, **arguments)
