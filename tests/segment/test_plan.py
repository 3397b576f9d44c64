"""The fingerprint of a cohort and the plan it turns into."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from hepablate.cohort import Cohort
from hepablate.segment.data import DEFAULT_TASKS
from hepablate.segment.errors import SegmentError
from hepablate.segment.plan import (
    Budget,
    Fingerprint,
    IntensityStats,
    Plan,
    TaskFingerprint,
    fingerprint,
    load_overrides,
    plan,
)
from hepablate.simulate.render import HU_ABLATION, HU_LIVER, HU_TUMOUR


@pytest.fixture(scope="module")
def measured(tiny_cohort: Cohort) -> Fingerprint:
    return fingerprint(tiny_cohort)


def test_the_fingerprint_measures_spacings_sizes_intensities_and_lesions(
    measured: Fingerprint, tiny_cohort_dir: Path
) -> None:
    assert set(measured.tasks) == {"pre", "post"} and measured.skipped == {}
    pre, post = measured.tasks["pre"], measured.tasks["post"]
    assert pre.patients == ["SIM0001", "SIM0002", "SIM0003"]
    assert pre.median_spacing_mm == (1.5, 1.5, 2.5)
    assert pre.median_size == (147, 117, 62)
    # The simulator's tissue values, through its noise: liver ~110 HU, tumour ~68, zone ~35.
    assert abs(pre.intensity["liver"].p50 - HU_LIVER) < 15
    assert abs(pre.intensity["tumour"].p50 - HU_TUMOUR) < 20
    assert abs(post.intensity["zone"].p50 - HU_ABLATION) < 25
    assert pre.intensity["tumour"].p50 < pre.intensity["liver"].p50
    # One connected lesion per tumour of the table (the virtual tumours do not touch).
    tumours = pd.read_csv(tiny_cohort_dir / "tumours.csv").groupby("patient_id").size()
    assert pre.lesions_per_case == [int(tumours[p]) for p in pre.patients]
    assert len(pre.lesion_diameters_mm) == sum(pre.lesions_per_case)
    assert all(5 < d < 60 for d in pre.lesion_diameters_mm)
    assert 0.05 < pre.label_fractions["liver"] < 0.4
    # It is data: written as JSON and read back the same.
    assert Fingerprint.model_validate_json(measured.model_dump_json()) == measured


def test_the_plan_fits_its_budget_and_normalises_with_the_foreground(
    measured: Fingerprint,
) -> None:
    planned = plan(measured)
    budget = planned.budget
    for name, task in planned.tasks.items():
        fp = measured.tasks[name]
        # The median spacing, coarsened just enough for the median image to fit.
        assert all(
            t >= s for t, s in zip(task.target_spacing_mm, fp.median_spacing_mm, strict=True)
        )
        extent = [n * s for n, s in zip(fp.median_size, fp.median_spacing_mm, strict=True)]
        voxels = math.prod(e / t for e, t in zip(extent, task.target_spacing_mm, strict=True))
        assert budget.max_image_voxels * 0.85 < voxels <= budget.max_image_voxels
        assert math.prod(task.patch_size) <= budget.max_patch_voxels
        for axis in range(3):
            assert task.patch_size[axis] % math.prod(s[axis] for s in task.network.strides) == 0
        assert task.network.strides[0] == (1, 1, 1)
        assert task.network.filters == [16, 32, 64, 128][: len(task.network.strides)]
        assert task.labels == ["background", "liver", "tumour" if name == "pre" else "zone"]
        foreground = fp.intensity["foreground"]
        assert task.normalisation.clip_low == foreground.p00_5
        assert task.normalisation.clip_high == foreground.p99_5
        assert task.normalisation.std == pytest.approx(foreground.std)
        assert 2 <= task.batch_size <= 8
    assert Plan.model_validate_json(planned.model_dump_json()) == planned


def _thin_slices() -> Fingerprint:
    """A full-size CT fingerprint: 0.8 mm in-plane, 2.5 mm slices, 512 x 512 x 200."""
    stats = IntensityStats(p00_5=-50, p50=100, p99_5=200, mean=100, std=30, voxels=1000)
    task = TaskFingerprint(
        spec=DEFAULT_TASKS["pre"],
        patients=["A", "B"],
        spacings_mm=[(0.8, 0.8, 2.5)] * 2,
        sizes=[(512, 512, 200)] * 2,
        median_spacing_mm=(0.8, 0.8, 2.5),
        median_size=(512, 512, 200),
        intensity={"foreground": stats, "liver": stats, "tumour": stats},
        label_fractions={"background": 0.9, "liver": 0.09, "tumour": 0.01},
        lesions_per_case=[1, 1],
        lesion_diameters_mm=[20.0, 30.0],
    )
    return Fingerprint(cohort="thin", tasks={"pre": task})


def test_thin_slices_coarsen_in_plane_first_and_keep_z_unpooled_while_anisotropic() -> None:
    planned = plan(_thin_slices()).tasks["pre"]
    x, y, z = planned.target_spacing_mm
    # 410 x 410 x 500 mm does not fit 2^20 voxels at 2.5 mm: in-plane reaches z, then all grow.
    assert x == y and z >= 2.5 and abs(x - z) / z < 0.06
    budget = Budget(max_image_voxels=512 * 512 * 200)
    native = plan(_thin_slices(), {"budget": budget.model_dump()}).tasks["pre"]
    assert native.target_spacing_mm == (0.8, 0.8, 2.5)
    # nnU-Net's rule: z (3x the in-plane spacing) gets 1-wide kernels and no pooling until
    # in-plane pooling has brought the spacings within a factor of 2.
    assert native.network.kernel_sizes[0] == (3, 3, 1)
    assert native.network.strides[1] == (2, 2, 1)


def test_a_config_overrides_any_field_and_derived_fields_follow_the_budget(
    measured: Fingerprint,
) -> None:
    planned = plan(
        measured,
        {
            "budget": {"max_patch_voxels": 16 * 16 * 16},
            "tasks": {"pre": {"target_spacing_mm": [6, 6, 6], "batch_size": 3}},
            "training": {"max_epochs": 7},
            "inference": {"min_lesion_volume_ml": 0.5},
        },
    )
    pre, post = planned.tasks["pre"], planned.tasks["post"]
    assert pre.target_spacing_mm == (6.0, 6.0, 6.0) and pre.batch_size == 3
    assert math.prod(pre.patch_size) <= 16**3 and math.prod(post.patch_size) <= 16**3
    assert post.target_spacing_mm == plan(measured).tasks["post"].target_spacing_mm
    assert planned.training.max_epochs == 7 and planned.inference.min_lesion_volume_ml == 0.5


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"training": {"max_epoch": 3}}, "segment.yaml: training.max_epoch: unknown key"),
        ({"tasks": {"liver": {}}}, "segment.yaml: tasks.liver: unknown task"),
        ({"tasks": {"pre": {"patch": [1, 2, 3]}}}, "segment.yaml: tasks.pre.patch: unknown key"),
        ({"budget": {"cpu_cores": 0}}, "segment.yaml: budget.cpu_cores: Input should be"),
        ({"tasks": {"pre": {"target_spacing_mm": [1, 2]}}}, "tasks.pre.target_spacing_mm"),
    ],
)
def test_a_config_with_an_unknown_key_or_a_bad_value_is_refused_naming_it(
    measured: Fingerprint, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(SegmentError, match=message.replace(".", r"\.")):
        plan(measured, overrides, source="segment.yaml")


def test_config_files_are_read_as_yaml_mappings(tmp_path: Path) -> None:
    good = tmp_path / "segment.yaml"
    good.write_text("training:\n  max_epochs: 3\n", encoding="utf-8")
    assert load_overrides(good) == {"training": {"max_epochs": 3}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(SegmentError, match=r"bad\.yaml: not a mapping"):
        load_overrides(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("training: [\n", encoding="utf-8")
    with pytest.raises(SegmentError, match=r"broken\.yaml: not valid YAML"):
        load_overrides(broken)


def test_a_cohort_without_the_masks_of_a_task_skips_it(tiny_cohort: Cohort) -> None:
    tasks = {
        "pre": DEFAULT_TASKS["pre"],
        "other": DEFAULT_TASKS["pre"].model_copy(update={"lesion": "metastases"}),
    }
    found = fingerprint(tiny_cohort, tasks)
    assert set(found.tasks) == {"pre"}
    assert found.skipped == {"other": "cohort.yaml declares no image metastases"}
