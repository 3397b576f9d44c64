"""Benchmark `hepablate extract` on a 200-patient virtual cohort (`small` images), in one run.

    .venv/bin/python benchmarks/extract.py [--n 200] [--work DIR] [--part all|scale|regions]
    .venv/bin/python benchmarks/extract.py --part resume --cold-seconds S  (after a scale run)

scale (the CLI, as a user runs it, default extraction config):
1. cold run on 2 workers with a fresh cache;
2. the same command again (warm cache);
3. cold run on 1 worker without cache: the 2-vs-1 ratio;
4. a cold run on 2 workers killed (SIGINT) halfway, then resumed; the resumed table must equal
   run 1's.
regions (in this process, 20 tumours): seconds per region (tumour, ring, ablation zone) of our
wrapper (`compute_radiomics`: crop, write, MIRP, rename) against bare MIRP on the same ROI files,
and the peak memory of the extraction processes.
Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from hepablate.cohort import load_cohort
from hepablate.features import patient as extraction
from hepablate.features.config import ExtractionConfig
from hepablate.features.radiomics import (
    compute_radiomics,
    crop_to_mask,
    mirp_settings,
    resample_mask,
    run_mirp,
)

HEPABLATE = str(Path(sys.executable).with_name("hepablate"))


def _simulate(n: int, work: Path) -> Path:
    cohort = work / f"sim{n}"
    if not (cohort / "cohort.yaml").is_file():
        subprocess.run(
            [HEPABLATE, "simulate", "--n", str(n), "--seed", "1", "--out", str(cohort)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return cohort


def _run(args: list[str], *, stop_after: float | None = None) -> tuple[float, int]:
    """Seconds and exit code of one CLI run (stopped with SIGINT after ``stop_after``)."""
    start = time.perf_counter()
    # A command started in the background by a non-interactive shell (`bench &`) inherits
    # SIGINT ignored, and so would the CLI: the stop would go unheard. Restore the default.
    process = subprocess.Popen(
        [HEPABLATE, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    if stop_after is not None:
        try:
            process.wait(timeout=stop_after)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
    code = process.wait()
    return time.perf_counter() - start, code


def resume(cohort: Path, work: Path, two: float) -> None:
    """Stop a cold 2-worker run halfway (SIGINT), resume it, compare with the scale run's table."""
    out = work / "features"
    shutil.rmtree(out / "resumed.cache", ignore_errors=True)
    (out / "resumed.parquet").unlink(missing_ok=True)
    killed, code = _run(
        ["extract", str(cohort), "--out", str(out / "resumed.parquet"), "--workers", "2"],
        stop_after=two / 2,
    )
    done = sum(1 for _ in (out / "resumed.cache").glob("*/*/result.json"))
    resumed, _ = _run(
        ["extract", str(cohort), "--out", str(out / "resumed.parquet"), "--workers", "2"]
    )
    first = pd.read_parquet(out / "two.parquet")
    again = pd.read_parquet(out / "resumed.parquet")
    measured = [c for c in first.columns if c.startswith(("rad.", "geom."))]
    pd.testing.assert_frame_equal(first[measured], again[measured])
    print(
        f"| 2 workers, stopped (SIGINT) after {killed:.0f} s (exit {code}, {done} of "
        f"{first['group'].nunique()} patients cached), then resumed | {resumed:.0f} | "
        f"{(killed + resumed) / two:.2f}x the uninterrupted run ({two:.0f} s) |"
    )
    print(f"\nThe resumed table equals the uninterrupted one ({len(measured)} rad./geom. columns).")


def scale(cohort: Path, work: Path) -> None:
    out = work / "features"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    two, _ = _run(["extract", str(cohort), "--out", str(out / "two.parquet"), "--workers", "2"])
    warm, _ = _run(["extract", str(cohort), "--out", str(out / "two.parquet"), "--workers", "2"])
    one, _ = _run(
        [
            "extract",
            str(cohort),
            "--out",
            str(out / "one.parquet"),
            "--workers",
            "1",
            "--no-cache",
        ]
    )
    killed, code = _run(
        ["extract", str(cohort), "--out", str(out / "resumed.parquet"), "--workers", "2"],
        stop_after=two / 2,
    )
    done = sum(1 for _ in (out / "resumed.cache").glob("*/*/result.json"))
    resumed, _ = _run(
        ["extract", str(cohort), "--out", str(out / "resumed.parquet"), "--workers", "2"]
    )
    first = pd.read_parquet(out / "two.parquet")
    again = pd.read_parquet(out / "resumed.parquet")
    single = pd.read_parquet(out / "one.parquet")
    measured = [c for c in first.columns if c.startswith(("rad.", "geom."))]
    pd.testing.assert_frame_equal(first[measured], again[measured])
    pd.testing.assert_frame_equal(first[measured], single[measured])
    patients = first["group"].nunique()
    print(f"| `hepablate extract`, {patients} patients, {len(first)} tumours | seconds | ratio |")
    print("|---|---|---|")
    print(f"| 1 worker, no cache | {one:.0f} | 1.00 |")
    print(f"| 2 workers, cold cache | {two:.0f} | {one / two:.2f}x faster |")
    print(f"| 2 workers, warm cache (rerun) | {warm:.1f} | {warm / two * 100:.1f}% of cold |")
    print(
        f"| 2 workers, stopped after {killed:.0f} s (exit {code}, {done} patients cached), "
        f"then resumed | {resumed:.0f} | {(killed + resumed) / two:.2f}x the uninterrupted run |"
    )
    print(
        f"\nResumed and 1-worker tables equal the 2-worker table ({len(measured)} rad./geom. "
        f"columns). Per tumour (2 workers): {two / len(first):.2f} s; peak RSS of any extraction "
        f"process {_peak_children_mb():.0f} MB."
    )


def _peak_children_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def regions(cohort: Path, n_tumours: int = 20) -> None:
    data = load_cohort(cohort)
    config = ExtractionConfig()
    assert config.radiomics is not None
    settings = config.radiomics
    times: dict[str, tuple[list[float], list[float]]] = {}
    scan_seconds: list[float] = []
    seen = 0
    with tempfile.TemporaryDirectory() as folder:
        for patient in data.patient_ids:
            ids = data.tumours.loc[patient].index if data.tumours is not None else []
            task = extraction._PatientTask(
                patient, tuple(int(t) for t in ids), data.images[patient], config
            )
            scans = extraction._load_scans(task, [])
            assert scans is not None
            for which in ("pre", "post"):  # once per scan, shared by its regions
                start = time.perf_counter()
                extraction._radiomics_scan(scans, which, settings)
                scan_seconds.append(time.perf_counter() - start)
            for tumour_id in task.tumour_ids:
                for region, (which, region_mask) in extraction._regions(
                    scans, tumour_id, config.ring_mm
                ).items():
                    families = (
                        None if region in config.morphology_regions else extraction._NO_MORPHOLOGY
                    )
                    if not region_mask.any():
                        continue
                    start = time.perf_counter()
                    image = extraction._radiomics_scan(scans, which, settings)
                    mask = resample_mask(region_mask, scans.pre.grid, settings)
                    compute_radiomics(
                        image, mask, settings, region=region, families=families, resampled=True
                    )
                    ours = time.perf_counter() - start
                    # Bare MIRP on the same ROI: the region cut from the scan as it was read
                    # (+10 mm), resampled by MIRP itself, as a user of MIRP alone would do it.
                    source = scans.pre if which == "pre" else scans.post_on_pre
                    assert source is not None
                    cropped, cropped_mask = crop_to_mask(
                        source, region_mask, settings.crop_margin_mm
                    )
                    image_path, mask_path = Path(folder, "i.nii"), Path(folder, "m.nii")
                    sitk.WriteImage(cropped.to_sitk(), str(image_path))
                    sitk.WriteImage(cropped_mask.to_sitk(), str(mask_path))
                    narrowed = settings.model_copy(
                        update={
                            "families": tuple(
                                f for f in settings.families if families is None or f in families
                            )
                        }
                    )
                    start = time.perf_counter()
                    run_mirp(image_path, mask_path, mirp_settings(narrowed))
                    bare = time.perf_counter() - start
                    times.setdefault(region, ([], []))[0].append(ours)
                    times[region][1].append(bare)
                seen += 1
                if seen >= n_tumours:
                    break
            if seen >= n_tumours:
                break
    print(f"\n| region ({seen} tumours, median s) | hepablate | bare MIRP | overhead |")
    print("|---|---|---|---|")
    total_ours = total_bare = 0.0
    for region, (ours_list, bare_list) in times.items():
        ours_m, bare_m = statistics.median(ours_list), statistics.median(bare_list)
        total_ours += float(np.sum(ours_list))
        total_bare += float(np.sum(bare_list))
        print(f"| {region} | {ours_m:.2f} | {bare_m:.2f} | {(ours_m / bare_m - 1) * 100:+.0f}% |")
    total_ours += float(np.sum(scan_seconds))
    print(
        f"| all regions, total (hepablate incl. {np.sum(scan_seconds):.1f} s resampling "
        f"{len(scan_seconds)} scans once) | {total_ours:.1f} | {total_bare:.1f} | "
        f"{(total_ours / total_bare - 1) * 100:+.0f}% |"
    )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nPeak memory of this process (reading, registering, all regions): {peak:.0f} MB.")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir(), "hepablate-bench"))
    parser.add_argument("--part", choices=["all", "scale", "regions", "resume"], default="all")
    parser.add_argument(
        "--cold-seconds", type=float, help="resume: the cold 2-worker time of the scale run"
    )
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cohort = _simulate(args.n, args.work)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    if args.part in ("all", "regions"):
        regions(cohort)
    if args.part in ("all", "scale"):
        scale(cohort, args.work)
    if args.part == "resume":
        resume(cohort, args.work, args.cold_seconds)


if __name__ == "__main__":
    main()
