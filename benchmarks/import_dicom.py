"""Benchmark `hepablate import-dicom`: seconds per study.

    .venv/bin/python benchmarks/import_dicom.py

Writes 5 virtual patients (`small` images) as a PACS export would hold them (per patient a
pre- and a post-ablation CT study as DICOM series, with DICOM-SEG of the tumours, liver and
ablation zones), then times the import of all of them (one process).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.uid import generate_uid

from hepablate.cohort.dicom_import import import_dicom
from hepablate.imaging.io import Volume, read_volume, write_dicom_series
from hepablate.imaging.segmentations import write_dicom_seg
from hepablate.simulate.generate import SimulationConfig, simulate_cohort

PATIENTS = 5


def _export(cohort: Path, export: Path) -> None:
    for folder in sorted((cohort / "images").iterdir()):
        volumes = {p.name.split(".")[0]: read_volume(p) for p in folder.glob("*.nii.gz")}
        for scan, day, masks in (
            ("pre_ct", "20210301", {"Tumour": "pre_tumours", "Liver": "liver"}),
            ("post_ct", "20210412", {"Ablation": "post_ablation"}),
        ):
            study = str(generate_uid(entropy_srcs=[folder.name, scan]))
            series = export / folder.name / scan / "ct"
            write_dicom_series(
                volumes[scan],
                series,
                patient_id=folder.name,
                patient_name=f"TEST^{folder.name}",
                study_uid=study,
                study_date=day,
                series_description=scan,
            )
            segments: dict[str, Volume] = {}
            for label, name in masks.items():
                mask = volumes[name]
                ids = [int(v) for v in np.unique(mask.array) if v]
                for number in ids if name != "liver" else [1]:
                    key = label if name == "liver" else f"{label} {number}"
                    segments[key] = Volume(
                        array=(mask.array == number).astype(np.uint8), grid=mask.grid
                    )
            write_dicom_seg(segments, series, export / folder.name / scan / "seg.dcm")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulate_cohort(SimulationConfig(n=PATIENTS, seed=2), root / "sim", workers=2)
        _export(root / "sim", root / "export")
        start = time.perf_counter()
        import_dicom(root / "export", root / "cohort", root / "mapping.csv")
        seconds = time.perf_counter() - start
    studies = 2 * PATIENTS
    print("| studies | total (s) | per study (s) |")
    print("|---|---|---|")
    print(
        f"| {studies} (small: 147 x 117 x 62 CT + DICOM-SEG) | {seconds:.1f} | "
        f"{seconds / studies:.2f} |"
    )


if __name__ == "__main__":
    main()
