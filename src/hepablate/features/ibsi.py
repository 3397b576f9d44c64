"""How close our radiomics wrapper comes to the IBSI-1 reference values.

The Image Biomarker Standardisation Initiative (IBSI; Zwanenburg et al. 2020, Radiology 295:328;
reference manual arXiv:1612.07003) publishes consensus values, with tolerances, for every feature
on two phantoms: a 5 x 4 x 4 digital phantom and a lung-cancer CT image processed with five
configurations A-E. This module runs :func:`~hepablate.features.radiomics.compute_radiomics` (our
wrapper around MIRP, as extraction calls it) on those phantoms with each configuration's settings
written as a :class:`~hepablate.features.radiomics.RadiomicsConfig`, names every column by its
IBSI tag and compares. ``benchmarks/ibsi.py`` runs all six data sets and writes
``docs/ibsi-conformance.md``; ``tests/features/test_ibsi.py`` checks the digital phantom.

The reference tables are the IBSI-1 submission sheets, ``ibsi_1_reference_values_<dataset>.csv``
(dataset, family, feature, consensus, reference value, tolerance, ..., tag). The *diagnostics*
rows (sizes and intensities of the image and masks after each processing step) are skipped: they
describe MIRP's intermediate images, not a feature of ours. Features IBSI left unstandardised
(no reference value) stay in the table but cannot pass or fail.

Within tolerance means ``|round3(ours) - reference| <= tolerance``, ``round3`` rounding to three
significant digits as the reference values are given (the IBSI's rule, and MIRP's own tests').
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd

from hepablate.features.radiomics import RadiomicsConfig, SpatialMethod, compute_radiomics
from hepablate.imaging.io import read_volume

__all__ = [
    "DATASETS",
    "DEVIATIONS",
    "NO_REFERENCE",
    "IbsiDataset",
    "conformance",
    "default_ibsi_dir",
    "ibsi_features",
    "ibsi_tag",
    "read_reference",
    "summarise",
    "within_tolerance",
]

# Every spatial method IBSI has reference values for; the 2D configurations have the first four.
_ALL_METHODS: tuple[SpatialMethod, ...] = get_args(SpatialMethod)
_2D_METHODS = _ALL_METHODS[:4]
_3D_METHODS = _ALL_METHODS[4:]
# The whole phantom stays around the mask (the crop check of benchmarks/ibsi.py shows that the
# default 10 mm crop gives the same values, the wrapper resampling before it crops).
_WHOLE_IMAGE_MM = 10_000.0


@dataclass(frozen=True)
class IbsiDataset:
    """One IBSI-1 data set: which phantom, processed how (``config``; ``settings`` in words)."""

    name: str
    title: str
    phantom: str
    config: RadiomicsConfig
    settings: str


DATASETS: dict[str, IbsiDataset] = {
    d.name: d
    for d in (
        IbsiDataset(
            name="digital_phantom",
            title="Digital phantom",
            phantom="ibsi_1_digital_phantom",
            # IBSI: no discretisation, the phantom's grey levels (1, 3, 4, 6) are used as they
            # are. A fixed bin number of 6 over the range [1, 6] maps each level onto itself.
            config=RadiomicsConfig(
                spacing_mm=None,
                resegmentation_hu=None,
                discretisation="fixed_bin_number",
                bin_number=6,
                ivh_discretisation="none",
                texture_methods=_ALL_METHODS,
                crop_margin_mm=_WHOLE_IMAGE_MM,
            ),
            settings="2D, 2.5D and 3D; no interpolation, no re-segmentation; grey levels used "
            "as they are (FBN 6 over [1, 6], the identity); IVH: no discretisation",
        ),
        IbsiDataset(
            name="config_A",
            title="CT phantom, configuration A",
            phantom="ibsi_1_ct_radiomics_phantom",
            config=RadiomicsConfig(
                spacing_mm=None,
                by_slice=True,
                resegmentation_hu=(-500.0, 400.0),
                discretisation="fixed_bin_size",
                bin_width=25.0,
                ivh_discretisation="none",
                texture_methods=_2D_METHODS,
                crop_margin_mm=_WHOLE_IMAGE_MM,
            ),
            settings="2D and 2.5D; no interpolation; re-segmentation [-500, 400] HU; "
            "FBS 25 HU; IVH: no discretisation (integer HU)",
        ),
        IbsiDataset(
            name="config_B",
            title="CT phantom, configuration B",
            phantom="ibsi_1_ct_radiomics_phantom",
            config=RadiomicsConfig(
                spacing_mm=2.0,
                by_slice=True,
                interpolation="linear",
                mask_threshold=0.5,
                resegmentation_hu=(-500.0, 400.0),
                discretisation="fixed_bin_number",
                bin_number=32,
                ivh_discretisation="none",
                texture_methods=_2D_METHODS,
                crop_margin_mm=_WHOLE_IMAGE_MM,
            ),
            settings="2D and 2.5D; bilinear to 2 x 2 mm in plane (rounded to integer HU), mask "
            "bilinear, partial volume 0.5; re-segmentation [-500, 400] HU; FBN 32; "
            "IVH: no discretisation",
        ),
        IbsiDataset(
            name="config_C",
            title="CT phantom, configuration C",
            phantom="ibsi_1_ct_radiomics_phantom",
            config=RadiomicsConfig(
                spacing_mm=2.0,
                interpolation="linear",
                mask_threshold=0.5,
                resegmentation_hu=(-1000.0, 400.0),
                discretisation="fixed_bin_size",
                bin_width=25.0,
                ivh_discretisation="fixed_bin_size",
                ivh_bin_width=2.5,
                texture_methods=_3D_METHODS,
                crop_margin_mm=_WHOLE_IMAGE_MM,
            ),
            settings="3D; trilinear to 2 mm isotropic (rounded to integer HU), mask trilinear, "
            "partial volume 0.5; re-segmentation [-1000, 400] HU; FBS 25 HU; IVH: FBS 2.5 HU",
        ),
        IbsiDataset(
            name="config_D",
            title="CT phantom, configuration D",
            phantom="ibsi_1_ct_radiomics_phantom",
            config=RadiomicsConfig(
                spacing_mm=2.0,
                interpolation="linear",
                mask_threshold=0.5,
                resegmentation_hu=None,
                outlier_sigma=3.0,
                discretisation="fixed_bin_number",
                bin_number=32,
                ivh_discretisation="none",
                texture_methods=_3D_METHODS,
                crop_margin_mm=_WHOLE_IMAGE_MM,
            ),
            settings="3D; trilinear to 2 mm isotropic (rounded to integer HU), mask trilinear, "
            "partial volume 0.5; no range, outliers beyond mean ± 3 SD removed; FBN 32; "
            "IVH: no discretisation",
        ),
        IbsiDataset(
            name="config_E",
            title="CT phantom, configuration E",
            phantom="ibsi_1_ct_radiomics_phantom",
            config=RadiomicsConfig(
                spacing_mm=2.0,
                interpolation="cubic",
                mask_threshold=0.5,
                resegmentation_hu=(-1000.0, 400.0),
                outlier_sigma=3.0,
                discretisation="fixed_bin_number",
                bin_number=32,
                ivh_discretisation="fixed_bin_number",
                ivh_bin_number=1000,
                texture_methods=_3D_METHODS,
                crop_margin_mm=_WHOLE_IMAGE_MM,
            ),
            settings="3D; tricubic spline to 2 mm isotropic (rounded to integer HU), mask "
            "trilinear, partial volume 0.5; re-segmentation [-1000, 400] HU, then outliers "
            "beyond mean ± 3 SD removed; FBN 32; IVH: FBN 1000",
        ),
    )
}

_SPATIAL_AUTOCORRELATION = (
    "MIRP estimates Moran's I and Geary's C of a region of 1000 voxels or more by Monte Carlo "
    "(the mean over repeated random subsets of 100 voxels) unless told not to (MIRP's "
    "no_approximation; our RadiomicsConfig.exact_spatial_autocorrelation, off by default because "
    "the exact value costs time quadratic in the voxel count). The estimate is biased: the "
    "inverse-distance weights among 100 scattered voxels are not those among all voxels. (The "
    "random subsets are seeded with a hash of the image and its file's folder; the wrapper names "
    "that folder by the region's voxels, so the estimate is the same in every run.) With "
    "exact_spatial_autocorrelation on, the values are within tolerance "
    "(docs/ibsi-conformance.md)."
)
# Features outside tolerance for a documented reason, by IBSI tag (any data set).
DEVIATIONS: dict[str, str] = {
    "morph_moran_i": _SPATIAL_AUTOCORRELATION,
    "morph_geary_c": _SPATIAL_AUTOCORRELATION,
}
# Features MIRP computes that have no IBSI-1 reference value (more points of the IVH).
NO_REFERENCE: frozenset[str] = frozenset(
    {
        "ivh_v25",
        "ivh_v50",
        "ivh_v75",
        "ivh_i25",
        "ivh_i50",
        "ivh_i75",
        "ivh_diff_v25_v75",
        "ivh_diff_i25_i75",
    }
)

# IBSI's name of each spatial method, by the end of MIRP's feature name (dots removed).
_TEXTURE_METHOD = {
    "2d_avg": "2D_avg",
    "2d_s_mrg": "2D_comb",
    "25d_d_mrg": "2_5D_avg",
    "25d_v_mrg": "2_5D_comb",
    "3d_avg": "3D_avg",
    "3d_v_mrg": "3D_comb",
}
_ZONE_METHOD = {"2d": "2D", "25d": "2_5D", "3d": "3D"}
# GLCM names carry the distance (``_d1``), NGLDM names distance and coarseness (``_d1_a00``).
_TEXTURE = re.compile(
    r"^(?P<name>.+?)(?:_d1)?_(?P<method>2d_avg|2d_s_mrg|25d_[dv]_mrg|3d_(?:avg|v_mrg))$"
)
_ZONE = re.compile(r"^(?P<name>.+?)(?:_d1_a00)?_(?P<method>2d|25d|3d)$")


def ibsi_tag(column: str) -> str | None:
    """The IBSI tag of a ``rad.<region>.<family>.<feature>`` column; None if it is not one.

    ``rad.x.cm.joint_max_d1_25d_v_mrg`` -> ``cm_joint_max_2_5D_comb``, ``rad.x.szm.sze_3d`` ->
    ``szm_sze_3D``, ``rad.x.morph.volume`` -> ``morph_volume``.
    """
    parts = column.split(".")
    if len(parts) != 4 or parts[0] != "rad":
        return None
    family, feature = parts[2], parts[3]
    if family in ("cm", "rlm"):
        match = _TEXTURE.match(feature)
        if match is None:
            return None
        return f"{family}_{match['name']}_{_TEXTURE_METHOD[match['method']]}"
    if family in ("szm", "dzm", "ngt", "ngl"):
        match = _ZONE.match(feature)
        if match is None:
            return None
        return f"{family}_{match['name']}_{_ZONE_METHOD[match['method']]}"
    return f"{family}_{feature}"


def default_ibsi_dir() -> Path:
    """``$HEPABLATE_SHARED_DATA/ibsi``, or ``../shared/data/ibsi`` beside the repository."""
    configured = os.environ.get("HEPABLATE_SHARED_DATA")
    repository = Path(__file__).resolve().parents[3]
    return (Path(configured) if configured else repository.parent / "shared" / "data") / "ibsi"


def read_reference(dataset: str, ibsi_dir: Path | None = None) -> pd.DataFrame:
    """IBSI-1 reference values of ``dataset``: family, feature, tag, reference, tolerance.

    Diagnostics rows are left out; unstandardised features have a NaN reference.
    """
    root = default_ibsi_dir() if ibsi_dir is None else ibsi_dir
    path = root / "ibsi_1_reference_values" / f"ibsi_1_reference_values_{dataset}.csv"
    table = pd.read_csv(path, encoding="utf-8-sig")
    table = table.loc[~table["family"].str.startswith("Diagnostics")]
    table = table[["family", "feature", "tag", "reference value", "tolerance"]]
    return table.rename(columns={"reference value": "reference"}).reset_index(drop=True)


def within_tolerance(ours: float, reference: float, tolerance: float) -> bool:
    """IBSI's check: ``ours`` rounded to three significant digits, within ``tolerance``."""
    if not (math.isfinite(ours) and math.isfinite(reference)):
        return False
    rounded = ours if ours == 0 else round(ours, 2 - math.floor(math.log10(abs(ours))))
    # The slack absorbs binary representation (0.1 + 0.2 != 0.3), nothing more.
    return abs(rounded - reference) <= tolerance + 1e-9 * max(1.0, abs(reference))


def ibsi_features(
    dataset: str, ibsi_dir: Path | None = None, *, config: RadiomicsConfig | None = None
) -> dict[str, float]:
    """Our wrapper's features of ``dataset``'s phantom, by IBSI tag (NO_REFERENCE ones too).

    ``config`` replaces the data set's (e.g. one family, or exact spatial autocorrelation).
    """
    spec = DATASETS[dataset]
    root = default_ibsi_dir() if ibsi_dir is None else ibsi_dir
    folder = root / "data_sets" / spec.phantom / "nifti"
    image = read_volume(folder / "image" / "phantom.nii.gz")
    mask = read_volume(folder / "mask" / "mask.nii.gz").array > 0
    columns = compute_radiomics(
        image, mask, spec.config if config is None else config, region="ibsi"
    )
    features: dict[str, float] = {}
    for column, value in columns.items():
        tag = ibsi_tag(column)
        if tag is None:
            raise ValueError(f"no IBSI tag for column {column}")
        features[tag] = value
    return features


def conformance(
    dataset: str,
    ibsi_dir: Path | None = None,
    *,
    features: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Reference against ours, one row per IBSI-1 feature of ``dataset``.

    Columns: family, feature (IBSI's name), tag, reference (NaN: not standardised), tolerance,
    ours (NaN: not computed), pass (NA if either is NaN), status ("pass"; "deviation": outside
    tolerance for a reason in :data:`DEVIATIONS`; "fail"; "not computed"; "no reference") and
    note (the deviation's reason). ``features`` (by tag, as :func:`ibsi_features` returns them)
    are used instead of computing them.
    """
    table = read_reference(dataset, ibsi_dir)
    ours = ibsi_features(dataset, ibsi_dir) if features is None else features
    values: list[float] = []
    passed: list[bool | None] = []
    status: list[str] = []
    notes: list[str] = []
    for tag, reference, tolerance in zip(
        table["tag"], table["reference"], table["tolerance"], strict=True
    ):
        value = float(ours.get(tag, np.nan))
        values.append(value)
        ok = None
        note = ""
        if not math.isfinite(value):
            state = "not computed"
        elif not math.isfinite(reference):
            state = "no reference"
        else:
            ok = within_tolerance(value, float(reference), float(tolerance))
            state = "pass" if ok else "deviation" if tag in DEVIATIONS else "fail"
            note = DEVIATIONS[tag] if state == "deviation" else ""
        passed.append(ok)
        status.append(state)
        notes.append(note)
    table["ours"] = values
    table["pass"] = pd.array(passed, dtype="boolean")
    table["status"] = status
    table["note"] = notes
    return table


def summarise(table: pd.DataFrame) -> dict[str, int]:
    """Counts of a :func:`conformance` table, by status, with the totals that matter."""
    counts = table["status"].value_counts()
    return {
        "features": len(table),
        "with reference": int(table["reference"].notna().sum()),
        "computed": int(table["ours"].notna().sum()),
        "within tolerance": int(counts.get("pass", 0)),
        "deviation": int(counts.get("deviation", 0)),
        "fail": int(counts.get("fail", 0)),
        "not computed": int(counts.get("not computed", 0)),
        "no reference": int(counts.get("no reference", 0)),
    }
