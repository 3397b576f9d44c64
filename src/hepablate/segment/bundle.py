"""The segmentation bundle: a trained segmenter as files that load without executing code.

A folder of

- ``manifest.json``: format and version, the tasks, the versions of the packages it was trained
  with, and the SHA-256 of every other file;
- ``plan.json`` (the Plan), ``fingerprint.json`` (the cohort's Fingerprint), ``config.json``
  (the overrides the plan was made with), ``training.json`` (per task: the split by patient,
  the history of every epoch, the best epoch and its validation Dice);
- ``<task>.safetensors``: each task's network weights.

``load_segmenter`` accepts only regular files directly in the folder, exactly the files the
manifest lists (plus the output marker of ``hepablate.outputs``), each matching its hash; JSON
of the expected shape; weights that fill the plan's network exactly (``strict``). Nothing is
unpickled. Every refusal is a ``SegmentError`` that starts with the file at fault.

Why not ``hepablate.bundle``'s own helpers: they are private to that package (``_files``), and
``hepablate.bundle`` sits above the study and the models in the layers, which segmentation does
not need; the few lines here do the same for a folder of JSON and safetensors files. The hashes
show a changed or damaged file; a signature (``hepablate.bundle.signing``) that would also show
a consistently re-hashed one is not applied to segmentation bundles yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from hepablate.outputs import MARKER
from hepablate.schemas import describe
from hepablate.segment.errors import SegmentError
from hepablate.segment.network import build_network
from hepablate.segment.plan import Fingerprint, Plan
from hepablate.segment.train import TrainResult

__all__ = [
    "SEGMENTER_FORMAT",
    "SEGMENTER_FORMAT_VERSION",
    "Segmenter",
    "SegmenterManifest",
    "TaskTraining",
    "load_segmenter",
    "save_segmenter",
    "segmenter_id",
]

SEGMENTER_FORMAT: Literal["hepablate-segmenter"] = "hepablate-segmenter"
SEGMENTER_FORMAT_VERSION: Literal[1] = 1
MANIFEST = "manifest.json"
PACKAGES = ("hepablate", "torch", "monai", "numpy", "SimpleITK", "safetensors")
_MAX_BYTES = 1 << 30  # far above any network a plan for a CPU makes (a few MB)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SegmenterManifest(_Closed):
    format: Literal["hepablate-segmenter"] = "hepablate-segmenter"
    format_version: Literal[1] = 1
    tasks: list[str]
    versions: dict[str, str | None]
    files: dict[str, str] = Field(description="file name -> SHA-256 of its bytes")


class EpochSummary(_Closed):
    epoch: int
    loss: float
    dice: dict[str, float]
    seconds: float


class TaskTraining(_Closed):
    training_patients: list[str]
    validation_patients: list[str]
    best_epoch: int
    best_dice: dict[str, float]
    stopped_early: bool
    history: list[EpochSummary]


class _Training(_Closed):
    tasks: dict[str, TaskTraining]


@dataclass(frozen=True, eq=False)
class Segmenter:
    """A loaded segmentation bundle: the plan and a network per task, ready to predict."""

    path: Path
    manifest: SegmenterManifest
    plan: Plan
    fingerprint: Fingerprint
    training: dict[str, TaskTraining]
    networks: dict[str, torch.nn.Module]


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=1, allow_nan=False) + "\n").encode("utf-8")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_segmenter(
    result: TrainResult, fingerprint: Fingerprint, config: dict[str, Any], out: Path
) -> Path:
    """Write the bundle of ``result`` into ``out`` (a new or empty folder)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SegmentError(f"{out}: not a new or empty folder; a bundle replaces nothing")
    out.mkdir(parents=True, exist_ok=True)
    training = _Training(
        tasks={
            name: TaskTraining(
                training_patients=task.training_patients,
                validation_patients=task.validation_patients,
                best_epoch=task.best_epoch,
                best_dice=task.best_dice,
                stopped_early=task.stopped_early,
                history=[EpochSummary(**vars(r)) for r in task.history],
            )
            for name, task in result.tasks.items()
        }
    )
    files: dict[str, bytes] = {
        "plan.json": _json(result.plan.model_dump(mode="json")),
        "fingerprint.json": _json(fingerprint.model_dump(mode="json")),
        "config.json": _json(config),
        "training.json": _json(training.model_dump(mode="json")),
    }
    for name, task in result.tasks.items():
        tensors = {k: v.detach().contiguous().clone() for k, v in task.state.items()}
        files[f"{name}.safetensors"] = save_tensors(tensors, metadata={"task": name})
    manifest = SegmenterManifest(
        tasks=list(result.tasks),
        versions=_versions(),
        files={name: _sha256(data) for name, data in sorted(files.items())},
    )
    files[MANIFEST] = _json(manifest.model_dump(mode="json"))
    for name, data in files.items():
        (out / name).write_bytes(data)
    return out


def segmenter_id(path: Path) -> str:
    """The SHA-256 of the bundle's manifest (not verified): its id."""
    return _sha256(_read(Path(path) / MANIFEST))


def _read(path: Path) -> bytes:
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise SegmentError(f"{path}: missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise SegmentError(f"{path}: not a regular file; a bundle holds only regular files")
    if info.st_size > _MAX_BYTES:
        raise SegmentError(f"{path}: {info.st_size} bytes, more than the {_MAX_BYTES} allowed")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as handle:
        return handle.read(_MAX_BYTES + 1)


def _parse(path: Path, data: bytes, shape: type[BaseModel]) -> Any:
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SegmentError(f"{path}: not valid JSON ({exc})") from None
    try:
        return shape.model_validate(value)
    except ValidationError as exc:
        raise SegmentError(f"{path}: {describe(exc)[0]}") from None


def load_segmenter(path: Path | str) -> Segmenter:
    """Verify and load a segmentation bundle; a ``SegmentError`` names what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise SegmentError(f"{path}: not a folder; a segmentation bundle is a folder")
    manifest: SegmenterManifest = _parse(path / MANIFEST, _read(path / MANIFEST), SegmenterManifest)
    expected = {f"{t}.safetensors" for t in manifest.tasks} | {
        "plan.json",
        "fingerprint.json",
        "config.json",
        "training.json",
    }
    if set(manifest.files) != expected:
        raise SegmentError(
            f"{path / MANIFEST}: lists {sorted(manifest.files)}, a bundle of tasks "
            f"{manifest.tasks} has {sorted(expected)}"
        )
    present = {p.name for p in path.iterdir()} - {MANIFEST, MARKER}
    extra = sorted(present - expected)
    if extra:
        raise SegmentError(f"{path / extra[0]}: not a file of the bundle (not in its manifest)")
    files = {}
    for name, digest in manifest.files.items():
        data = _read(path / name)
        if _sha256(data) != digest:
            raise SegmentError(f"{path / name}: changed since the bundle was written (SHA-256)")
        files[name] = data
    plan: Plan = _parse(path / "plan.json", files["plan.json"], Plan)
    fingerprint: Fingerprint = _parse(
        path / "fingerprint.json", files["fingerprint.json"], Fingerprint
    )
    training: _Training = _parse(path / "training.json", files["training.json"], _Training)
    if sorted(plan.tasks) != sorted(manifest.tasks):
        raise SegmentError(
            f"{path / 'plan.json'}: tasks {sorted(plan.tasks)}, the manifest's "
            f"{sorted(manifest.tasks)}"
        )
    networks: dict[str, torch.nn.Module] = {}
    for name in manifest.tasks:
        file = path / f"{name}.safetensors"
        try:
            tensors = load_tensors(files[file.name])
        except Exception as exc:  # safetensors raises its own error types for a bad header
            raise SegmentError(f"{file}: not a readable safetensors file ({exc})") from None
        network = build_network(plan.tasks[name])
        try:
            network.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise SegmentError(f"{file}: does not fit the plan's network ({first})") from None
        network.eval()
        networks[name] = network
    return Segmenter(path, manifest, plan, fingerprint, training.tasks, networks)
