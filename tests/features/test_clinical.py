"""Clinical scores from the example cohort, against values worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepablate.cohort import load_cohort
from hepablate.features.clinical import clinical_scores


def test_albi_and_child_pugh_of_the_example(example_cohort: Path) -> None:
    scores = clinical_scores(load_cohort(example_cohort, check_images=False))

    # P01: bilirubin 17.1 µmol/L, albumin 38.5 g/L, INR 1.12, no ascites or encephalopathy.
    albi = 0.66 * np.log10(17.1) - 0.085 * 38.5
    assert scores.loc["P01", "clin.score.albi"] == pytest.approx(albi)
    assert albi == pytest.approx(-2.4587, abs=1e-4)
    assert scores.loc["P01", "clin.score.albi_grade"] == 2
    assert scores.loc["P01", "clin.score.child_pugh"] == 5
    assert scores.loc["P01", "clin.score.child_pugh_class"] == "A"
    # P04: bilirubin 39.3 (2 points), albumin 29.8 (2), INR 1.41 (1), mild ascites (2), none (1).
    assert scores.loc["P04", "clin.score.child_pugh"] == 8
    assert scores.loc["P04", "clin.score.child_pugh_class"] == "B"
    # No creatinine declared: no MELD, rather than a guess.
    assert "clin.score.meld" not in scores


def test_meld_with_units_converted(cohort_copy: Path) -> None:
    text = (cohort_copy / "patients.csv").read_text(encoding="utf-8").splitlines()
    creatinine = ["creatinine_mg_dl", "0.9", "1.3", "0.7", "2.1", "1.0", "0.8"]
    (cohort_copy / "patients.csv").write_text(
        "\n".join(f"{line},{value}" for line, value in zip(text, creatinine, strict=True)) + "\n",
        encoding="utf-8",
    )
    yaml_path = cohort_copy / "cohort.yaml"
    yaml_path.write_text(
        yaml_path.read_text(encoding="utf-8").replace(
            "      referring_physician: {role: ignore, type: string}",
            "      referring_physician: {role: ignore, type: string}\n"
            "      creatinine_mg_dl: {role: predictor, type: number, unit: mg/dL, "
            "range: [0.1, 20], concept: creatinine}",
        ),
        encoding="utf-8",
    )

    scores = clinical_scores(load_cohort(cohort_copy, check_images=False))

    # P04: bilirubin 39.3 µmol/L = 2.298 mg/dL, INR 1.41, creatinine 2.1 mg/dL.
    expected = 3.78 * np.log(39.3 / 17.104) + 11.2 * np.log(1.41) + 9.57 * np.log(2.1) + 6.43
    assert scores.loc["P04", "clin.score.meld"] == pytest.approx(expected)
    assert expected == pytest.approx(20.52, abs=0.01)
    # P03: every input below 1 (bilirubin 0.70 mg/dL, INR 1.02, creatinine 0.7): floors apply.
    floor = 11.2 * np.log(1.02) + 6.43
    assert scores.loc["P03", "clin.score.meld"] == pytest.approx(floor)
