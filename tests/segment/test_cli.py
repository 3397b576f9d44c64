"""`hepablate segment train` and `hepablate segment predict` as a user runs them."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from typer.testing import CliRunner

from hepablate.cli import app
from hepablate.imaging.io import read_volume
from hepablate.simulate.generate import SimulationConfig, simulate_cohort

from .conftest import TINY
from .test_bundle import bundle  # noqa: F401 (the fixture)

runner = CliRunner()

# Measured on 2026-12-01 (one thread; training is deterministic): liver Dice 0.781 on the held-out
# patient's pre CT and 0.783 on its post CT, after 4 epochs of 4 iterations on 3 patients at
# 6 mm. The floor leaves room for another CPU's floating-point sums, not for a regression.
LIVER_DICE_FLOOR = 0.70


def _text(output: str) -> str:
    return " ".join(output.split())


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float((a & b).sum()) / float(a.sum() + b.sum())


@pytest.mark.slow
def test_train_then_predict_a_held_out_patient(tiny_cohort_dir: Path, tmp_path: Path) -> None:
    config = copy.deepcopy(TINY)
    config["training"].update(max_epochs=4, iterations_per_epoch=4)
    config_file = tmp_path / "segment.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "seg"

    trained = runner.invoke(
        app,
        ["segment", "train", str(tiny_cohort_dir), "--out", str(out), "--config", str(config_file)],
    )

    assert trained.exit_code == 0, trained.output
    assert "Wrote the segmentation bundle" in trained.stdout
    assert "pre: best epoch" in _text(trained.stdout) and "on 1 held-out patients" in trained.stdout
    assert not (tmp_path / ".seg.checkpoint").exists()  # removed once the bundle is written

    held_out = tmp_path / "new"
    simulate_cohort(SimulationConfig(n=1, seed=99), held_out, workers=1)
    patient = held_out / "images" / "SIM0001"
    predicted = runner.invoke(
        app, ["segment", "predict", str(out), str(patient), "--out", str(tmp_path / "masks")]
    )

    assert predicted.exit_code == 0, predicted.output
    masks = tmp_path / "masks"
    # (the folder's own pre_tumours are its manual tumours: the zones are matched to them)
    assert {
        "liver.nii.gz",
        "post_ablation.nii.gz",
        "post_liver.nii.gz",
        "pre_tumours.nii.gz",
        "segmentation.json",
    } <= {p.name for p in masks.iterdir()}
    scores = {}
    for mine, truth in (("liver", "liver"), ("post_liver", "post_liver")):
        auto = read_volume(masks / f"{mine}.nii.gz")
        manual = read_volume(patient / f"{truth}.nii.gz")
        assert auto.grid.differences(manual.grid) == []  # on the scan's own grid
        scores[mine] = _dice(auto.array > 0, manual.array > 0)
    assert min(scores.values()) >= LIVER_DICE_FLOOR, scores


def _write(array: np.ndarray, path: Path, spacing: tuple[float, ...] = (1.5, 1.5, 2.5)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: image.GetDimension()])
    sitk.WriteImage(image, str(path))
    return path


@pytest.mark.parametrize(
    ("name", "array", "message"),
    [
        ("slice.nii.gz", np.full((1, 30, 40), 50, np.int16), "40 x 30 x 1 voxels"),
        ("air.nii.gz", np.full((20, 30, 40), -1024, np.int16), "every voxel is -1024"),
        ("flat.nii.gz", np.full((30, 40), 50, np.int16), "a 2-D image"),
    ],
)
def test_a_scan_that_cannot_be_segmented_exits_2_naming_the_file(
    bundle: Path,  # noqa: F811
    tmp_path: Path,
    name: str,
    array: np.ndarray,
    message: str,
) -> None:
    scan = _write(array, tmp_path / name)
    result = runner.invoke(
        app, ["segment", "predict", str(bundle), str(scan), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2, result.output
    assert f"error: {scan}:" in _text(result.output) and message in _text(result.output)
    assert "Traceback" not in result.output and not (tmp_path / "o").exists()


def test_a_tampered_bundle_exits_2_naming_the_file(bundle: Path, tmp_path: Path) -> None:  # noqa: F811
    weights = bundle / "post.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    scan = _write(np.full((20, 30, 40), 50, np.int16), tmp_path / "scan.nii.gz")
    result = runner.invoke(
        app, ["segment", "predict", str(bundle), str(scan), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert f"error: {weights}: changed since the bundle was written" in _text(result.output)


def test_an_unknown_config_key_exits_2_before_any_training(
    tiny_cohort_dir: Path, tmp_path: Path
) -> None:
    config = tmp_path / "segment.yaml"
    config.write_text("training:\n  max_epoch: 3\n", encoding="utf-8")
    result = runner.invoke(
        app,
        [
            "segment",
            "train",
            str(tiny_cohort_dir),
            "--out",
            str(tmp_path / "s"),
            "--config",
            str(config),
        ],
    )
    assert result.exit_code == 2
    assert f"error: {config}: training.max_epoch: unknown key" in _text(result.output)
    assert not (tmp_path / "s").exists()


def test_an_unknown_task_for_a_single_scan_exits_2(bundle: Path, tmp_path: Path) -> None:  # noqa: F811
    scan = _write(np.full((20, 30, 40), 50, np.int16), tmp_path / "scan.nii.gz")
    result = runner.invoke(
        app,
        ["segment", "predict", str(bundle), str(scan), "--out", str(tmp_path / "o"), "--task", "x"],
    )
    assert result.exit_code == 2
    assert "--task x: the bundle has networks for pre, post" in _text(result.output)
