"""A per-patient cache of extraction results, keyed by what decides them.

The key of a patient is the SHA-256 of the extraction config, the versions of hepablate and of
the radiomics library, and the content of every image file of the patient. Change a mask or a
setting and that patient (or every patient) is extracted again; change nothing and the cached
result is read back. Each entry is written to a temporary folder and renamed into place, so a
run killed halfway leaves only complete entries and the next run resumes from them.

An entry is ``<root>/<patient>/<key>/`` holding ``result.json`` and, if crops were made,
``crops.npz`` (plain arrays, read with ``allow_pickle=False``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from hepablate import __version__

__all__ = ["FeatureCache", "PatientResult", "file_digest", "patient_key"]


@dataclass
class PatientResult:
    """What extraction returns for one patient: columns per tumour, perturbed radiomics, crops."""

    rows: dict[int, dict[str, Any]]
    perturbed: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    crops: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": {str(k): v for k, v in self.rows.items()},
            "perturbed": self.perturbed,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], crops: dict[str, np.ndarray]) -> PatientResult:
        return cls(
            rows={int(k): v for k, v in data["rows"].items()},
            perturbed=data.get("perturbed", {}),
            crops=crops,
            error=data.get("error"),
        )


def file_digest(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, in name order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _library_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def patient_key(config: dict[str, Any], paths: dict[str, Path]) -> str:
    """The cache key of one patient's extraction."""
    material = {
        "hepablate": __version__,
        "mirp": _library_version("mirp"),
        "SimpleITK": _library_version("SimpleITK"),
        "config": config,
        "images": {name: file_digest(path) for name, path in sorted(paths.items())},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:32]


class FeatureCache:
    """Extraction results on disk under ``root``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _entry(self, patient_id: str, key: str) -> Path:
        return self.root / patient_id / key

    def crops_path(self, patient_id: str, key: str) -> Path:
        return self._entry(patient_id, key) / "crops.npz"

    def get(self, patient_id: str, key: str) -> PatientResult | None:
        entry = self._entry(patient_id, key)
        result_file = entry / "result.json"
        if not result_file.is_file():
            return None
        data = json.loads(result_file.read_text(encoding="utf-8"))
        crops: dict[str, np.ndarray] = {}
        if (entry / "crops.npz").is_file():
            with np.load(entry / "crops.npz", allow_pickle=False) as archive:
                crops = {name: archive[name] for name in archive.files}
        return PatientResult.from_json(data, crops)

    def put(self, patient_id: str, key: str, result: PatientResult) -> None:
        """Store a result atomically; older entries of the patient are removed."""
        patient_dir = self.root / patient_id
        patient_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=patient_dir))
        (staging / "result.json").write_text(
            json.dumps(result.to_json(), indent=1), encoding="utf-8"
        )
        if result.crops:
            np.savez_compressed(staging / "crops.npz", **result.crops)  # type: ignore[arg-type]
        entry = self._entry(patient_id, key)
        if entry.exists():
            shutil.rmtree(entry)
        Path(staging).replace(entry)
        for old in patient_dir.iterdir():
            if old.name != key:
                shutil.rmtree(old, ignore_errors=True)
