"""Prediction: post-processing, the input checks, masks on the scan's own grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hepablate.imaging.io import Grid, Volume
from hepablate.segment.bundle import load_segmenter
from hepablate.segment.data import check_scan
from hepablate.segment.errors import SegmentError
from hepablate.segment.plan import TaskPlan, plan
from hepablate.segment.predict import postprocess, segment_scan

from .test_bundle import _fingerprint, bundle  # noqa: F401 (the fixture)

SPACING = (1.0, 1.0, 1.0)


def _pre() -> TaskPlan:
    return plan(_fingerprint()).tasks["pre"]


def test_the_largest_liver_is_kept_and_lesions_outside_it_or_too_small_are_dropped() -> None:
    labels = np.zeros((40, 40, 40), dtype=np.int64)
    labels[5:30, 5:30, 5:30] = 1  # the liver
    labels[34:38, 34:38, 34:38] = 1  # a speck of "liver" elsewhere
    labels[10:20, 10:20, 10:20] = 2  # a large tumour (1 mL)
    labels[22:26, 22:26, 22:26] = 2  # a small one (0.064 mL)
    labels[27:29, 8:10, 8:10] = 2  # too small (0.008 mL)
    labels[0:3, 36:40, 0:3] = 2  # far outside the liver (0.036 mL, kept by size alone)
    liver, lesions, volumes = postprocess(labels, _pre(), SPACING, 0.02, 3.0)
    assert liver is not None
    assert liver.sum() == 25**3  # the speck is gone; lesions inside count as liver
    assert volumes == [1.0, 0.064]
    assert (lesions[10:20, 10:20, 10:20] == 1).all() and (lesions[22:26, 22:26, 22:26] == 2).all()
    assert set(np.unique(lesions)) == {0, 1, 2}


def test_no_lesion_and_no_liver_give_empty_masks() -> None:
    liver, lesions, volumes = postprocess(np.zeros((8, 8, 8), int), _pre(), SPACING, 0.0, 5.0)
    assert liver is not None and not liver.any() and not lesions.any() and volumes == []


def _grid(size: tuple[int, int, int]) -> Grid:
    return Grid(size, (1.5, 1.5, 2.5), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _body(size: tuple[int, int, int] = (40, 30, 20)) -> Volume:
    """A CT-like block: air around a soft-tissue body."""
    array = np.full(tuple(reversed(size)), -1000, dtype=np.int16)
    array[2:-2, 5:-5, 5:-5] = (
        60 + np.arange(array[2:-2, 5:-5, 5:-5].size).reshape(array[2:-2, 5:-5, 5:-5].shape) % 90
    )
    return Volume(array, _grid(size))


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (Volume(np.zeros((1, 30, 40), np.int16), _grid((40, 30, 1))), r"40 x 30 x 1 voxels"),
        (Volume(np.full((20, 30, 40), -1024, np.int16), _grid((40, 30, 20))), "no anatomy"),
        (
            Volume(np.eye(40, dtype=np.int16)[None].repeat(20, 0)[:, :30], _grid((40, 30, 20))),
            "a mask, not a CT",
        ),
    ],
)
def test_a_scan_that_cannot_be_segmented_is_refused_naming_the_file(
    volume: Volume, message: str
) -> None:
    with pytest.raises(SegmentError, match=rf"^scan\.nii\.gz: .*{message}"):
        check_scan(volume, Path("scan.nii.gz"))


def test_masks_come_back_on_the_scans_own_grid(bundle: Path) -> None:  # noqa: F811
    segmenter = load_segmenter(bundle)
    scan = _body()
    result = segment_scan(segmenter, "post", scan, Path("body.nii.gz"))
    assert result.liver is not None
    assert result.liver.grid == scan.grid and result.lesions.grid == scan.grid
    assert result.lesions.array.shape == scan.array.shape
    assert len(result.lesion_volumes_ml) == int(result.lesions.array.max())
    with pytest.raises(SegmentError, match="has no network for task 'other'"):
        segment_scan(segmenter, "other", scan, Path("body.nii.gz"))
