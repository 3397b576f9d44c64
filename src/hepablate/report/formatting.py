"""How the study report writes values: estimates with their CI, p-values, dates, and the
Jinja filters and CSS escapes of the page."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from hepablate.schemas.metrics import (
    BinaryStudySummary,
    Estimate,
    FoldMean,
    SurvivalStudySummary,
)

if TYPE_CHECKING:
    from markupsafe import Markup

__all__ = [
    "METRIC_NAMES",
    "Summary",
    "breakable_name",
    "css_string",
    "estimate_cell",
    "format_created",
    "format_estimate",
    "format_p",
    "p_is",
]

# A study summary of either endpoint kind: what every part of the report takes.
Summary = BinaryStudySummary | SurvivalStudySummary

METRIC_NAMES = {"auc": "AUC", "harrell_c": "Harrell's C-index"}


def format_estimate(metric: Estimate | FoldMean | None, digits: int = 3) -> str:
    """``value (low to high)``, as the report shows an estimate with its 95% CI."""
    if metric is None or metric.value is None:
        return "-"
    text = f"{metric.value:.{digits}f}"
    if metric.ci is not None:
        text += f" ({metric.ci[0]:.{digits}f} to {metric.ci[1]:.{digits}f})"
    return text


def format_p(p: float | None) -> str:
    """A p-value with three decimals, ``<0.001`` below that, ``-`` when undefined."""
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def p_is(p: float | None) -> str:
    """``p = 0.012`` or ``p < 0.001``."""
    text = format_p(p)
    return f"p {text[0]} {text[1:]}" if text.startswith("<") else f"p = {text}"


def format_created(created: str) -> str:
    """The run's ISO time as ``YYYY-MM-DD HH:MM`` and its zone (the text as written if not ISO)."""
    try:
        moment = datetime.fromisoformat(created)
    except ValueError:
        return created
    return moment.strftime("%Y-%m-%d %H:%M ") + (moment.tzname() or "")


def css_string(text: str) -> Markup:
    """``text`` safe inside a quoted CSS string (of a <style> element): every character that
    is not a letter, digit or space as a CSS escape (its trailing space ends the escape)."""
    from markupsafe import Markup

    return Markup("".join(c if c.isalnum() or c == " " else f"\\{ord(c):06x} " for c in text))


def estimate_cell(text: Any) -> Markup:
    """An estimate with its interval in brackets, "0.812 (0.75 to 0.86)", as HTML whose
    bracket is a ``span.ci``: the PDF puts it on its own line, so that a narrow column breaks
    between the estimate and its interval rather than inside the interval."""
    from markupsafe import Markup, escape

    value, bracket, rest = str(text).partition(" (")
    if not bracket:
        return escape(value)
    return Markup(f'{escape(value)} <span class="ci">({escape(rest)}</span>')


def breakable_name(text: Any) -> Markup:
    """A model name that may break after its underscores (``<wbr>``), and only there."""
    from markupsafe import Markup, escape

    return Markup("_<wbr>").join(escape(part) for part in str(text).split("_"))
