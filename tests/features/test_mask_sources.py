"""Where the masks come from: the cohort's own (manual) or a segmenter's (auto), per mask and
per row, and a cache that never hands a result of one to the other."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from hepablate.cohort import load_cohort
from hepablate.features.config import ExtractionConfig, ImageNames, SegmenterRef
from hepablate.features.crops import CropConfig
from hepablate.features.extract import ExtractionConfigError, extract
from hepablate.features.masks import AutoMasks, mask_source_columns, patient_images
from hepablate.simulate.generate import SimulationConfig, simulate_cohort

NAMES = ImageNames()
PRE, TUMOURS, LIVER = Path("pre_ct.nii.gz"), Path("pre_tumours.nii.gz"), Path("liver.nii.gz")
DRAWN = {"tumours": Path("auto/pre_tumours.nii.gz"), "liver": Path("auto/liver.nii.gz")}


def test_auto_replaces_every_mask_and_manual_else_auto_only_the_missing_ones() -> None:
    images = {"pre_ct": PRE, "pre_tumours": TUMOURS, "vessels": Path("vessels.nii.gz")}

    assert patient_images("auto", images, NAMES, DRAWN) == {
        "pre_ct": PRE,
        "pre_tumours": DRAWN["tumours"],
        "liver": DRAWN["liver"],
        "vessels": Path("vessels.nii.gz"),  # never drawn by a segmenter
    }
    assert patient_images("manual_else_auto", images, NAMES, DRAWN)["pre_tumours"] == TUMOURS
    assert patient_images("manual_else_auto", images, NAMES, DRAWN)["liver"] == DRAWN["liver"]
    assert mask_source_columns(images, NAMES, DRAWN, "manual_else_auto") == {
        "qa.mask_source": "mixed",
        "qa.mask_source.tumours": "manual",
        "qa.mask_source.liver": "auto",
        "qa.mask_source.ablation": None,
        "qa.mask_source.post_liver": None,
    }
    assert mask_source_columns(images, NAMES, DRAWN, "auto")["qa.mask_source"] == "auto"
    assert mask_source_columns(images, NAMES, {}, "manual")["qa.mask_source"] == "manual"
    assert mask_source_columns({"pre_ct": PRE}, NAMES, {}, "manual")["qa.mask_source"] is None
    # with masks: auto, a mask the segmenter did not draw is missing, not the cohort's
    assert "liver" not in patient_images("auto", {**images, "liver": LIVER}, NAMES, {})


def test_the_config_names_its_segmenter_by_folder_or_with_its_id() -> None:
    config = ExtractionConfig.model_validate({"masks": "auto", "segmenter": "seg"})
    assert config.segmenter == SegmenterRef(bundle=Path("seg"))
    pinned = {"masks": "manual_else_auto", "segmenter": {"bundle": "seg", "id": "ab"}}
    assert ExtractionConfig.model_validate(pinned).segmenter == SegmenterRef(
        bundle=Path("seg"), id="ab"
    )
    with pytest.raises(ValidationError, match="masks: auto needs a segmenter"):
        ExtractionConfig.model_validate({"masks": "auto"})
    with pytest.raises(ValidationError, match="but masks: manual uses none"):
        ExtractionConfig.model_validate({"segmenter": "seg"})


def _entries(cache: Path) -> dict[str, int]:
    """Each cache entry (patient/key) and when its result was written."""
    return {
        f"{entry.parent.name}/{entry.name}": (entry / "result.json").stat().st_mtime_ns
        for entry in cache.glob("*/*")
        if entry.is_dir()
    }


@pytest.fixture(scope="module")
def two_patients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("masks") / "cohort"
    simulate_cohort(SimulationConfig(n=2, seed=21), out, workers=1)
    return out


@pytest.mark.slow
def test_masks_from_elsewhere_are_measured_recorded_and_cached_apart(
    two_patients: Path, tmp_path: Path
) -> None:
    cohort = load_cohort(two_patients)
    # The "segmenter's" masks are copies of the cohort's: the same values, another source.
    drawn: dict[str, dict[str, Path]] = {}
    for patient in cohort.patient_ids:
        folder = tmp_path / "drawn" / patient
        folder.mkdir(parents=True)
        drawn[patient] = {}
        for role, name in (
            ("tumours", "pre_tumours"),
            ("ablation", "post_ablation"),
            ("liver", "liver"),
            ("post_liver", "post_liver"),
        ):
            drawn[patient][role] = Path(shutil.copy(cohort.images[patient][name], folder))
    segmenter = SegmenterRef(bundle=tmp_path / "seg", id="1" * 64)
    manual = ExtractionConfig(
        radiomics=None, crops=CropConfig(enabled=False), register_post_ct=False
    )
    auto = manual.model_copy(update={"masks": "auto", "segmenter": segmenter})
    cache = tmp_path / "cache"

    by_hand = extract(cohort, manual, cache=cache)
    manual_entries = _entries(cache)
    automatic = extract(cohort, auto, cache=cache, auto_masks=AutoMasks("auto", segmenter, drawn))

    margin = "geom.minimal_ablative_margin_mm"
    assert automatic[margin].tolist() == by_hand[margin].tolist()
    assert (by_hand["qa.mask_source"] == "manual").all()
    assert (automatic["qa.mask_source"] == "auto").all()
    assert (automatic["qa.mask_source.liver"] == "auto").all()
    assert (automatic["qa.mask_source.tumours"] == "auto").all()
    # the same bytes, but drawn by a segmenter: entries of their own, not the manual ones
    auto_entries = _entries(cache)
    assert set(auto_entries).isdisjoint(manual_entries) and len(auto_entries) == 2
    extract(cohort, auto, cache=cache, auto_masks=AutoMasks("auto", segmenter, drawn))
    assert _entries(cache) == auto_entries  # read back, not written again
    other = SegmenterRef(bundle=segmenter.bundle, id="2" * 64)
    extract(
        cohort,
        auto.model_copy(update={"segmenter": other}),
        cache=cache,
        auto_masks=AutoMasks("auto", other, drawn),
    )
    assert set(_entries(cache)).isdisjoint(auto_entries)  # another segmenter: extracted again

    # manual_else_auto: a patient without its own zone mask gets the drawn one, and says so
    first, second = cohort.patient_ids
    lacking = dataclasses.replace(
        cohort,
        images={
            **cohort.images,
            first: {k: v for k, v in cohort.images[first].items() if k != "post_ablation"},
        },
    )
    mixed = extract(
        lacking,
        auto.model_copy(update={"masks": "manual_else_auto"}),
        auto_masks=AutoMasks(
            "manual_else_auto", segmenter, {first: {"ablation": drawn[first]["ablation"]}}
        ),
    )
    assert mixed.loc[first, "qa.mask_source"].tolist() == ["mixed"] * len(mixed.loc[first])
    assert mixed.loc[first, "qa.mask_source.ablation"].tolist() == ["auto"] * len(mixed.loc[first])
    assert (mixed.loc[first, "qa.mask_source.tumours"] == "manual").all()
    assert (mixed.loc[second, "qa.mask_source"] == "manual").all()
    assert mixed[margin].tolist() == by_hand[margin].tolist()

    # features never segment: automatic masks without the caller's segmentation are refused
    with pytest.raises(ExtractionConfigError, match="the segmentation runs in the caller"):
        extract(cohort, auto)
    with pytest.raises(ExtractionConfigError, match="config has masks: manual"):
        extract(cohort, manual, auto_masks=AutoMasks("auto", segmenter, drawn))


@pytest.mark.slow
def test_a_drawn_lesion_the_tumours_table_does_not_list_is_a_warning_not_a_row(
    two_patients: Path, tmp_path: Path
) -> None:
    import numpy as np
    import SimpleITK as sitk

    cohort = load_cohort(two_patients)
    patient = cohort.patient_ids[0]
    folder = tmp_path / "drawn"
    folder.mkdir()
    tumours = sitk.ReadImage(str(cohort.images[patient]["pre_tumours"]))
    labels = sitk.GetArrayFromImage(tumours)
    extra = int(labels.max()) + 1
    z, y, x = (s // 2 for s in labels.shape)
    labels[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2] = np.where(
        labels[z - 1 : z + 2, y - 1 : y + 2, x - 1 : x + 2] == 0, extra, labels[z, y, x]
    )
    drawn = sitk.GetImageFromArray(labels)
    drawn.CopyInformation(tumours)
    sitk.WriteImage(drawn, str(folder / "pre_tumours.nii.gz"))
    segmenter = SegmenterRef(bundle=tmp_path / "seg", id="1" * 64)
    config = ExtractionConfig(
        radiomics=None,
        crops=CropConfig(enabled=False),
        register_post_ct=False,
        masks="manual_else_auto",
        segmenter=segmenter,
    )
    lacking = dataclasses.replace(
        cohort,
        images={
            **cohort.images,
            patient: {k: v for k, v in cohort.images[patient].items() if k != "pre_tumours"},
        },
    )

    table = extract(
        lacking,
        config,
        auto_masks=AutoMasks(
            "manual_else_auto", segmenter, {patient: {"tumours": folder / "pre_tumours.nii.gz"}}
        ),
    )

    assert extra not in table.loc[patient].index  # the table's tumours only
    [warning] = [
        w
        for w in table.attrs["hepablate"]["warnings"]
        if "that the tumours table does not list" in w["reason"]
    ]
    assert warning["patient"] == patient
    assert (
        f"1 lesion(s) that the tumours table does not list (labels {extra})" in (warning["reason"])
    )
