"""`hepablate import-dicom`: two DICOM studies with SEGs become a valid, de-identified cohort."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.cohort import validate_cohort
from hepablate.imaging.io import Volume, read_volume
from hepablate.imaging.segmentations import write_dicom_seg
from tests.conftest import EXAMPLE_COHORT

PHI = ("DOE^JANE", "MRN-4711", "19450312")


def _write_study(volume: Volume, folder: Path, study: str, day: str, description: str) -> None:
    image = volume.to_sitk()
    folder.mkdir(parents=True)
    series = generate_uid(entropy_srcs=[study, description])
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        layer = image[:, :, k]
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": generate_uid(entropy_srcs=[series, str(k)]),
            "0008|0020": day,
            "0008|103e": description,
            "0010|0010": PHI[0],
            "0010|0020": PHI[1],
            "0010|0030": PHI[2],
            "0010|0040": "F",
            "0020|000d": study,
            "0020|000e": series,
            "0020|0052": generate_uid(entropy_srcs=[study, "frame"]),
            "0020|0011": "1",
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(
                f"{v:.4f}" for v in image.TransformIndexToPhysicalPoint((0, 0, k))
            ),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0018|0050": f"{image.GetSpacing()[2]:.4f}",
        }
        for tag, value in tags.items():
            layer.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{k:03d}.dcm"))
        writer.Execute(layer)


@pytest.fixture
def dicom_source(tmp_path: Path) -> Path:
    """Patient P01 of the example as a hospital would export it: two studies, SEGs, PHI."""
    images = EXAMPLE_COHORT / "images" / "P01"
    pre, post = read_volume(images / "pre_ct.nii.gz"), read_volume(images / "post_ct.nii.gz")
    tumours = read_volume(images / "pre_tumours.nii.gz")
    zones = read_volume(images / "post_ablation.nii.gz")
    liver = read_volume(images / "liver.nii.gz")
    source = tmp_path / "export"
    pre_study, post_study = generate_uid(entropy_srcs=["pre"]), generate_uid(entropy_srcs=["post"])
    _write_study(pre, source / "study1" / "ct", pre_study, "20210304", "PV pre")
    _write_study(post, source / "study2" / "ct", post_study, "20210415", "PV post")

    def binary(v: Volume, label: int) -> Volume:
        return Volume(array=(v.array == label).astype(np.uint8), grid=v.grid)

    write_dicom_seg(
        {"Tumour 1": binary(tumours, 1), "Liver": binary(liver, 1)},
        source / "study1" / "ct",
        source / "study1" / "seg.dcm",
    )
    write_dicom_seg(
        {"Ablation zone 1": binary(zones, 1)},
        source / "study2" / "ct",
        source / "study2" / "seg.dcm",
    )
    (source / "README.txt").write_text("exported by PACS")
    return source


def test_import_gives_a_valid_deidentified_cohort(dicom_source: Path, tmp_path: Path) -> None:
    out, mapping = tmp_path / "cohort", tmp_path / "private" / "mapping.csv"

    result = CliRunner().invoke(
        app, ["import-dicom", str(dicom_source), "--out", str(out), "--mapping", str(mapping)]
    )

    assert result.exit_code == 0, result.output
    assert validate_cohort(out).errors == []
    images = out / "images" / "P0001"
    assert sorted(p.name for p in images.iterdir()) == [
        "liver.nii.gz",
        "post_ablation.nii.gz",
        "post_ct.nii.gz",
        "pre_ct.nii.gz",
        "pre_tumours.nii.gz",
    ]
    original = read_volume(EXAMPLE_COHORT / "images" / "P01" / "pre_tumours.nii.gz")
    imported = read_volume(images / "pre_tumours.nii.gz")
    np.testing.assert_array_equal(imported.array, original.array)
    assert imported.grid.differences(original.grid) == []
    assert "days_pre_to_post" in (out / "patients.csv").read_text()
    assert "42" in (out / "patients.csv").read_text()  # 4 March to 15 April 2021
    # No identifying value anywhere in the cohort; all of them in the mapping.
    for path in out.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(value.encode() in content for value in (*PHI, "2021")), path
    link = mapping.read_text()
    assert "MRN-4711" in link and "DOE^JANE" in link and "2021-03-04" in link
    assert "README.txt" in result.stdout  # the skipped file is named


def test_mapping_inside_the_cohort_is_refused(dicom_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "cohort"

    result = CliRunner().invoke(
        app,
        [
            "import-dicom",
            str(dicom_source),
            "--out",
            str(out),
            "--mapping",
            str(out / "mapping.csv"),
        ],
    )

    assert result.exit_code == 2
    assert "outside the cohort" in result.stdout


def test_one_study_is_not_enough(dicom_source: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(dicom_source / "study2")

    result = CliRunner().invoke(
        app,
        [
            "import-dicom",
            str(dicom_source),
            "--out",
            str(tmp_path / "c"),
            "--mapping",
            str(tmp_path / "m.csv"),
        ],
    )

    assert result.exit_code == 2
    assert "patient MRN-4711: 1 study with images" in result.stdout
