"""Ablation zones matched to the tumours they treat: the rule, a patient, a cohort end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.cohort import load_cohort
from hepablate.features.crops import CropConfig
from hepablate.features.extract import ExtractionConfig, extract
from hepablate.imaging.io import Volume, read_volume, write_volume
from hepablate.imaging.registration import RegistrationConfig
from hepablate.segment.bundle import load_segmenter
from hepablate.segment.match import MAX_GAP_MM, match_lesions
from hepablate.segment.patient import SEGMENTATION_FILE, SegmentationRecord, segment_patient

runner = CliRunner()
SPACING = (1.0, 1.0, 1.0)


def _ball(
    shape: tuple[int, int, int], centre: tuple[float, float, float], radius: float
) -> np.ndarray:
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2


def test_a_zone_takes_the_tumour_it_covers_and_its_pieces_are_merged() -> None:
    shape = (60, 60, 120)
    tumours = np.zeros(shape, np.uint8)
    tumours[_ball(shape, (30, 30, 30), 6)] = 1
    tumours[_ball(shape, (30, 30, 90), 6)] = 2
    found = np.zeros(shape, np.uint8)
    found[_ball(shape, (30, 30, 92), 10)] = 1  # over tumour 2 (it is numbered by volume)
    found[_ball(shape, (30, 30, 30), 9) & (np.indices(shape)[2] < 30)] = 2  # half over 1 ...
    found[_ball(shape, (30, 30, 30), 9) & (np.indices(shape)[2] > 31)] = 3  # ... the other half

    matching = match_lesions(found, 3, tumours, SPACING)

    assert [(m.tumour, m.components, m.matched_by) for m in matching.matched] == [
        (1, (2, 3), "overlap"),
        (2, (1,), "overlap"),
    ]
    one, two = matching.matched
    assert two.overlap_share == 1.0 and two.distance_mm == pytest.approx(2.0, abs=0.05)
    # the two halves leave a slab of 2 voxels of tumour 1 uncovered (x = 30, 31)
    slab = float((tumours[..., 30:32] == 1).sum()) / float((tumours == 1).sum())
    assert one.overlap_share == pytest.approx(1.0 - slab, abs=1e-4)
    assert matching.unmatched == []
    matched, unmatched = matching.relabel(found)
    assert set(np.unique(matched[found == 1])) == {2} and set(np.unique(matched[found == 3])) == {1}
    assert not unmatched.any()


def test_without_overlap_the_nearest_tumour_within_the_gap_else_unmatched() -> None:
    shape = (40, 40, 160)
    tumours = np.zeros(shape, np.uint8)
    tumours[_ball(shape, (20, 20, 20), 5)] = 1  # equivalent radius ~5 mm
    found = np.zeros(shape, np.uint8)
    # a zone of radius 8 whose centre is 5 + 8 + 8 mm from the tumour's: a gap of ~8 mm
    found[_ball(shape, (20, 20, 41), 8)] = 1
    # another 5 + 3 + 14 mm away: a gap of ~14 mm, beyond MAX_GAP_MM
    found[_ball(shape, (20, 20, 42 + 40), 3)] = 2
    found[_ball(shape, (20, 20, 140), 3)] = 3  # far away

    matching = match_lesions(found, 4, tumours, SPACING)  # component 4 never reached this grid

    assert [(m.tumour, m.components, m.matched_by) for m in matching.matched] == [
        (1, (1,), "nearest_centroid")
    ]
    assert matching.matched[0].overlap_share == 0.0
    assert [u.component for u in matching.unmatched] == [2, 3, 4]
    assert f"more than {MAX_GAP_MM:g} mm beyond" in matching.unmatched[0].reason
    assert matching.unmatched[2].reason == "no voxel left on the tumours' grid"
    matched, unmatched = matching.relabel(found)
    assert set(np.unique(unmatched)) == {0, 1, 2}  # numbered in the order of the list
    assert set(np.unique(matched)) == {0, 1}


def test_a_zone_over_two_whole_tumours_goes_to_the_nearer_centre() -> None:
    shape = (40, 40, 80)
    tumours = np.zeros(shape, np.uint8)
    tumours[_ball(shape, (20, 20, 30), 3)] = 1
    tumours[_ball(shape, (20, 20, 44), 3)] = 2
    found = _ball(shape, (20, 20, 41), 14).astype(np.uint8)  # covers both whole; nearer to 2

    matching = match_lesions(found, 1, tumours, SPACING)

    assert [(m.tumour, m.overlap_share, m.matched_by) for m in matching.matched] == [
        (2, 1.0, "nearest_centroid")
    ]


# --- one patient, with the trained tiny segmenter ------------------------------------------


def _shifted(source: Path, target: Path, shift_mm: float) -> Path:
    """The patient's images, the post CT (and its masks) moved along x by ``shift_mm``."""
    shutil.copytree(source, target)
    for name in ("post_ct", "post_ablation", "post_liver"):
        volume = read_volume(target / f"{name}.nii.gz")
        origin = list(volume.grid.origin_mm)
        origin[0] += shift_mm
        grid = type(volume.grid)(
            volume.grid.size, volume.grid.spacing_mm, tuple(origin), volume.grid.direction
        )
        write_volume(Volume(volume.array, grid), target / f"{name}.nii.gz")
    return target


@pytest.mark.slow
def test_zones_take_the_manual_tumour_ids_through_the_registration(
    trained_bundle: Path, tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    patient = _shifted(tiny_cohort_dir / "images" / "SIM0003", tmp_path / "SIM0003", 40.0)
    manual = read_volume(patient / "pre_tumours.nii.gz")
    renamed = tmp_path / "tumours.nii.gz"  # tumour 1 renamed 7: the zone must follow the id
    write_volume(
        Volume(np.where(manual.array == 1, 7, manual.array).astype(np.uint8), manual.grid), renamed
    )
    segmenter = load_segmenter(trained_bundle)

    result = segment_patient(segmenter, patient, tmp_path / "out", renamed)

    record = SegmentationRecord.model_validate_json((result.folder / SEGMENTATION_FILE).read_text())
    assert record == result.record and record.tumours == "manual"
    assert record.registration is not None and record.registration.ok
    # The 40 mm shift is undone: without it the livers would barely meet.
    assert record.registration.liver_dice is not None and record.registration.liver_dice > 0.9
    post = record.scans["post"]
    assert post.numbering == "tumours"
    assert [(z.label, z.tumour, z.matched_by) for z in post.lesions] == [(7, 7, "overlap")]
    assert post.lesions[0].overlap_share is not None and post.lesions[0].overlap_share >= 0.9
    zones = read_volume(result.masks["post_ablation"])
    truth = read_volume(patient / "post_ablation.nii.gz")
    assert zones.grid.differences(truth.grid) == []  # on the post CT's own grid
    assert set(np.unique(zones.array)) == {0, 7}
    # the zone written for tumour 7 is where the true zone of tumour 1 is
    assert float((truth.array[zones.array == 7] == 1).mean()) > 0.5
    assert post.lesions[0].volume_ml == pytest.approx(
        float((zones.array == 7).sum()) * zones.voxel_volume_ml, abs=1e-3
    )
    assert 0.0 < post.lesions[0].probability <= 1.0  # type: ignore[operator]
    unmatched = read_volume(result.masks["post_ablation_unmatched"]).array
    assert int(unmatched.max()) == len(post.unmatched) > 0
    assert not (unmatched.astype(bool) & zones.array.astype(bool)).any()
    pre = record.scans["pre"]
    assert pre.numbering == "manual" and [t.label for t in pre.lesions] == [7]
    assert np.array_equal(
        read_volume(result.masks["pre_tumours"]).array, read_volume(renamed).array
    )
    assert pre.dicom_seg is None and "not a DICOM series" in pre.dicom_seg_note


@pytest.mark.slow
def test_a_post_ct_alone_keeps_the_numbering_by_volume_and_says_so(
    trained_bundle: Path, tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    scan = tiny_cohort_dir / "images" / "SIM0001" / "post_ct.nii.gz"

    result = segment_patient(load_segmenter(trained_bundle), {"post": scan}, tmp_path)

    post = result.record.scans["post"]
    assert result.record.tumours == "none" and result.record.registration is None
    assert post.numbering == "volume" and "only a post-ablation CT" in post.numbering_note
    volumes = [z.volume_ml for z in post.lesions]
    assert volumes == sorted(volumes, reverse=True) and [z.label for z in post.lesions] == list(
        range(1, len(volumes) + 1)
    )
    assert int(read_volume(result.masks["post_ablation"]).array.max()) == len(volumes)


@pytest.mark.slow
def test_a_failed_registration_matches_no_zone(
    trained_bundle: Path, tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    impossible = RegistrationConfig(min_liver_dice=1.0)  # no registration reaches it

    result = segment_patient(
        load_segmenter(trained_bundle),
        tiny_cohort_dir / "images" / "SIM0002",
        tmp_path,
        registration=impossible,
    )

    record = result.record
    assert record.tumours == "predicted" and record.registration is not None
    assert not record.registration.ok and "below 1.00" in record.registration.note
    post = record.scans["post"]
    assert post.lesions == [] and len(post.unmatched) > 0
    assert all(u.reason.startswith("not matched: liver Dice") for u in post.unmatched)
    assert not read_volume(result.masks["post_ablation"]).array.any()
    assert int(read_volume(result.masks["post_ablation_unmatched"]).array.max()) == len(
        post.unmatched
    )


# --- a cohort, end to end ---------------------------------------------------------------------


@pytest.mark.slow
def test_predicted_masks_of_a_cohort_validate_and_extract(
    trained_bundle: Path, tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "auto"
    predicted = runner.invoke(
        app, ["segment", "predict", str(trained_bundle), str(tiny_cohort_dir), "--out", str(out)]
    )
    assert predicted.exit_code == 0, predicted.output
    assert "zone(s) matched to tumours" in predicted.stdout

    # The cohort's tables, schema and scans beside the predicted masks; vessels are not
    # predicted.
    schema = yaml.safe_load((tiny_cohort_dir / "cohort.yaml").read_text(encoding="utf-8"))
    del schema["images"]["masks"]["vessels"]
    (out / "cohort.yaml").write_text(yaml.safe_dump(schema), encoding="utf-8")
    for table in ("patients.csv", "tumours.csv"):
        shutil.copy(tiny_cohort_dir / table, out / table)
    for folder in (out / "images").iterdir():
        for scan in ("pre_ct.nii.gz", "post_ct.nii.gz"):
            shutil.copy(tiny_cohort_dir / "images" / folder.name / scan, folder / scan)
        record = json.loads((folder / SEGMENTATION_FILE).read_text(encoding="utf-8"))
        assert record["tumours"] == "manual"  # each patient folder has its pre_tumours

    validated = runner.invoke(app, ["validate", str(out), "--json"])
    assert validated.exit_code == 0, validated.output
    codes = {p["code"] for p in json.loads(validated.stdout)["problems"]}
    # segmentation.json and the unmatched lesions are files the cohort does not declare
    assert codes <= {"images.undeclared_file", "outcome.single_outcome"}, codes

    config = ExtractionConfig(radiomics=None, crops=CropConfig(enabled=False))
    table = extract(load_cohort(out), config, cache=tmp_path / "cache")

    assert len(table) == 3 and table["qa.registration_ok"].all()
    margins = table["geom.minimal_ablative_margin_mm"].astype(float)
    assert np.isfinite(margins).all()
    assert (table["geom.ablation_volume_ml"].astype(float) > 0).all()
