"""Clinical concepts a column can declare, with the units each is recorded in.

A column that declares ``concept: total_bilirubin`` tells hepablate two things: which column the
clinical scores (ALBI, Child-Pugh, MELD) read, and which units make sense for it. The second lets
validation catch the commonest silent error in pooled clinical tables: a column declared in one
unit but filled in another (bilirubin declared µmol/L with values typed in mg/dL, so every value
is about 17 times too small).

``typical_median`` is the range in which the *median of a cohort* falls in that unit, for the
patients hepablate is meant for (adults with liver tumours, mostly cirrhotic, Child-Pugh A/B).
The ranges are deliberately wide; they only have to separate the units of one concept. Where two
units of a concept are numerically alike (ng/mL and IU/mL of AFP differ by a factor 1.21) no
check is possible and none is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CONCEPTS", "UNIT_ALIASES", "Concept", "canonical_unit", "guess_unit_from_median"]


@dataclass(frozen=True)
class Concept:
    """A clinical quantity, its accepted units and their typical cohort medians."""

    name: str
    description: str
    typical_median: dict[str, tuple[float, float]] = field(default_factory=dict)
    value_type: str = "number"  # "number" or "category"
    levels: tuple[str, ...] = ()

    @property
    def units(self) -> tuple[str, ...]:
        return tuple(self.typical_median)


# Spellings people type for the same unit. Keys are compared case-sensitively on purpose:
# "G/L" and "g/L" are different quantities.
UNIT_ALIASES: dict[str, str] = {
    "umol/L": "µmol/L",
    "μmol/L": "µmol/L",  # Greek mu (U+03BC) -> micro sign (U+00B5)
    "umol/l": "µmol/L",
    "µmol/l": "µmol/L",
    "g/l": "g/L",
    "g/dl": "g/dL",
    "mg/dl": "mg/dL",
    "ng/ml": "ng/mL",
    "IU/ml": "IU/mL",
    "x10^9/L": "10^9/L",
    "10^9/l": "10^9/L",
    "10⁹/L": "10^9/L",
    "G/L": "10^9/L",  # "giga per litre", as French and German labs write platelet counts
    "10^3/uL": "10^3/µL",
    "10^3/μL": "10^3/µL",
    "/uL": "/µL",
    "/μL": "/µL",
    "year": "years",
    "month": "months",
    "week": "weeks",
    "day": "days",
    "mmol/l": "mmol/L",
    "u/L": "U/L",
    "IU/L": "U/L",
    "ratio": "1",
    "": "1",
}


def canonical_unit(unit: str) -> str:
    """Return the canonical spelling of ``unit`` (``umol/L`` -> ``µmol/L``)."""
    stripped = unit.strip()
    return UNIT_ALIASES.get(stripped, stripped)


def _concepts(*items: Concept) -> dict[str, Concept]:
    return {c.name: c for c in items}


CONCEPTS: dict[str, Concept] = _concepts(
    Concept("age", "Age at ablation", {"years": (20.0, 95.0)}),
    Concept("albumin", "Serum albumin", {"g/L": (18.0, 55.0), "g/dL": (1.8, 5.5)}),
    Concept(
        "total_bilirubin",
        "Serum total bilirubin",
        {"µmol/L": (5.0, 200.0), "mg/dL": (0.2, 4.9)},
    ),
    Concept(
        "creatinine",
        "Serum creatinine (MELD)",
        {"µmol/L": (35.0, 400.0), "mg/dL": (0.3, 4.5)},
    ),
    Concept(
        "platelets",
        "Platelet count",
        {"10^9/L": (15.0, 600.0), "10^3/µL": (15.0, 600.0), "/µL": (15_000.0, 600_000.0)},
    ),
    Concept("inr", "International normalised ratio of prothrombin time", {"1": (0.8, 4.0)}),
    Concept("sodium", "Serum sodium (MELD-Na)", {"mmol/L": (110.0, 160.0)}),
    Concept("afp", "Alpha-fetoprotein", {"ng/mL": (0.5, 100_000.0), "IU/mL": (0.4, 83_000.0)}),
    Concept("ast", "Aspartate aminotransferase", {"U/L": (8.0, 500.0)}),
    Concept("alt", "Alanine aminotransferase", {"U/L": (5.0, 500.0)}),
    Concept(
        "ascites",
        "Ascites (Child-Pugh)",
        value_type="category",
        levels=("none", "mild", "moderate_severe"),
    ),
    Concept(
        "encephalopathy",
        "Hepatic encephalopathy (Child-Pugh)",
        value_type="category",
        levels=("none", "grade_1_2", "grade_3_4"),
    ),
    Concept(
        "tumour_diameter",
        "Largest tumour diameter on pre-ablation imaging",
        {"mm": (8.0, 100.0), "cm": (0.5, 7.9)},
    ),
    Concept("ablation_power", "Generator power", {"W": (10.0, 250.0)}),
    Concept("ablation_time", "Ablation time", {"min": (1.0, 60.0), "s": (60.0, 3600.0)}),
)


def guess_unit_from_median(concept: Concept, median: float) -> str | None:
    """The one unit of ``concept`` whose typical-median range holds ``median``, if exactly one."""
    fits = [u for u, (lo, hi) in concept.typical_median.items() if lo <= median <= hi]
    return fits[0] if len(fits) == 1 else None
