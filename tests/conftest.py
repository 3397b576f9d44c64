"""Shared fixtures: the example cohort, copies of it to break, and the real reference data."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.shared import simulated_once

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_COHORT = REPO / "examples" / "minimal_cohort"


def shared_data_dir() -> Path:
    """``HEPABLATE_SHARED_DATA``, or ``../shared/data`` beside the repository."""
    configured = os.environ.get("HEPABLATE_SHARED_DATA")
    return Path(configured) if configured else REPO.parent / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``acceptance`` (longer than CI's budget) run only with
    HEPABLATE_ACCEPTANCE=1 (``make acceptance``); otherwise they show as skipped, with why."""
    if os.environ.get("HEPABLATE_ACCEPTANCE") == "1":
        return
    skip = pytest.mark.skip(reason="acceptance check longer than CI's budget: make acceptance")
    for item in items:
        if "acceptance" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def hepablate_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh HEPABLATE_HOME (signing key, trust store) for the session, one per xdist worker:
    no test reads or writes the user's own; subprocesses inherit it."""
    home = tmp_path_factory.mktemp("hepablate-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HEPABLATE_HOME", str(home))
        yield home


@pytest.fixture
def shared_data() -> Path:
    """The real reference data; skipped when absent, a failure when CI requires it."""
    path = shared_data_dir()
    if not path.is_dir():
        reason = f"real reference data not found at {path} (set HEPABLATE_SHARED_DATA)"
        if os.environ.get("HEPABLATE_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason + "; HEPABLATE_REQUIRE_SHARED_DATA=1 makes this a failure")
        pytest.skip(reason)
    return path


@pytest.fixture
def example_cohort() -> Path:
    return EXAMPLE_COHORT


@pytest.fixture
def cohort_copy(tmp_path: Path) -> Path:
    """A writable copy of the example cohort, for tests that break one thing in it."""
    target = tmp_path / "cohort"
    shutil.copytree(EXAMPLE_COHORT, target)
    return target


@pytest.fixture(scope="session")
def virtual_tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 virtual patients in 3 centres, tables only (no images): read-only."""
    return simulated_once(
        tmp_path_factory, "tables120", {"n": 120, "seed": 11, "centres": 3, "images": False}
    )


@pytest.fixture(scope="session")
def new_virtual_patient(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One new virtual patient with images (seed 10001, as the demo's new patient): read-only."""
    return simulated_once(tmp_path_factory, "patient10001", {"n": 1, "seed": 10001})
