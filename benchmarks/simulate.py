"""Benchmark `hepablate simulate`: wall time, peak memory and disk size.

    .venv/bin/python benchmarks/simulate.py [--quick]

Runs, each in a fresh process (peak memory = the largest resident set among the command and
its worker processes, each of which holds one patient at a time):
- 200 patients, small images, 2 workers (the demo and test cohort);
- 20 patients, full images, 2 workers (for benchmarks of later stages);
- 20 patients, small images, 1 worker and 2 workers: the parallel speed-up as a ratio.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEPABLATE = str(Path(sys.executable).parent / "hepablate")


_MEASURE = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _run(args: list[str], out: Path) -> tuple[float, float, float]:
    """Seconds, peak resident memory (MB) and disk use (MB) of one `hepablate simulate` run.

    A fresh wrapper process runs the command, so its children's peak is this run's alone
    (worker processes included: their usage is folded into the command's when it waits).
    """
    started = time.perf_counter()
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURE, HEPABLATE, "simulate", *args, "--out", str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    peak_mb = int(measured.stdout.split()[-1]) / 1024
    disk = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    shutil.rmtree(out)
    return seconds, peak_mb, disk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="20 small patients only")
    quick = parser.parse_args().quick
    cases = [
        ("20 small, 1 worker", ["--n", "20", "--workers", "1"]),
        ("20 small, 2 workers", ["--n", "20", "--workers", "2"]),
    ]
    if not quick:
        cases += [
            ("200 small, 2 workers", ["--n", "200", "--workers", "2"]),
            ("20 full, 2 workers", ["--n", "20", "--size", "full", "--workers", "2"]),
        ]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args in cases:
            results[name] = _run(["--seed", "1", *args], Path(tmp) / "cohort")
    print("| run | wall time (s) | per patient (s) | peak memory (MB) | disk (MB) |")
    print("|---|---|---|---|---|")
    for name, (seconds, memory, disk) in results.items():
        n = int(name.split()[0])
        print(f"| {name} | {seconds:.1f} | {seconds / n:.2f} | {memory:.0f} | {disk:.0f} |")
    one, two = results["20 small, 1 worker"][0], results["20 small, 2 workers"][0]
    print(f"\nspeed-up of 2 workers over 1 (20 small patients): {one / two:.2f}x")


if __name__ == "__main__":
    main()
