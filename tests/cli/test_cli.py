"""The command line as a user runs it: the installed script, exit codes, output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hepablate import __version__
from hepablate.cli import app

runner = CliRunner()


def _hepablate(*args: str) -> subprocess.CompletedProcess[str]:
    script = shutil.which("hepablate", path=str(Path(sys.executable).parent))
    assert script is not None, "the hepablate script is not installed in this environment"
    env = {k: v for k, v in os.environ.items() if k != "HEPABLATE_DEBUG"}
    env["PYTHONIOENCODING"] = "utf-8"  # the report uses · and µ, whatever the locale
    return subprocess.run(
        [script, *args], capture_output=True, encoding="utf-8", env=env, check=False
    )


@pytest.mark.slow
def test_help_lists_validate() -> None:
    result = _hepablate("--help")

    assert result.returncode == 0
    assert "validate" in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])

    assert result.exit_code == 0
    assert result.stdout.strip() == f"hepablate {__version__}"


@pytest.mark.slow
def test_validate_example_exits_0(example_cohort: Path) -> None:
    result = _hepablate("validate", str(example_cohort))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 patients, 8 tumours, 2 centres, 34 images and masks" in result.stdout
    assert "valid: 0 error(s), 0 warning(s)" in result.stdout


@pytest.mark.slow
def test_validate_broken_cohort_exits_2_without_traceback(cohort_copy: Path) -> None:
    (cohort_copy / "images" / "P02" / "pre_ct.nii.gz").write_bytes(b"\x1f\x8b broken")
    text = (cohort_copy / "patients.csv").read_text(encoding="utf-8")
    (cohort_copy / "patients.csv").write_text(text.replace("P04,B,49", "P04,B,9"), encoding="utf-8")

    result = _hepablate("validate", str(cohort_copy))

    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert (
        "ERROR [value.out_of_range] patient P04 · patients.csv row 5 · field age: "
        "9 years is outside the valid range [18, 100] years"
    ) in result.stdout
    assert "patient P02 · images/P02/pre_ct.nii.gz · field pre_ct" in result.stdout
    assert "not valid: 2 error(s)" in result.stdout


def test_validate_json_is_machine_readable(cohort_copy: Path) -> None:
    (cohort_copy / "tumours.csv").unlink()

    result = runner.invoke(app, ["validate", str(cohort_copy), "--json"])

    assert result.exit_code == 2
    report = json.loads(result.stdout)
    assert [p["code"] for p in report["problems"]] == ["table.missing_file"]
    assert report["problems"][0]["file"] == "tumours.csv"


@pytest.mark.slow
def test_validate_missing_folder_exits_2(tmp_path: Path) -> None:
    result = _hepablate("validate", str(tmp_path / "nowhere"))

    assert result.returncode == 2
    assert "is not a folder" in result.stdout


@pytest.mark.parametrize("flag", ["--no-images"])
def test_validate_can_skip_images(flag: str, cohort_copy: Path) -> None:
    (cohort_copy / "images" / "P02" / "pre_ct.nii.gz").write_bytes(b"broken")

    result = runner.invoke(app, ["validate", str(cohort_copy), flag])

    assert result.exit_code == 0
