"""Fixed physical-size crops around a tumour and its ablation zone, for the deep models.

Each crop is a cube of ``size_mm`` sampled at ``spacing_mm`` on axis-aligned (LPS) axes centred
on the region's centre of mass, so every tumour's crop covers the same physical extent whatever
the scan's voxels. The post-ablation CT is sampled straight from its own grid through the
registration transform (one interpolation, not two). Channels: the CT in HU (linear
interpolation, -1024 outside the scan) and the masks (nearest neighbour) as 0/1.

The default 64 mm at 2 mm (32³ voxels) is what a 3D CNN trains on two CPU cores; 64 mm at 1 mm
is one setting away.

The crops are stored per patient in the extraction cache (``crops.npz``: ``<tumour>_pre`` and
``<tumour>_post``); a FeatureTable says where (``attrs["hepablate"]["crops"]``). ``CropStore``
is the one reader of them, for the tests, the deep models and prediction alike: every read is
checked against the cache entry's checksums.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict, Field

from hepablate.features.cache import FeatureCache
from hepablate.imaging.io import Volume

__all__ = [
    "CHANNELS",
    "PHASES",
    "CropConfig",
    "CropStore",
    "centre_of_mass_mm",
    "crop",
    "load_crops",
]

# What each saved crop holds, channel by channel.
CHANNELS: dict[str, tuple[str, ...]] = {
    "pre": ("pre_ct_hu", "tumour", "ablation_zone"),
    "post": ("post_ct_hu", "ablation_zone", "tumour"),
}
# The crops of a tumour: before ablation (always) and after (when a post CT with a registered
# zone exists).
PHASES = ("pre", "post")


class CropConfig(BaseModel):
    """The physical size and sampling of the deep-model crops."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    size_mm: float = Field(default=64.0, gt=0)
    spacing_mm: float = Field(default=2.0, gt=0)

    @property
    def voxels(self) -> int:
        return round(self.size_mm / self.spacing_mm)


def centre_of_mass_mm(volume: Volume, mask: np.ndarray) -> tuple[float, float, float]:
    """The physical (x, y, z) centre of a boolean mask on ``volume``'s grid."""
    z, y, x = (float(c.mean()) for c in np.nonzero(mask))
    point = volume.to_sitk().TransformContinuousIndexToPhysicalPoint((x, y, z))
    return (float(point[0]), float(point[1]), float(point[2]))


def _reference(centre_mm: tuple[float, float, float], config: CropConfig) -> sitk.Image:
    n = config.voxels
    reference = sitk.Image(n, n, n, sitk.sitkUInt8)
    reference.SetSpacing((config.spacing_mm,) * 3)
    half = (n - 1) / 2 * config.spacing_mm
    reference.SetOrigin(tuple(c - half for c in centre_mm))
    return reference


def crop(
    volume: Volume,
    centre_mm: tuple[float, float, float],
    config: CropConfig,
    *,
    labels: bool,
    transform: sitk.Transform | None = None,
) -> np.ndarray:
    """The ``config`` cube of ``volume`` around ``centre_mm`` (z, y, x array).

    ``transform`` maps the crop's (pre-ablation) frame into ``volume``'s frame, as the
    registration returns it. Images come back float32 HU, label maps uint8 as they are.
    """
    image = volume.to_sitk()
    if labels:
        resampled = sitk.Resample(
            image,
            _reference(centre_mm, config),
            transform or sitk.Transform(),
            sitk.sitkNearestNeighbor,
            0,
            sitk.sitkUInt8,
        )
        return sitk.GetArrayFromImage(resampled)
    resampled = sitk.Resample(
        sitk.Cast(image, sitk.sitkFloat32),
        _reference(centre_mm, config),
        transform or sitk.Transform(),
        sitk.sitkLinear,
        -1024.0,
        sitk.sitkFloat32,
    )
    return sitk.GetArrayFromImage(resampled)


class CropStore:
    """The crops of a FeatureTable on disk: its cache folder, each patient's cache key, and the
    size and spacing they were made at (``attrs["hepablate"]["crops"]``; size and spacing are
    None in tables written before they were recorded).

    A tumour has a ``pre`` crop (pre CT, tumour and zone masks) and, when a post-ablation CT
    with a registered zone exists, a ``post`` crop (``PHASES``).
    """

    def __init__(self, info: Mapping[str, Any] | None) -> None:
        info = info or {}
        if not info.get("cache"):
            raise ValueError(
                "the FeatureTable has no crops on disk: extract it with a cache "
                "(hepablate extract --cache DIR) and crops enabled"
            )
        self.cache = FeatureCache(Path(info["cache"]))
        self.keys: dict[str, str] = {str(k): str(v) for k, v in (info.get("keys") or {}).items()}
        size, spacing = info.get("size_mm"), info.get("spacing_mm")
        self.size_mm = None if size is None else float(size)
        self.spacing_mm = None if spacing is None else float(spacing)

    @classmethod
    def of(cls, table: pd.DataFrame) -> CropStore:
        """The crops of ``table`` (a FeatureTable)."""
        return cls(table.attrs.get("hepablate", {}).get("crops"))

    def _key(self, patient: str) -> str:
        key = self.keys.get(str(patient))
        if key is None:
            raise KeyError(f"patient {patient}: no crops in the FeatureTable's cache")
        return key

    def patient(self, patient: str) -> dict[str, np.ndarray]:
        """Every crop of the patient (``<tumour>_<phase>``), checked against the cache entry's
        checksums: a missing, damaged or edited file raises ``CacheError`` naming the patient
        and the file."""
        return self.cache.read_crops(str(patient), self._key(patient))

    def tumour(self, patient: str, tumour: int) -> dict[str, np.ndarray]:
        """The tumour's crops by phase (channels first; a phase it lacks is absent)."""
        crops = self.patient(patient)
        return {p: crops[f"{tumour}_{p}"] for p in PHASES if f"{tumour}_{p}" in crops}

    def phases(self, tumours: Iterable[tuple[str, int]]) -> tuple[str, ...]:
        """The phases every one of ``tumours`` has: ``PHASES``, or ``("pre",)`` when some tumour
        has no post crop (not ablated yet, or no registered zone). Reads the names in each
        archive's directory only (``stack`` reads and verifies the data)."""
        patients: dict[str, list[int]] = {}
        for patient, tumour in tumours:
            patients.setdefault(str(patient), []).append(int(tumour))
        for patient, numbers in patients.items():
            path = self.cache.crops_path(patient, self._key(patient))
            if not path.is_file():
                self.patient(patient)  # the cache's error, naming the patient and the file
            with np.load(path, allow_pickle=False) as archive:
                names = set(archive.files)
            for tumour in numbers:
                if f"{tumour}_pre" not in names:
                    raise KeyError(f"patient {patient}, tumour {tumour}: no pre crop")
                if f"{tumour}_post" not in names:
                    return ("pre",)
        return PHASES

    def stack(self, tumours: Sequence[tuple[str, int]], phases: tuple[str, ...]) -> np.ndarray:
        """The channels of every (patient, tumour), in order (three per phase, in ``phases``
        order; float32 as stored: CT in HU, masks 0/1); each patient's file is read and verified
        once. A tumour without one of ``phases`` is a KeyError naming it."""
        read: dict[str, dict[str, np.ndarray]] = {}
        images = []
        for patient, tumour in tumours:
            if patient not in read:
                read[patient] = self.patient(patient)
            crops = read[patient]
            names = [f"{tumour}_{phase}" for phase in phases]
            missing = [p for p, n in zip(phases, names, strict=True) if n not in crops]
            if missing:
                raise KeyError(
                    f"patient {patient}, tumour {tumour}: no {' or '.join(missing)} crop (the "
                    f"model reads the {' and '.join(phases)} crops)"
                )
            images.append(np.concatenate([crops[n] for n in names]).astype(np.float32))
        return np.stack(images)


def load_crops(table: pd.DataFrame, patient_id: str, tumour_id: int) -> dict[str, np.ndarray]:
    """The crops of one tumour of a FeatureTable by phase (``pre`` and ``post``, channels
    first; channel names in ``CHANNELS``), checked against the cache's checksums."""
    return CropStore.of(table).tumour(patient_id, tumour_id)
