"""Radiomics, robustness, crops, caching and parallelism of `extract` on a virtual cohort."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hepablate.cohort import load_cohort
from hepablate.features import extract as extraction
from hepablate.features.crops import load_crops
from hepablate.features.extract import ExtractionConfig, extract
from hepablate.imaging.io import Volume, read_volume, write_volume
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import read_truth

# Its fixtures take tens of seconds: the whole module is left out of make test-fast.
pytestmark = pytest.mark.slow

# Fast families only (morphology takes seconds per region); every region and perturbation.
FAST = ExtractionConfig.model_validate(
    {
        "radiomics": {"families": ["stat", "ih", "cm"]},
        "robustness": {"fraction": 1.0, "min_tumours": 3},
    }
)


@pytest.fixture(scope="module")
def virtual(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("radiomics") / "cohort"
    simulate_cohort(SimulationConfig(n=5, seed=21), out, workers=2)
    return out


@pytest.fixture(scope="module")
def table(virtual: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    cache = tmp_path_factory.mktemp("cache")
    return extract(load_cohort(virtual), FAST, workers=2, cache=cache)


def test_three_regions_per_tumour_with_config_and_icc_in_metadata(table: pd.DataFrame) -> None:
    for region in ("tumour", "ring", "ablation"):
        mean = table[f"rad.{region}.stat.mean"].astype(float)
        assert mean.notna().all(), region
    assert not any(".morph." in c for c in table.columns)
    # Tumours are darker than the ring of liver around them in the simulator's portal phase.
    assert (table["rad.tumour.stat.mean"] < table["rad.ring.stat.mean"]).mean() >= 0.8
    info = table.attrs["hepablate"]
    assert info["extraction_config"]["radiomics"]["bin_width"] == 25.0
    robustness = info["robustness"]
    assert robustness["n_tumours"] == len(table)
    icc = robustness["icc"]
    radiomics = {c for c in table.columns if c.startswith("rad.")}
    # Every feature has an ICC but those with no variance at all (e.g. the histogram mode).
    assert set(icc) <= radiomics
    assert len(icc) >= 0.9 * len(radiomics)
    assert all(-1.0 <= v <= 1.0 for v in icc.values())
    # One-voxel mask changes move every tumour's mean alike (about 4 HU at 1.5 mm voxels) and
    # keep their order: ICC(3,1), the default, does not count that shared shift (measured 0.86
    # here), ICC(1,1) does (0.28: tumours differ about as much as the shift).
    assert robustness["method"].startswith("ICC(3,1)")
    assert icc["rad.tumour.stat.mean"] > 0.75


def test_crops_cover_the_tumour_at_fixed_physical_size(table: pd.DataFrame, virtual: Path) -> None:
    truth = read_truth(virtual)
    for (patient, tumour), _ in table.iterrows():
        crops = load_crops(table, str(patient), int(tumour))
        pre, post = crops["pre"], crops["post"]
        assert pre.shape == post.shape == (3, 32, 32, 32)
        volume_ml = pre[1].sum() * 2.0**3 / 1000
        true_ml = truth.loc[(patient, tumour), "true_tumour_volume_ml"]
        assert volume_ml == pytest.approx(true_ml, rel=0.25)
        centre = np.argwhere(pre[1] > 0).mean(axis=0)
        assert np.allclose(centre, 15.5, atol=1.0)  # the tumour sits in the middle
        assert post[1].sum() > pre[1].sum()  # the zone is larger than the tumour
        assert pre[0][pre[1] > 0].mean() == pytest.approx(
            table.loc[(patient, tumour), "rad.tumour.stat.mean"], abs=15
        )


def test_cache_reuses_unchanged_patients_and_resumes_a_killed_run(
    virtual: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cohort_dir = tmp_path / "cohort"
    shutil.copytree(virtual, cohort_dir)
    cache = tmp_path / "cache"
    config = FAST.model_copy(
        update={"robustness": FAST.robustness.model_copy(update={"fraction": 0})}
    )
    calls: list[str] = []
    original = extraction._patient_features

    def counting(task: extraction._PatientTask) -> extraction.PatientResult:
        calls.append(task.patient_id)
        if len(calls) == 3 and killed:
            raise KeyboardInterrupt  # the run is stopped while the third patient is extracted
        return original(task)

    monkeypatch.setattr(extraction, "_patient_features", counting)
    killed = True
    with pytest.raises(KeyboardInterrupt):
        extract(load_cohort(cohort_dir), config, workers=1, cache=cache)
    assert len(calls) == 3

    killed, calls[:] = False, []
    first = extract(load_cohort(cohort_dir), config, workers=1, cache=cache)
    assert len(calls) == 3  # the two patients finished before the stop are not redone

    calls.clear()
    again = extract(load_cohort(cohort_dir), config, workers=1, cache=cache)
    assert calls == []
    pd.testing.assert_frame_equal(first, again)

    mask = cohort_dir / "images" / "SIM0002" / "pre_tumours.nii.gz"
    mask.write_bytes(mask.read_bytes())  # same bytes: still cached
    ct_path = cohort_dir / "images" / "SIM0002" / "pre_ct.nii.gz"
    ct = read_volume(ct_path)
    write_volume(Volume((ct.array + 20).astype(ct.array.dtype), ct.grid), ct_path)  # brighter
    calls.clear()
    changed = extract(load_cohort(cohort_dir), config, workers=1, cache=cache)
    assert calls == ["SIM0002"]
    assert not np.isclose(
        changed.loc[("SIM0002", 1), "rad.tumour.stat.mean"],
        first.loc[("SIM0002", 1), "rad.tumour.stat.mean"],
    )


@pytest.mark.acceptance  # minutes: make acceptance (CI's 20-minute budget)
def test_dask_cluster_gives_the_local_table(virtual: Path, table: pd.DataFrame) -> None:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        on_dask = extract(load_cohort(virtual), FAST, scheduler=cluster.scheduler_address)

    pd.testing.assert_frame_equal(
        on_dask.drop(columns=[c for c in on_dask if c.startswith("qa.registration_liver")]),
        table.drop(columns=[c for c in table if c.startswith("qa.registration_liver")]),
    )
    assert on_dask.attrs["hepablate"]["robustness"]["icc"] == pytest.approx(
        table.attrs["hepablate"]["robustness"]["icc"]
    )


def test_a_tumour_partly_outside_the_resegmentation_range_is_a_warning(tmp_path: Path) -> None:
    """Bright voxels in a tumour (3% of it at 900 HU) are left out of its radiomics by the
    re-segmentation range; the FeatureTable's warnings say how many, the values stay."""
    cohort_dir = tmp_path / "cohort"
    simulate_cohort(SimulationConfig(n=1, seed=5), cohort_dir, workers=1)
    folder = cohort_dir / "images" / "SIM0001"
    scan, tumours = (
        read_volume(folder / "pre_ct.nii.gz"),
        read_volume(folder / "pre_tumours.nii.gz"),
    )
    inside = np.argwhere(tumours.array == 1)
    array = scan.array.copy()
    array[tuple(inside[::33].T)] = 900.0
    write_volume(Volume(array, scan.grid), folder / "pre_ct.nii.gz")
    config = ExtractionConfig.model_validate(
        {
            "radiomics": {"families": ["stat"]},
            "regions": ["tumour"],
            "robustness": {"fraction": 0.0},
            "crops": {"enabled": False},
        }
    )

    table = extract(load_cohort(cohort_dir), config)

    assert np.isfinite(table.loc[("SIM0001", 1), "rad.tumour.stat.mean"])
    assert table.loc[("SIM0001", 1), "rad.tumour.stat.max"] <= 350.0
    [warning] = [
        w
        for w in table.attrs["hepablate"]["warnings"]
        if w["step"] == "radiomics" and w["tumour"] == 1
    ]
    assert warning["columns"] == ["rad.tumour.*"] and not warning["left_empty"]
    share = float(warning["reason"].split("%")[0])
    assert 2.0 <= share <= 4.5  # a thirty-third of the tumour, on the resampled radiomics grid
    assert "outside the re-segmentation range [-150, 350] HU" in warning["reason"]
