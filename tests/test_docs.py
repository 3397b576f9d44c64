"""The documentation stays true to the code: every problem code and concept is documented."""

from __future__ import annotations

import re

from hepablate.cohort.concepts import CONCEPTS
from tests.conftest import REPO

COHORT_FORMAT = (REPO / "docs" / "cohort-format.md").read_text(encoding="utf-8")
CODE = re.compile(r"\b((?:cohort|schema|table|value|outcome|images)\.[a-z_]+)\b")


def _codes_in_source() -> set[str]:
    codes: set[str] = set()
    for path in (REPO / "src" / "hepablate" / "cohort").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'"((?:cohort|schema|table|value|outcome|images)\.[a-z_]+)"', text))
    return codes


def test_every_problem_code_is_documented_and_every_documented_code_exists() -> None:
    documented = {m for m in CODE.findall(COHORT_FORMAT) if "`" + m + "`" in COHORT_FORMAT}
    in_source = _codes_in_source()

    assert len(in_source) >= 30
    assert in_source - documented == set()
    assert {c for c in documented if c.count(".") == 1} - in_source == set()


def test_every_concept_is_documented_with_its_units() -> None:
    for concept in CONCEPTS.values():
        assert f"`{concept.name}`" in COHORT_FORMAT, concept.name
        for unit in concept.units:
            assert f"`{unit}`" in COHORT_FORMAT, (concept.name, unit)
