"""The segmentation bundle: written without pickle, verified on load, refused when tampered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hepablate.segment.bundle import load_segmenter, save_segmenter, segmenter_id
from hepablate.segment.data import DEFAULT_TASKS
from hepablate.segment.errors import SegmentError
from hepablate.segment.network import build_network
from hepablate.segment.plan import Fingerprint, IntensityStats, TaskFingerprint, plan
from hepablate.segment.train import EpochRecord, TaskResult, TrainResult

from .conftest import TINY


def _fingerprint() -> Fingerprint:
    stats = IntensityStats(p00_5=-50, p50=100, p99_5=200, mean=100, std=30, voxels=1000)
    tasks = {}
    for name, spec in DEFAULT_TASKS.items():
        tasks[name] = TaskFingerprint(
            spec=spec,
            patients=["A", "B"],
            spacings_mm=[(1.5, 1.5, 2.5)] * 2,
            sizes=[(147, 117, 62)] * 2,
            median_spacing_mm=(1.5, 1.5, 2.5),
            median_size=(147, 117, 62),
            intensity=dict.fromkeys(["foreground", *spec.labels[1:]], stats),
            label_fractions=dict.fromkeys(spec.labels, 1 / 3),
            lesions_per_case=[1, 1],
            lesion_diameters_mm=[20.0, 30.0],
        )
    return Fingerprint(cohort="test", tasks=tasks)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A bundle of untrained networks (what is tested is the files, not the training)."""
    fingerprint = _fingerprint()
    planned = plan(fingerprint, TINY)
    torch.manual_seed(0)
    result = TrainResult(planned)
    for name, task in planned.tasks.items():
        result.tasks[name] = TaskResult(
            state=build_network(task).state_dict(),
            training_patients=["A"],
            validation_patients=["B"],
            history=[EpochRecord(1, 1.5, {"liver": 0.5, "x": 0.1}, 2.0)],
            best_epoch=1,
            stopped_early=False,
        )
    return save_segmenter(result, fingerprint, TINY, tmp_path / "seg")


def test_a_bundle_loads_its_plan_and_networks_and_holds_no_pickle(bundle: Path) -> None:
    names = sorted(p.name for p in bundle.iterdir())
    assert names == [
        "config.json",
        "fingerprint.json",
        "manifest.json",
        "plan.json",
        "post.safetensors",
        "pre.safetensors",
        "training.json",
    ]
    loaded = load_segmenter(bundle)
    assert loaded.manifest.tasks == ["pre", "post"]
    assert loaded.manifest.versions["torch"] == torch.__version__
    assert loaded.plan == plan(_fingerprint(), TINY)
    assert loaded.training["pre"].validation_patients == ["B"]
    assert json.loads((bundle / "config.json").read_text(encoding="utf-8")) == TINY
    torch.manual_seed(0)
    expected = build_network(loaded.plan.tasks["pre"]).state_dict()
    got = loaded.networks["pre"].state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert len(segmenter_id(bundle)) == 64
    for path in bundle.iterdir():  # pickle streams start with b"\x80" and a protocol number
        assert not path.read_bytes().startswith(b"\x80")


def test_a_tampered_weight_file_is_refused(bundle: Path) -> None:
    weights = bytearray((bundle / "pre.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (bundle / "pre.safetensors").write_bytes(bytes(weights))
    with pytest.raises(SegmentError, match=r"pre\.safetensors: changed since the bundle"):
        load_segmenter(bundle)


def test_an_edited_plan_is_refused(bundle: Path) -> None:
    text = (bundle / "plan.json").read_text(encoding="utf-8")
    (bundle / "plan.json").write_text(text.replace('"overlap": 0.25', '"overlap": 0.5'), "utf-8")
    with pytest.raises(SegmentError, match=r"plan\.json: changed since the bundle"):
        load_segmenter(bundle)


def test_weights_that_do_not_fit_the_plan_are_refused_even_when_rehashed(bundle: Path) -> None:
    import hashlib

    (bundle / "pre.safetensors").write_bytes((bundle / "post.safetensors").read_bytes())
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["pre.safetensors"] = manifest["files"]["post.safetensors"]
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    # Same shapes (both tasks have three classes): loads; the hash is what the manifest says.
    assert load_segmenter(bundle).plan.tasks["pre"].labels[-1] == "tumour"
    (bundle / "pre.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    manifest["files"]["pre.safetensors"] = hashlib.sha256(
        (bundle / "pre.safetensors").read_bytes()
    ).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(SegmentError, match=r"pre\.safetensors: does not fit the plan's network"):
        load_segmenter(bundle)


def test_missing_extra_and_linked_files_are_refused(bundle: Path, tmp_path: Path) -> None:
    (bundle / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(SegmentError, match=r"notes\.txt: not a file of the bundle"):
        load_segmenter(bundle)
    (bundle / "notes.txt").unlink()
    elsewhere = tmp_path / "training.json"
    (bundle / "training.json").rename(elsewhere)
    with pytest.raises(SegmentError, match=r"training\.json: missing"):
        load_segmenter(bundle)
    (bundle / "training.json").symlink_to(elsewhere)
    with pytest.raises(SegmentError, match=r"training\.json: not a regular file"):
        load_segmenter(bundle)
    with pytest.raises(SegmentError, match="not a folder"):
        load_segmenter(tmp_path / "nothing")


def test_a_bundle_is_written_only_into_a_new_or_empty_folder(bundle: Path) -> None:
    loaded = load_segmenter(bundle)
    result = TrainResult(loaded.plan)
    with pytest.raises(SegmentError, match="not a new or empty folder"):
        save_segmenter(result, loaded.fingerprint, {}, bundle)
