"""A per-patient cache of extraction results, keyed by what decides them, checked when read.

The key of a patient is the SHA-256 of the extraction config, the versions of hepablate, MIRP
and SimpleITK, and the content of every image file of the patient. Change a mask or a setting
and that patient (or every patient) is extracted again; change nothing and the cached result is
read back.

An entry is ``<root>/<patient>/<key>/`` holding ``result.json``, ``crops.npz`` if crops were
made (plain arrays, read with ``allow_pickle=False``) and ``checksums.json``: the cache format,
the key (the digest of the inputs and settings that made the entry) and the SHA-256 of each
other file. :meth:`FeatureCache.get` verifies all of it before it uses an entry: a truncated,
corrupt or edited file, an entry without checksums (an older hepablate's, or a damaged one) or
an extra file make the entry *discarded*: removed, recorded in :attr:`FeatureCache.discarded`
(patient, file, reason; the FeatureTable's warnings carry it) and extracted again. The checksums
catch damage and edits by hand, not a forger who rewrites them too (whoever can write the cache
can also change the images it was made from).

Each patient's entry has a lock (``<root>/<patient>/.lock``, the ``filelock`` library, an OS
lock released when its process ends): :meth:`~FeatureCache.put` writes the new entry into a
staging folder (``.partial-*``) and renames it into place while holding it, and
:meth:`~FeatureCache.get` reads under it, so two processes that extract the same patient into
one cache never see or remove each other's half-written entry. A staging folder found while
holding the lock was left by a process that was killed: it is removed then.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

import hepablate

__all__ = ["CacheError", "FeatureCache", "PatientResult", "file_digest", "patient_key"]

RESULT = "result.json"
CROPS = "crops.npz"
CHECKSUMS = "checksums.json"
# The layout of an entry; an entry of another format is discarded and recomputed.
CACHE_FORMAT = 2
_PARTIAL = ".partial-"
_LOCK = ".lock"
# A put or get holds the lock for milliseconds; minutes mean a stuck process.
LOCK_TIMEOUT_S = 300.0


class CacheError(Exception):
    """A cache entry that cannot be used (damaged file, lock not obtained); names the patient
    and the file."""


@dataclass
class PatientResult:
    """What extraction returns for one patient: columns per tumour, perturbed radiomics, crops,
    the warnings about what could not be measured (see :mod:`hepablate.features.extract`) and,
    when the patient failed, the step that failed and why."""

    rows: dict[int, dict[str, Any]]
    perturbed: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    crops: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None
    step: str | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": {str(k): v for k, v in self.rows.items()},
            "perturbed": self.perturbed,
            "error": self.error,
            "step": self.step,
            "warnings": self.warnings,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], crops: dict[str, np.ndarray]) -> PatientResult:
        return cls(
            rows={int(k): v for k, v in data["rows"].items()},
            perturbed=data.get("perturbed", {}),
            crops=crops,
            error=data.get("error"),
            step=data.get("step"),
            warnings=list(data.get("warnings") or []),
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
    """The cache key of one patient's extraction: SHA-256 of everything that decides it."""
    material = {
        "hepablate": hepablate.__version__,
        "mirp": _library_version("mirp"),
        "SimpleITK": _library_version("SimpleITK"),
        "config": config,
        "images": {name: file_digest(path) for name, path in sorted(paths.items())},
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


class _DamagedEntryError(Exception):
    def __init__(self, file: str, reason: str) -> None:
        self.file = file
        self.reason = reason
        super().__init__(f"{file}: {reason}")


def _read_crops(path: Path) -> dict[str, np.ndarray]:
    """Every array of a crops file; a damaged file raises ``_DamagedEntryError``."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise _DamagedEntryError(CROPS, f"cannot be read ({type(exc).__name__}: {exc})") from None


class FeatureCache:
    """Extraction results on disk under ``root``; see the module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Entries found damaged and removed by `get`: {"patient", "file", "reason"}.
        self.discarded: list[dict[str, str]] = []

    def _entry(self, patient_id: str, key: str) -> Path:
        return self.root / patient_id / key

    def crops_path(self, patient_id: str, key: str) -> Path:
        return self._entry(patient_id, key) / CROPS

    @contextmanager
    def _locked(self, patient_id: str) -> Iterator[None]:
        """Hold the patient's lock (created with its folder)."""
        folder = self.root / patient_id
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / _LOCK, timeout=LOCK_TIMEOUT_S)
        try:
            lock.acquire()
        except Timeout:
            raise CacheError(
                f"patient {patient_id}: waited {LOCK_TIMEOUT_S:g} s for the cache lock "
                f"{lock.lock_file}, held by another process"
            ) from None
        try:
            yield
        finally:
            lock.release()

    def _clean_partials(self, patient_id: str) -> None:
        """Staging folders of killed processes (only call while holding the lock)."""
        for stale in (self.root / patient_id).glob(f"{_PARTIAL}*"):
            shutil.rmtree(stale, ignore_errors=True)

    def _verify(self, entry: Path, key: str) -> dict[str, str]:
        """The entry's checksum record, after every file was checked against it."""
        record_file = entry / CHECKSUMS
        if not record_file.is_file():
            raise _DamagedEntryError(
                CHECKSUMS, "missing (an entry of an older hepablate, or a damaged one)"
            )
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
            files: dict[str, str] = dict(record["files"])
            stored = (record["format"], record["key"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _DamagedEntryError(CHECKSUMS, f"not a valid checksum record ({exc})") from None
        if stored != (CACHE_FORMAT, key):
            raise _DamagedEntryError(CHECKSUMS, f"format/key {stored} is not this entry's")
        present = {p.name for p in entry.iterdir()} - {CHECKSUMS}
        if present != set(files):
            extra, missing = sorted(present - set(files)), sorted(set(files) - present)
            name = (extra or missing)[0]
            raise _DamagedEntryError(
                name, f"files not as recorded (extra: {extra}, missing: {missing})"
            )
        for name, digest in files.items():
            if file_digest(entry / name) != digest:
                raise _DamagedEntryError(name, "does not match its checksum: damaged or edited")
        return files

    def get(self, patient_id: str, key: str) -> PatientResult | None:
        """The stored result, or None (not stored, or found damaged: then it is removed and
        recorded in :attr:`discarded`, and the caller extracts the patient again)."""
        if not self._entry(patient_id, key).is_dir():
            return None
        with self._locked(patient_id):
            self._clean_partials(patient_id)
            entry = self._entry(patient_id, key)
            if not entry.is_dir():
                return None
            try:
                files = self._verify(entry, key)
                try:
                    data = json.loads((entry / RESULT).read_text(encoding="utf-8"))
                    crops = _read_crops(entry / CROPS) if CROPS in files else {}
                    return PatientResult.from_json(data, crops)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    raise _DamagedEntryError(RESULT, f"not a valid result ({exc})") from None
            except _DamagedEntryError as damaged:
                self.discarded.append(
                    {
                        "patient": patient_id,
                        "file": str(entry / damaged.file),
                        "reason": damaged.reason,
                    }
                )
                shutil.rmtree(entry, ignore_errors=True)
                return None

    def read_crops(self, patient_id: str, key: str) -> dict[str, np.ndarray]:
        """The crops of a stored entry, checked against its checksum first; a missing or
        damaged file raises :class:`CacheError` naming the patient and the file."""
        entry = self._entry(patient_id, key)
        path = entry / CROPS
        if not path.is_file():
            raise CacheError(f"patient {patient_id}: no crops at {path}")
        with self._locked(patient_id):
            try:
                self._verify(entry, key)
                return _read_crops(path)
            except _DamagedEntryError as damaged:
                raise CacheError(
                    f"patient {patient_id}: {entry / damaged.file} {damaged.reason}; extract "
                    "the cohort again (with the same cache) to recompute it"
                ) from None

    def put(self, patient_id: str, key: str, result: PatientResult) -> None:
        """Store a result atomically, under the patient's lock; older entries of the patient
        (and staging folders of killed processes) are removed."""
        with self._locked(patient_id):
            patient_dir = self.root / patient_id
            self._clean_partials(patient_id)
            staging = Path(tempfile.mkdtemp(prefix=_PARTIAL, dir=patient_dir))
            try:
                (staging / RESULT).write_text(
                    json.dumps(result.to_json(), indent=1), encoding="utf-8"
                )
                if result.crops:
                    np.savez_compressed(staging / CROPS, **result.crops)  # type: ignore[arg-type]
                files = {p.name: file_digest(p) for p in sorted(staging.iterdir())}
                record = {"format": CACHE_FORMAT, "key": key, "files": files}
                (staging / CHECKSUMS).write_text(json.dumps(record, indent=1), encoding="utf-8")
                entry = self._entry(patient_id, key)
                if entry.exists():
                    shutil.rmtree(entry)
                staging.replace(entry)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            for old in patient_dir.iterdir():
                if old.name not in (key, _LOCK) and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
