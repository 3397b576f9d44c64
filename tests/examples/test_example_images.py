"""The committed example images are what the script in the repository draws."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from hepablate.imaging.io import find_image, read_volume
from tests.conftest import EXAMPLE_COHORT, REPO


def _script():  # type: ignore[no-untyped-def]
    path = REPO / "examples" / "make_minimal_cohort.py"
    spec = importlib.util.spec_from_file_location("make_minimal_cohort", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_script_reproduces_the_committed_images(tmp_path: Path) -> None:
    _script().main(tmp_path)

    committed = sorted(
        p.relative_to(EXAMPLE_COHORT / "images") for p in (EXAMPLE_COHORT / "images").glob("*/*")
    )
    drawn = sorted(p.relative_to(tmp_path / "images") for p in (tmp_path / "images").glob("*/*"))
    assert drawn == committed
    for relative in committed:
        name = relative.name.split(".")[0]
        (ours,) = find_image(tmp_path / "images" / relative.parent, name)
        (theirs,) = find_image(EXAMPLE_COHORT / "images" / relative.parent, name)
        a, b = read_volume(ours), read_volume(theirs)
        np.testing.assert_array_equal(a.array, b.array, err_msg=str(relative))
        assert a.grid.differences(b.grid) == []


def test_example_images_are_small() -> None:
    sizes = [p.stat().st_size for p in (EXAMPLE_COHORT / "images").rglob("*") if p.is_file()]
    assert max(sizes) < 1_000_000
    assert sum(sizes) < 1_500_000


def test_tumour_diameters_in_the_table_match_the_drawn_tumours() -> None:
    import pandas as pd

    tumours = pd.read_csv(EXAMPLE_COHORT / "tumours.csv")
    drawn = {
        (p.patient_id, t.tumour_id): 2 * t.radius_mm for p in _script().PATIENTS for t in p.tumours
    }
    assert {
        (r.patient_id, r.tumour_id): float(r.diameter_mm) for r in tumours.itertuples()
    } == drawn
