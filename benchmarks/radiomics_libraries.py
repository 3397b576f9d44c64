"""Benchmark two radiomics libraries on the same regions: pyradiomics (bhklab fork) and mirp.

Measures, for each library:
1. wall time per tumour region (median and 90th percentile, after one warm-up call), peak
   resident memory and the number of features returned, on the tumours of a simulated cohort
   with matched settings: 1 mm isotropic linear resampling (mask: nearest neighbour),
   re-segmentation to [-150, 350] HU, fixed bin width 25 HU, 3D texture (directional matrices
   averaged over directions, as pyradiomics does by default), every feature family, no filters;
2. conformance with the IBSI 1 digital phantom reference values, with the settings each library
   uses for IBSI compliance (no resampling, grey levels 1..6 used as they are): how many of the
   IBSI features it computes, how many are within tolerance, outside it, or not computed;
3. agreement between the two libraries on the tumour regions, for the features both compute.

Each library runs in its own fresh process (so its peak memory is its own); the two are run one
after the other, never together.

This script does not import hepablate: it runs in a separate virtual environment holding both
libraries (only numpy, pandas, SimpleITK, radiomics, mirp and the standard library are used):

    python3.11 -m venv /tmp/rad
    /tmp/rad/bin/pip install numpy versioneer setuptools wheel
    /tmp/rad/bin/pip install --no-build-isolation pyradiomics-bhklab==3.1.4
    /tmp/rad/bin/pip install mirp==2.7.0

Then, from the repository root (the cohort comes from hepablate's own environment):

    .venv/bin/hepablate simulate --n 20 --seed 5 --out /tmp/radlib_sim
    /tmp/rad/bin/python benchmarks/radiomics_libraries.py --cohort /tmp/radlib_sim \\
        --ibsi /work/shared/data/ibsi > /tmp/radlib_results.md

`--ibsi` is the IBSI data folder holding `data_sets/ibsi_1_digital_phantom/nifti/` and
`ibsi_1_reference_values/ibsi_1_reference_values_digital_phantom.csv`. The Markdown summary
goes to standard output; progress goes to standard error.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import resource
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import SimpleITK as sitk

LIBRARIES = ("pyradiomics", "mirp")
DISTRIBUTIONS = {"pyradiomics": "pyradiomics-bhklab", "mirp": "mirp"}
MARGIN_MM = 10.0
RESEGMENT_HU = (-150.0, 350.0)
BIN_WIDTH_HU = 25.0
SPACING_MM = 1.0
PHANTOM = Path("data_sets/ibsi_1_digital_phantom/nifti")
REFERENCE = Path("ibsi_1_reference_values/ibsi_1_reference_values_digital_phantom.csv")
# mirp feature families (prefix of the feature name before the first "_"); anything else is metadata
MIRP_FAMILIES = ("morph", "loc", "stat", "ivh", "ih", "cm", "rlm", "szm", "dzm", "ngt", "ngl")

# pyradiomics feature name -> IBSI tag (before the texture suffix). A tuple gives more tags: the
# extra ones are features pyradiomics documents as mathematically equal to the IBSI feature and so
# does not compute separately (GLCM dissimilarity = difference average, sum variance = cluster
# tendency, GLDM grey level non-uniformity normalised = first-order uniformity).
PYRADIOMICS_TO_IBSI: dict[str, dict[str, str | tuple[str, ...]]] = {
    "firstorder": {
        "Energy": "stat_energy",
        "Entropy": "ih_entropy",  # on the discretised image, as IBSI's histogram entropy
        "Minimum": "stat_min",
        "10Percentile": "stat_p10",
        "90Percentile": "stat_p90",
        "Maximum": "stat_max",
        "Mean": "stat_mean",
        "Median": "stat_median",
        "InterquartileRange": "stat_iqr",
        "Range": "stat_range",
        "MeanAbsoluteDeviation": "stat_mad",
        "RobustMeanAbsoluteDeviation": "stat_rmad",
        "RootMeanSquared": "stat_rms",
        "Skewness": "stat_skew",
        "Kurtosis": "stat_kurt",  # documented: not excess kurtosis, IBSI value + 3
        "Variance": "stat_var",
        "Uniformity": ("ih_uniformity", "ngl_glnu_norm"),
    },
    "shape": {
        "MeshVolume": "morph_volume",
        "VoxelVolume": "morph_vol_approx",
        "SurfaceArea": "morph_area_mesh",
        "SurfaceVolumeRatio": "morph_av",
        "Compactness1": "morph_comp_1",
        "Compactness2": "morph_comp_2",
        "SphericalDisproportion": "morph_sph_dispr",
        "Sphericity": "morph_sphericity",
        "Maximum3DDiameter": "morph_diam",
        "MajorAxisLength": "morph_pca_maj_axis",
        "MinorAxisLength": "morph_pca_min_axis",
        "LeastAxisLength": "morph_pca_least_axis",
        "Elongation": "morph_pca_elongation",
        "Flatness": "morph_pca_flatness",
    },
    "glcm": {
        "Autocorrelation": "cm_auto_corr",
        "JointAverage": "cm_joint_avg",
        "ClusterProminence": "cm_clust_prom",
        "ClusterShade": "cm_clust_shade",
        "ClusterTendency": ("cm_clust_tend", "cm_sum_var"),
        "Contrast": "cm_contrast",
        "Correlation": "cm_corr",
        "DifferenceAverage": ("cm_diff_avg", "cm_dissimilarity"),
        "DifferenceEntropy": "cm_diff_entr",
        "DifferenceVariance": "cm_diff_var",
        "JointEnergy": "cm_energy",
        "JointEntropy": "cm_joint_entr",
        "Imc1": "cm_info_corr1",
        "Imc2": "cm_info_corr2",
        "Idm": "cm_inv_diff_mom",
        "Idmn": "cm_inv_diff_mom_norm",
        "Id": "cm_inv_diff",
        "Idn": "cm_inv_diff_norm",
        "InverseVariance": "cm_inv_var",
        "MaximumProbability": "cm_joint_max",
        "SumAverage": "cm_sum_avg",
        "SumEntropy": "cm_sum_entr",
        "SumSquares": "cm_joint_var",
    },
    "glrlm": {
        "ShortRunEmphasis": "rlm_sre",
        "LongRunEmphasis": "rlm_lre",
        "GrayLevelNonUniformity": "rlm_glnu",
        "GrayLevelNonUniformityNormalized": "rlm_glnu_norm",
        "RunLengthNonUniformity": "rlm_rlnu",
        "RunLengthNonUniformityNormalized": "rlm_rlnu_norm",
        "RunPercentage": "rlm_r_perc",
        "GrayLevelVariance": "rlm_gl_var",
        "RunVariance": "rlm_rl_var",
        "RunEntropy": "rlm_rl_entr",
        "LowGrayLevelRunEmphasis": "rlm_lgre",
        "HighGrayLevelRunEmphasis": "rlm_hgre",
        "ShortRunLowGrayLevelEmphasis": "rlm_srlge",
        "ShortRunHighGrayLevelEmphasis": "rlm_srhge",
        "LongRunLowGrayLevelEmphasis": "rlm_lrlge",
        "LongRunHighGrayLevelEmphasis": "rlm_lrhge",
    },
    "glszm": {
        "SmallAreaEmphasis": "szm_sze",
        "LargeAreaEmphasis": "szm_lze",
        "GrayLevelNonUniformity": "szm_glnu",
        "GrayLevelNonUniformityNormalized": "szm_glnu_norm",
        "SizeZoneNonUniformity": "szm_zsnu",
        "SizeZoneNonUniformityNormalized": "szm_zsnu_norm",
        "ZonePercentage": "szm_z_perc",
        "GrayLevelVariance": "szm_gl_var",
        "ZoneVariance": "szm_zs_var",
        "ZoneEntropy": "szm_zs_entr",
        "LowGrayLevelZoneEmphasis": "szm_lgze",
        "HighGrayLevelZoneEmphasis": "szm_hgze",
        "SmallAreaLowGrayLevelEmphasis": "szm_szlge",
        "SmallAreaHighGrayLevelEmphasis": "szm_szhge",
        "LargeAreaLowGrayLevelEmphasis": "szm_lzlge",
        "LargeAreaHighGrayLevelEmphasis": "szm_lzhge",
    },
    "ngtdm": {
        "Coarseness": "ngt_coarseness",
        "Contrast": "ngt_contrast",
        "Busyness": "ngt_busyness",
        "Complexity": "ngt_complexity",
        "Strength": "ngt_strength",
    },
    # pyradiomics' GLDM is IBSI's NGLDM with Chebyshev distance 1 and coarseness alpha = gldm_a = 0
    "gldm": {
        "SmallDependenceEmphasis": "ngl_lde",
        "LargeDependenceEmphasis": "ngl_hde",
        "LowGrayLevelEmphasis": "ngl_lgce",
        "HighGrayLevelEmphasis": "ngl_hgce",
        "SmallDependenceLowGrayLevelEmphasis": "ngl_ldlge",
        "SmallDependenceHighGrayLevelEmphasis": "ngl_ldhge",
        "LargeDependenceLowGrayLevelEmphasis": "ngl_hdlge",
        "LargeDependenceHighGrayLevelEmphasis": "ngl_hdhge",
        "GrayLevelNonUniformity": "ngl_glnu",
        "DependenceNonUniformity": "ngl_dcnu",
        "DependenceNonUniformityNormalized": "ngl_dcnu_norm",
        "GrayLevelVariance": "ngl_gl_var",
        "DependenceVariance": "ngl_dc_var",
        "DependenceEntropy": "ngl_dc_entr",
    },
}
# pyradiomics' documented offsets from the IBSI definition, undone: IBSI value = f(pyradiomics)
PYRADIOMICS_CONVERSIONS = {"stat_kurt": lambda value: value - 3.0}  # not excess kurtosis
PYRADIOMICS_TEXTURE = ("glcm", "glrlm", "glszm", "ngtdm", "gldm")
# pyradiomics runs on the phantom: (extra settings, classes taken, IBSI suffix per class).
# force2D computes in-plane texture over all slices at once (IBSI 2.5D); weightingNorm
# "no_weighting" sums the per-direction GLCMs/GLRLMs before computing features (IBSI "comb").
PYRADIOMICS_IBSI_RUNS: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "3d": (
        {},
        {"firstorder": "", "shape": "", "glcm": "_3D_avg", "glrlm": "_3D_avg"}
        | {"glszm": "_3D", "ngtdm": "_3D", "gldm": "_3D"},
    ),
    "3d_merged": ({"weightingNorm": "no_weighting"}, {"glcm": "_3D_comb", "glrlm": "_3D_comb"}),
    "2.5d": (
        {"force2D": True, "force2Ddimension": 0},
        {"glcm": "_2_5D_avg", "glrlm": "_2_5D_avg", "glszm": "_2_5D", "ngtdm": "_2_5D"}
        | {"gldm": "_2_5D"},
    ),
    "2.5d_merged": (
        {"force2D": True, "force2Ddimension": 0, "weightingNorm": "no_weighting"},
        {"glcm": "_2_5D_comb", "glrlm": "_2_5D_comb"},
    ),
}
# mirp spatial-method suffixes -> IBSI tag suffixes
MIRP_SUFFIX = {
    ("2d", "avg"): "2D_avg",
    ("2d", "s_mrg"): "2D_comb",
    ("2.5d", "d_mrg"): "2_5D_avg",
    ("2.5d", "v_mrg"): "2_5D_comb",
    ("3d", "avg"): "3D_avg",
    ("3d", "v_mrg"): "3D_comb",
    ("2d", ""): "2D",
    ("2.5d", ""): "2_5D",
    ("3d", ""): "3D",
}
MIRP_DISCRETISATION = re.compile(r"_fb[a-z]*_[wn][0-9.]+$")  # e.g. _fbs_w25.0, _fbn_n32
MIRP_NAME = re.compile(r"^(.+?)(?:_d1(?:_a0\.0)?)?_(2d|2\.5d|3d)(?:_(avg|s_mrg|d_mrg|v_mrg))?$")
MIRP_DIRECTIONAL = ["2d_average", "2d_slice_merge", "2.5d_direction_merge", "2.5d_volume_merge"]
MIRP_DIRECTIONAL += ["3d_average", "3d_volume_merge"]
MIRP_ZONAL = ["2d", "2.5d", "3d"]


def log(message: str) -> None:
    """Progress on standard error (standard output carries the Markdown)."""
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------


def prepare_rois(cohort: Path, out: Path) -> list[dict[str, Any]]:
    """Write each tumour of the cohort as an image/mask NIfTI pair cropped to its box + 10 mm.

    The tumour is label == id on `pre_tumours` over `pre_ct`; the mask is written binary (1).
    """
    rois = []
    for patient in sorted(p for p in (cohort / "images").iterdir() if p.is_dir()):
        image = sitk.ReadImage(str(patient / "pre_ct.nii.gz"))
        labels = sitk.ReadImage(str(patient / "pre_tumours.nii.gz"))
        array = sitk.GetArrayFromImage(labels)  # z, y, x
        spacing = np.array(image.GetSpacing())  # x, y, z
        margin = np.ceil(MARGIN_MM / spacing).astype(int)
        for label in (int(v) for v in np.unique(array) if v != 0):
            zyx = np.nonzero(array == label)
            low = np.array([zyx[2].min(), zyx[1].min(), zyx[0].min()]) - margin
            high = np.array([zyx[2].max(), zyx[1].max(), zyx[0].max()]) + margin
            low = np.maximum(low, 0)
            high = np.minimum(high, np.array(image.GetSize()) - 1)
            size = [int(v) for v in high - low + 1]
            index = [int(v) for v in low]
            crop = sitk.RegionOfInterest(image, size, index)
            mask = sitk.Cast(sitk.RegionOfInterest(labels, size, index) == label, sitk.sitkUInt8)
            name = f"{patient.name}_t{label}"
            image_path, mask_path = out / f"{name}_image.nii.gz", out / f"{name}_mask.nii.gz"
            sitk.WriteImage(crop, str(image_path))
            sitk.WriteImage(mask, str(mask_path))
            n_voxels = len(zyx[0])
            rois.append(
                {
                    "id": name,
                    "image": str(image_path),
                    "mask": str(mask_path),
                    "voxels": n_voxels,
                    "volume_ml": n_voxels * float(np.prod(spacing)) / 1000.0,
                }
            )
    return rois


# --------------------------------------------------------------------------------------------
# Library calls (run inside the worker processes only)
# --------------------------------------------------------------------------------------------


def _pyradiomics_extractor(settings: dict[str, Any], classes: list[str] | None = None) -> Any:
    import radiomics
    from radiomics import featureextractor

    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("radiomics").setLevel(logging.ERROR)

    extractor = featureextractor.RadiomicsFeatureExtractor(**settings)
    extractor.disableAllFeatures()
    for name in classes or ["firstorder", "shape", *PYRADIOMICS_TEXTURE]:
        extractor.enableFeatureClassByName(name)
    return extractor


def _pyradiomics_values(result: dict[str, Any]) -> dict[str, float]:
    """Feature values of one pyradiomics result, without its `diagnostics_*` entries."""
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def _mirp_values(frames: list[pd.DataFrame]) -> dict[str, float]:
    """Feature values of one mirp result (its single row), without the metadata columns."""
    row = frames[0].iloc[0]
    return {
        str(k): float(v)
        for k, v in row.items()
        if str(k).split("_", 1)[0] in MIRP_FAMILIES and not str(k).startswith("image_")
    }


def roi_extractor(library: str) -> Any:
    """A callable (image path, mask path) -> {feature: value} with the matched CT settings."""
    if library == "pyradiomics":
        extractor = _pyradiomics_extractor(
            {
                "resampledPixelSpacing": [SPACING_MM] * 3,
                "interpolator": "sitkLinear",  # pyradiomics' default is B-spline
                "resegmentRange": list(RESEGMENT_HU),
                "binWidth": BIN_WIDTH_HU,
                "voxelArrayShift": 0,
                "label": 1,
                "force2D": False,
                "additionalInfo": False,  # no diagnostics (image hashes etc.)
            }
        )
        return lambda image, mask: _pyradiomics_values(extractor.execute(image, mask))
    from mirp import extract_features

    settings: dict[str, Any] = {
        "image_modality": "ct",
        "by_slice": False,
        "ibsi_compliant": True,
        "intensity_normalisation": "none",
        "new_spacing": SPACING_MM,
        "spline_order": 1,  # linear, like pyradiomics' sitkLinear
        "anti_aliasing": False,  # pyradiomics has none
        "roi_spline_order": 0,  # nearest-neighbour mask, like pyradiomics
        "resegmentation_intensity_range": list(RESEGMENT_HU),
        "base_feature_families": "all",
        "base_discretisation_method": "fixed_bin_size",
        "base_discretisation_bin_width": BIN_WIDTH_HU,
        # pyradiomics averages features over directions: match it (mirp's 3D default merges)
        "glcm_spatial_method": "3d_average",
        "glrlm_spatial_method": "3d_average",
        "glszm_spatial_method": "3d",
        "gldzm_spatial_method": "3d",
        "ngtdm_spatial_method": "3d",
        "ngldm_spatial_method": "3d",
    }
    return lambda image, mask: _mirp_values(extract_features(image=image, mask=mask, **settings))


def ibsi_phantom_features(library: str, ibsi: Path) -> dict[str, float]:
    """The library's features on the IBSI 1 digital phantom, keyed by IBSI tag."""
    image = str(ibsi / PHANTOM / "image/phantom.nii.gz")
    mask = str(ibsi / PHANTOM / "mask/mask.nii.gz")
    tagged: dict[str, float] = {}
    if library == "pyradiomics":
        # grey levels 1..6: bin width 1 from floor(min) = 1 leaves them unchanged
        base = {"binWidth": 1, "voxelArrayShift": 0, "label": 1, "distances": [1]}
        for extra, suffixes in PYRADIOMICS_IBSI_RUNS.values():
            extractor = _pyradiomics_extractor(base | extra, list(suffixes))
            if "shape" in suffixes:  # by name: 3 of them are left out by default (correlated)
                extractor.enableFeaturesByName(shape=list(PYRADIOMICS_TO_IBSI["shape"]))
            values = _pyradiomics_values(extractor.execute(image, mask))
            for name, value in values.items():
                _, family, feature = name.split("_", 2)
                tags = PYRADIOMICS_TO_IBSI.get(family, {}).get(feature)
                if family not in suffixes or tags is None:
                    continue
                for tag in (tags,) if isinstance(tags, str) else tags:
                    suffix = suffixes[family]
                    if tag == "ngl_glnu_norm":  # via first-order uniformity: 3D and 2.5D alike
                        for dims in ("_3D", "_2_5D"):
                            tagged[tag + dims] = value
                    else:
                        tagged[tag + suffix] = value
        return tagged
    from mirp import extract_features

    frames = extract_features(
        image=image,
        mask=mask,
        # as in mirp's own IBSI tests: as a "generic" image its IVH intensities are off (i10 602)
        image_modality="ct",
        by_slice=False,
        ibsi_compliant=True,
        intensity_normalisation="none",
        base_feature_families="all",
        base_discretisation_method="none",
        ivh_discretisation_method="none",
        glcm_spatial_method=MIRP_DIRECTIONAL,
        glrlm_spatial_method=MIRP_DIRECTIONAL,
        glszm_spatial_method=MIRP_ZONAL,
        gldzm_spatial_method=MIRP_ZONAL,
        ngtdm_spatial_method=MIRP_ZONAL,
        ngldm_spatial_method=MIRP_ZONAL,
    )
    for name, value in _mirp_values(frames).items():
        tagged[mirp_tag(name)] = value
    return tagged


def mirp_tag(name: str) -> str:
    """IBSI tag of a mirp feature name (cm_joint_max_d1_3d_avg_fbs_w25.0 -> cm_joint_max_3D_avg)."""
    name = MIRP_DISCRETISATION.sub("", name)
    match = MIRP_NAME.match(name)
    if match is None:
        return name
    base, dims, aggregation = match.groups()
    return f"{base}_{MIRP_SUFFIX[dims, aggregation or '']}"


def pyradiomics_tag_3d(name: str) -> list[str]:
    """IBSI tags of a pyradiomics feature from the 3D CT run (texture averaged over directions)."""
    _, family, feature = name.split("_", 2)
    tags = PYRADIOMICS_TO_IBSI.get(family, {}).get(feature)
    if tags is None:
        return []
    suffix = PYRADIOMICS_IBSI_RUNS["3d"][1].get(family, "")
    return [t + suffix for t in ((tags,) if isinstance(tags, str) else tags)]


def worker(library: str, task: str, payload: Path, out: Path) -> None:
    """Run one library in this (fresh) process; write its measurements to `out` as JSON."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # mirp would log INFO to stdout
    started = time.perf_counter()
    extract = roi_extractor(library)  # imports the library
    result: dict[str, Any] = {
        "version": metadata.version(DISTRIBUTIONS[library]),
        "import_s": time.perf_counter() - started,
        "rss_after_import_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if task == "ibsi":
        result["features"] = ibsi_phantom_features(library, payload)
    else:
        rois = json.loads(payload.read_text(encoding="utf-8"))
        extract(rois[0]["image"], rois[0]["mask"])  # warm-up, not timed
        seconds, features = [], []
        for roi in rois:
            tic = time.perf_counter()
            features.append(extract(roi["image"], roi["mask"]))
            seconds.append(time.perf_counter() - tic)
            log(f"  {library} {roi['id']}: {seconds[-1]:.2f} s")
        result |= {"seconds": seconds, "features": features}
    usage = [
        resource.getrusage(who).ru_maxrss
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    ]
    result["peak_rss_mb"] = max(usage) / 1024  # kB on Linux
    out.write_text(json.dumps(result), encoding="utf-8")


def run_worker(library: str, task: str, payload: Path, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{library}_{task}.json"
    command = [sys.executable, __file__, "--worker", library, task, str(payload), str(out)]
    subprocess.run(command, check=True, stdout=sys.stderr)
    return json.loads(out.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------


def load_reference(ibsi: Path) -> pd.DataFrame:
    """IBSI 1 digital-phantom reference: the features with a reference value (standardised)."""
    table = pd.read_csv(ibsi / REFERENCE, encoding="utf-8-sig", dtype=str)
    table = table[table["reference value"].notna()].copy()
    table["reference"] = table["reference value"].astype(float)
    table["tol"] = table["tolerance"].astype(float)
    table["dims"] = table["tag"].str.extract(r"_(2D|2_5D|3D)(?:_avg|_comb)?$", expand=False)
    table["group"] = table["family"].str.replace(r"\s*\(.*\)$", "", regex=True)
    return table.set_index("tag")


def within_tolerance(value: float, reference: float, tolerance: float) -> bool:
    """|value - reference| <= tolerance, where IBSI's reference values carry 3 significant digits
    (a tolerance of 0 means: equal once rounded to 3 significant digits)."""
    if not math.isfinite(value):
        return False
    rounding = 0.0
    if reference != 0:
        rounding = 0.5 * 10 ** (math.floor(math.log10(abs(reference))) - 2)
    return abs(value - reference) <= max(tolerance, rounding) * (1 + 1e-9)


def conformance(reference: pd.DataFrame, features: dict[str, float]) -> pd.DataFrame:
    """One row per IBSI feature: computed? within tolerance? (and the value)."""
    rows = []
    for tag, ref in reference.iterrows():
        value = features.get(str(tag))
        rows.append(
            {
                "tag": tag,
                "group": ref["group"],
                "dims": ref["dims"],
                "value": value,
                "reference": ref["reference"],
                "tol": ref["tol"],
                "computed": value is not None,
                "within": value is not None
                and within_tolerance(value, ref["reference"], ref["tol"]),
            }
        )
    return pd.DataFrame(rows).set_index("tag")


def counts(table: pd.DataFrame) -> str:
    computed, within = int(table["computed"].sum()), int(table["within"].sum())
    return f"{computed} / {within} / {computed - within} / {len(table) - computed}"


def agreement(
    pyradiomics_rois: list[dict[str, float]], mirp_rois: list[dict[str, float]]
) -> pd.DataFrame:
    """Per IBSI tag computed by both on the CT regions: median relative difference over ROIs."""
    rows: dict[str, list[float]] = {}
    for py, mi in zip(pyradiomics_rois, mirp_rois, strict=True):
        mirp_tagged = {mirp_tag(k): v for k, v in mi.items()}
        for name, a in py.items():
            for tag in pyradiomics_tag_3d(name):
                c = PYRADIOMICS_CONVERSIONS.get(tag, float)(a)
                b = mirp_tagged.get(tag)
                if b is None or not (math.isfinite(c) and math.isfinite(b)):
                    continue
                scale = max(abs(c), abs(b), 1e-12)
                rows.setdefault(tag, []).append(abs(c - b) / scale)
    return pd.DataFrame(
        {"median_rel_diff": {t: float(np.median(v)) for t, v in rows.items()}}
    ).sort_values("median_rel_diff")


def report(
    rois: list[dict[str, Any]],
    timing: dict[str, dict[str, Any]],
    ibsi: dict[str, dict[str, Any]],
    reference: pd.DataFrame,
) -> str:
    tables = {lib: conformance(reference, ibsi[lib]["features"]) for lib in LIBRARIES}
    three_d = reference["dims"].isna() | (reference["dims"] == "3D")
    volumes = np.array([r["volume_ml"] for r in rois])
    lines = [
        "# Radiomics libraries: "
        + " vs ".join(f"{DISTRIBUTIONS[lib]} {timing[lib]['version']}" for lib in LIBRARIES),
        "",
        f"{len(rois)} liver tumours (`hepablate simulate --n 20 --seed 5`), pre-ablation CT, "
        f"cropped to the tumour box + {MARGIN_MM:.0f} mm; tumour volume median "
        f"{np.median(volumes):.1f} mL (range {volumes.min():.1f}-{volumes.max():.1f}). "
        f"Matched settings: {SPACING_MM:.0f} mm isotropic linear resampling (mask nearest "
        f"neighbour), re-segmentation [{RESEGMENT_HU[0]:.0f}, {RESEGMENT_HU[1]:.0f}] HU, fixed "
        f"bin width {BIN_WIDTH_HU:.0f} HU, 3D texture averaged over directions, all feature "
        "families, no filters; one process per library, sequential, one warm-up call first.",
        "",
        "| | " + " | ".join(LIBRARIES) + " |",
        "|---|" + "---|" * len(LIBRARIES),
    ]

    def row(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(lib) for lib in LIBRARIES) + " |")

    row("time per ROI, median (s)", lambda lib: f"{np.median(timing[lib]['seconds']):.2f}")
    row("time per ROI, p90 (s)", lambda lib: f"{np.percentile(timing[lib]['seconds'], 90):.2f}")
    row("total for all ROIs (s)", lambda lib: f"{np.sum(timing[lib]['seconds']):.1f}")
    row("import time (s)", lambda lib: f"{timing[lib]['import_s']:.1f}")
    row("peak RSS (MB)", lambda lib: f"{timing[lib]['peak_rss_mb']:.0f}")
    row("RSS after import (MB)", lambda lib: f"{timing[lib]['rss_after_import_mb']:.0f}")

    def n_features(lib: str) -> str:
        n = [len(f) for f in timing[lib]["features"]]
        nan = [sum(not math.isfinite(v) for v in f.values()) for f in timing[lib]["features"]]
        span = f"{min(n)}" if min(n) == max(n) else f"{min(n)}-{max(n)}"
        return span + (f" ({max(nan)} NaN at most)" if max(nan) else "")

    row("features per ROI", n_features)
    n_all, n_3d = len(reference), int(three_d.sum())
    row(
        f"IBSI-1 phantom, all {n_all}: computed / within / outside / not computed",
        lambda lib: counts(tables[lib]),
    )
    row(
        f"IBSI-1 phantom, 3D and non-texture ({n_3d}): same",
        lambda lib: counts(tables[lib][three_d.to_numpy()]),
    )
    converted = {
        tag: PYRADIOMICS_CONVERSIONS.get(tag, float)(value)
        for tag, value in ibsi["pyradiomics"]["features"].items()
    }
    kurt = conformance(reference, converted)
    lines += [
        "",
        "IBSI counts are over the reference features with a reference value (5 are not "
        "standardised); a value is within when |value - reference| <= tolerance, the reference "
        "being taken to its 3 significant digits. pyradiomics with its documented kurtosis "
        f"offset undone (kurtosis - 3): {counts(kurt)} (all).",
        "",
        "## IBSI-1 phantom by family: within / computed (of n)",
        "",
        "| family | dims | n | " + " | ".join(LIBRARIES) + " |",
        "|---|---|---|" + "---|" * len(LIBRARIES),
    ]
    keys = tables["mirp"].assign(dims=tables["mirp"]["dims"].fillna("-"))
    for (group, dims), part in keys.groupby(["group", "dims"], sort=False):
        cells = []
        for lib in LIBRARIES:
            sub = tables[lib].loc[part.index]
            cells.append(f"{int(sub['within'].sum())} / {int(sub['computed'].sum())}")
        lines.append(f"| {group} | {dims} | {len(part)} | " + " | ".join(cells) + " |")
    for lib in LIBRARIES:
        outside = tables[lib][tables[lib]["computed"] & ~tables[lib]["within"]]
        lines += ["", f"## {lib}: IBSI features outside tolerance ({len(outside)})", ""]
        if len(outside):
            lines += ["| tag | value | reference | tolerance |", "|---|---|---|---|"]
            lines += [
                f"| {tag} | {r['value']:.4g} | {r['reference']:.4g} | {r['tol']:g} |"
                for tag, r in outside.iterrows()
            ]
    agree = agreement(timing["pyradiomics"]["features"], timing["mirp"]["features"])
    diff = agree["median_rel_diff"]
    lines += [
        "",
        "## Agreement between the two on the CT tumours",
        "",
        f"{len(agree)} IBSI features computed by both (3D, directions averaged; pyradiomics "
        "kurtosis - 3); median over "
        f"ROIs of |a - b| / max(|a|, |b|): {int((diff < 0.001).sum())} agree within 0.1 %, "
        f"{int((diff < 0.01).sum())} within 1 %, {int((diff < 0.1).sum())} within 10 %. "
        "Largest differences: "
        + ", ".join(f"{t} {v:.0%}" for t, v in diff.iloc[::-1].head(8).items())
        + ".",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cohort", type=Path, default=Path("/tmp/radlib_sim"))
    parser.add_argument("--ibsi", type=Path, default=Path("/work/shared/data/ibsi"))
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        library, task, payload, out = args.worker
        worker(library, task, Path(payload), Path(out))
        return
    reference = load_reference(args.ibsi)
    with tempfile.TemporaryDirectory(prefix="radlib_") as name:
        tmp = Path(name)
        rois = prepare_rois(args.cohort, tmp)
        manifest = tmp / "rois.json"
        manifest.write_text(json.dumps(rois), encoding="utf-8")
        log(f"{len(rois)} tumour regions written to {tmp}")
        timing, ibsi = {}, {}
        for library in LIBRARIES:
            log(f"{library}: IBSI 1 digital phantom")
            ibsi[library] = run_worker(library, "ibsi", args.ibsi, tmp)
            log(f"{library}: {len(rois)} tumour regions")
            timing[library] = run_worker(library, "rois", manifest, tmp)
    print(report(rois, timing, ibsi, reference))


if __name__ == "__main__":
    main()
