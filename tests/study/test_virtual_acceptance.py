"""Issue 6's acceptance check: on a virtual cohort with images, selection finds the simulator's
drivers of local progression and the best model comes close to the oracle.

Two cohorts of the same seed (11; ``simulate_cohort`` draws patient i the same whatever n, so
the 1000 patients are the 500 and 500 more):

- **500 patients** (about 9 min on two cores with the voxel margins of before; marked
  ``acceptance`` since the fitted-surface margins of issue 16, for CI's 20-minute budget):
  asserts the margin, the perivascular location and the texture in >= 80% of the outer folds,
  each noise column in few, the best model within 0.05 of the oracle. Not size over 30 mm (odds
  ratio 2 for a fifth of the tumours), the simulator's weakest driver, which selection keeps in
  3 of 5 folds on this cohort: its true size effect is the weakest of five 500-patient cohorts
  (with every driver's true value, size's coefficient is +0.23 +- 0.33; its univariate p 0.01
  against 1e-6 to 5e-4 on seeds 21-51; ``benchmarks/selection_power.py``, docs/benchmarks.md).
- **1000 patients, all four drivers** (about 18 min; marked ``acceptance``: ``make
  acceptance`` runs it, CI's 20-minute budget does not hold it): the same assertions with size.

The whole chain runs as a user runs it: ``simulate_cohort`` (CT and masks), the extraction with
the shipped light config (geometry, first-order radiomics of the tumour and its ring), then the
shipped study config ``virtual_ltp_24m`` (its baselines, one repeat of five folds, no
permutation run; the multimodal network is measured in docs/benchmarks.md).
The seed was not used to choose the config: the selection pipeline was chosen on ``--seed 1``
(docs/benchmarks.md, "Study on the virtual cohort"), and this seed is the one the 200-patient
version of this test used before.
Only this evaluation reads ``truth.csv`` (through the oracle).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from hepablate import configs
from hepablate.cohort import load_cohort
from hepablate.features.extract import extract, load_extraction_config
from hepablate.schemas.metrics import BinaryStudySummary, SurvivalStudySummary
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import (
    LTP_DRIVERS,
    NOISE_COLUMNS,
    driver_columns,
    driver_shares,
    oracle_scores,
    read_truth,
)
from hepablate.study import load_study_config, run_study, study_data
from hepablate.study.data import StudyData
from hepablate.study.results import summarise
from hepablate.study.run import StudyResult

SEED = 11


@dataclass(frozen=True)
class Acceptance:
    cohort_dir: Path
    table: pd.DataFrame
    data: StudyData
    result: StudyResult
    summary: BinaryStudySummary | SurvivalStudySummary


def _accept(folder: Path, patients: int) -> Acceptance:
    cohort_dir = folder / "cohort"
    simulate_cohort(SimulationConfig(n=patients, seed=SEED), cohort_dir, workers=2)
    extraction = load_extraction_config(configs.path("light_extraction"))
    extraction = extraction.model_copy(
        update={"crops": extraction.crops.model_copy(update={"enabled": False})}
    )
    table = extract(load_cohort(cohort_dir), extraction, workers=2)
    config = load_study_config(configs.path("virtual_ltp_24m"))
    baselines = tuple(m for m in config.models if m.kind != "multimodal")
    validation = config.validation.model_copy(
        update={"repeats": 1, "permutations": 0, "bootstrap": 200}
    )
    config = config.model_copy(update={"validation": validation, "models": baselines})
    data = study_data(table, config)
    result = run_study(data, config, refit=False)
    return Acceptance(cohort_dir, table, data, result, summarise(result))


@pytest.fixture(scope="module")
def acceptance(tmp_path_factory: pytest.TempPathFactory) -> Acceptance:
    return _accept(tmp_path_factory.mktemp("acceptance"), 500)


@pytest.fixture(scope="module")
def acceptance_1000(tmp_path_factory: pytest.TempPathFactory) -> Acceptance:
    return _accept(tmp_path_factory.mktemp("acceptance_1000"), 1000)


def _check_selection(run: Acceptance, drivers: tuple[str, ...]) -> None:
    measures = driver_columns(run.table, read_truth(run.cohort_dir))
    shares = driver_shares(run.result.selected, measures)
    for driver in drivers:
        assert shares[driver] >= 0.8, (driver, shares)
    for column in NOISE_COLUMNS:
        assert shares[column] <= 0.4, (column, shares)
    # "Few": on average a noise column is kept in at most one fold in five.
    assert sum(shares[c] for c in NOISE_COLUMNS) / len(NOISE_COLUMNS) <= 0.2, shares


def _check_oracle(run: Acceptance) -> None:
    summary = run.summary
    best = summary.comparison.ranking[0]
    auc = summary.models[best].metrics.headline.value
    assert auc is not None
    patients = sorted(set(run.data.groups))
    oracle = oracle_scores(run.cohort_dir, patients)["ltp_24m_auc"]
    assert oracle is not None
    # Within 0.05 below the ceiling; far above it would mean the outcome leaked into a feature.
    assert oracle - 0.05 <= auc <= oracle + 0.02, (best, auc, oracle)


@pytest.mark.acceptance
def test_selection_finds_every_driver_and_few_noise_columns(acceptance: Acceptance) -> None:
    _check_selection(acceptance, ("margin", "perivascular", "texture"))  # size: see the doc


@pytest.mark.acceptance
def test_the_best_model_comes_within_0_05_of_the_oracle(acceptance: Acceptance) -> None:
    _check_oracle(acceptance)


@pytest.mark.acceptance
def test_on_1000_patients_all_four_drivers_and_the_oracle(acceptance_1000: Acceptance) -> None:
    _check_selection(acceptance_1000, LTP_DRIVERS)
    _check_oracle(acceptance_1000)
