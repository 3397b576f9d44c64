"""Registration recovers the simulated motion of the follow-up CT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepablate.imaging.io import read_volume
from hepablate.imaging.registration import RegistrationConfig, register
from hepablate.simulate.generate import SimulationConfig, simulate_cohort
from hepablate.simulate.oracle import read_truth


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    out = tmp_path_factory.mktemp("reg") / "cohort"
    simulate_cohort(SimulationConfig(n=1, seed=4), out)
    row = read_truth(out).iloc[0]
    matrix = np.array([float(v) for v in row["motion_matrix"].split()]).reshape(3, 3)
    translation = np.array([float(v) for v in row["motion_translation_mm"].split()])
    return out / "images" / "SIM0001", matrix, translation


def _volumes(folder: Path):  # type: ignore[no-untyped-def]
    return [
        read_volume(folder / f"{name}.nii.gz")
        for name in ("pre_ct", "post_ct", "liver", "post_liver")
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [
        RegistrationConfig(),  # cropped to the livers, gradients at the samples only
        RegistrationConfig(crop_margin_mm=None, gradient_filter=True),  # whole images
    ],
    ids=["cropped", "whole"],
)
def test_rigid_registration_recovers_the_true_motion(patient, config) -> None:  # type: ignore[no-untyped-def]
    folder, matrix, translation = patient
    pre, post, liver, post_liver = _volumes(folder)

    result = register(pre, post, fixed_liver=liver, moving_liver=post_liver, config=config)

    # Points across the liver land where the true motion puts them, within 1 mm.
    points = np.array([[-40.0, 0.0, 0.0], [20.0, -20.0, 10.0], [0.0, 30.0, -30.0]])
    found = np.array([result.transform.TransformPoint(p.tolist()) for p in points])
    expected = points @ matrix.T + translation
    assert np.abs(found - expected).max() < 1.0
    assert result.ok
    assert result.liver_dice is not None and result.liver_dice_before is not None
    assert result.liver_dice > 0.97
    assert result.liver_dice > result.liver_dice_before


@pytest.mark.slow
def test_deformable_stage_runs_and_keeps_the_livers_aligned(patient) -> None:  # type: ignore[no-untyped-def]
    folder, _, _ = patient
    pre, post, liver, post_liver = _volumes(folder)

    result = register(
        pre,
        post,
        fixed_liver=liver,
        moving_liver=post_liver,
        config=RegistrationConfig(deformable=True),
    )

    assert result.ok
    assert result.liver_dice is not None and result.liver_dice > 0.95


@pytest.mark.slow
def test_without_liver_masks_there_is_no_quality_figure(patient) -> None:  # type: ignore[no-untyped-def]
    folder, _, _ = patient
    pre, post, _, _ = _volumes(folder)

    result = register(pre, post)

    assert result.liver_dice is None
    assert "no quality figure" in result.reason


@pytest.mark.slow
def test_registration_is_identical_whatever_the_callers_thread_count(patient) -> None:  # type: ignore[no-untyped-def]
    """ITK sums the metric per thread: with 2 threads two runs differed in the 7th digit and a
    voxel of an ablation zone flipped (found by the extraction benchmark's resume check)."""
    import SimpleITK as sitk

    folder, _, _ = patient
    pre, post, liver, post_liver = _volumes(folder)
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    parameters = []
    try:
        for threads in (2, 1, 2):
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
            result = register(pre, post, fixed_liver=liver, moving_liver=post_liver)
            parameters.append(result.transform.GetParameters())
            assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == threads
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)
    assert parameters[0] == parameters[1] == parameters[2]


def test_cropping_keeps_every_voxel_where_it_is(patient) -> None:  # type: ignore[no-untyped-def]
    from hepablate.imaging.registration import _cropped

    folder, _, _ = patient
    pre, _, liver, _ = _volumes(folder)

    image, cut_liver = _cropped(pre.to_sitk(), liver, 20.0)

    assert image.GetSize() == cut_liver.to_sitk().GetSize()
    assert np.prod(image.GetSize()) < pre.array.size  # smaller than the scan
    assert int(cut_liver.array.sum()) == int(liver.array.sum())  # the whole liver kept
    # The same physical point holds the same value in the cut and the whole image.
    index = tuple(int(i) for i in np.argwhere(cut_liver.array > 0)[0][::-1])
    point = image.TransformIndexToPhysicalPoint(index)
    whole = pre.to_sitk()
    assert image[index] == whole[whole.TransformPhysicalPointToIndex(point)]
