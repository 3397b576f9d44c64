"""What the job tests share: a Progress that records what it was told, and a small study."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

if TYPE_CHECKING:
    from hepablate.app import TrainResult


@dataclass
class Recorder:
    """A :class:`hepablate.app.Progress` that keeps every call, in order."""

    calls: list[tuple[str, object]] = field(default_factory=list)

    def step(self, label: str) -> None:
        self.calls.append(("step", label))

    def update(self, done: int, total: int) -> None:
        self.calls.append(("update", (done, total)))

    def part(self, result: object) -> None:
        self.calls.append(("part", result))

    @property
    def steps(self) -> list[str]:
        return [str(value) for kind, value in self.calls if kind == "step"]

    @property
    def parts(self) -> list[object]:
        return [value for kind, value in self.calls if kind == "part"]

    def counts(self, step: str) -> list[tuple[int, int]]:
        """The (done, total) updates of ``step``'s first run, in order."""
        found: list[tuple[int, int]] = []
        inside = False
        for kind, value in self.calls:
            if kind == "step":
                if inside:
                    break
                inside = value == step
            elif kind == "update" and inside:
                assert isinstance(value, tuple)
                found.append(value)
        return found


def assert_counted(counts: list[tuple[int, int]], total: int) -> None:
    """Counts that only grow, of one total, ending at it."""
    assert counts, "no progress was reported"
    assert {t for _, t in counts} == {total}, counts
    done = [d for d, _ in counts]
    assert done == sorted(done) and done[-1] == total, counts


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


# A small tabular study: fast to run, still every output of a run (bundle included).
STUDY = {
    "name": "app test study",
    "endpoint": "rfs_24m",
    "selection": [{"method": "near_zero_variance"}],
    "models": [{"name": "logistic", "kind": "logistic"}],
    "validation": {"folds": 3, "repeats": 1, "inner_folds": 3, "bootstrap": 100},
    "workers": 1,
}


@pytest.fixture(scope="session")
def tabular_features(virtual_tables: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The FeatureTable of the shared virtual cohort without images (120 patients)."""
    from hepablate.app import extract_cohort

    folder = tmp_path_factory.mktemp("app")
    return extract_cohort(virtual_tables, folder / "features.parquet", workers=1).out


@pytest.fixture(scope="session")
def study_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY), encoding="utf-8")
    return path


@dataclass
class Trained:
    """A train job's result and what it recorded of its progress."""

    result: TrainResult
    progress: Recorder


@pytest.fixture(scope="session")
def trained(
    tabular_features: Path, study_config: Path, tmp_path_factory: pytest.TempPathFactory
) -> Trained:
    from hepablate.app import train

    progress = Recorder()
    out = tmp_path_factory.mktemp("run") / "run"
    return Trained(
        train(tabular_features, study_config, out, report=False, progress=progress), progress
    )
