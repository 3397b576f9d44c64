"""Outputs that are never lost: the checks, the staged folder and file, and what kills leave."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hepablate import outputs
from hepablate.outputs import (
    MARKER,
    OutputError,
    check_output_dir,
    check_output_file,
    read_marker,
    staged_dir,
    staged_file,
)


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _run(out: Path, files: dict[str, str], kind: str = "train", **options: bool) -> None:
    with staged_dir(out, kind, **options) as stage:
        _write(stage, files)


def _siblings(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name != out.name)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_new_output_is_written_whole_with_its_marker(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "run"
    check_output_dir(out, "train")  # parents that do not exist yet are fine
    _run(out, {"metrics.json": "{}", "bundle/model.skops": "m"})
    assert (out / "bundle" / "model.skops").read_text(encoding="utf-8") == "m"
    marker = read_marker(out)
    assert marker is not None
    assert marker["kind"] == "train"
    assert marker["files"] == ["bundle", "metrics.json"] and marker["kept"] == []
    assert _siblings(out) == []  # no staging folder left


def test_a_rerun_replaces_its_own_files_and_keeps_everything_else(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out, {"metrics.json": "old", "report.html": "old", "bundle/model.skops": "old"})
    _write(out, {"notes.txt": "mine", "figures/a.png": "png"})
    notes_inode = (out / "notes.txt").stat().st_ino
    check_output_dir(out, "train", names={"metrics.json", "report.html", "bundle"})

    with staged_dir(out, "train") as stage:
        # until the swap, the previous output is whole where it was
        assert (out / "bundle" / "model.skops").read_text(encoding="utf-8") == "old"
        assert stage.parent == out.parent and stage.name.startswith(".run.partial-")
        _write(stage, {"metrics.json": "new", "bundle/model.skops": "new"})

    assert (out / "metrics.json").read_text(encoding="utf-8") == "new"
    assert (out / "bundle" / "model.skops").read_text(encoding="utf-8") == "new"
    assert not (out / "report.html").exists()  # ours, and not written this time: dropped
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (out / "notes.txt").stat().st_ino == notes_inode  # kept by a hard link
    assert (out / "figures" / "a.png").read_text(encoding="utf-8") == "png"
    marker = read_marker(out)
    assert marker is not None
    assert marker["files"] == ["bundle", "metrics.json"]
    assert marker["kept"] == ["figures", "notes.txt"]
    assert _siblings(out) == []

    _run(out, {"metrics.json": "third"})  # kept files stay foreign: never taken for ours
    assert (out / "notes.txt").is_file() and (out / "figures" / "a.png").is_file()


def test_a_failing_run_leaves_the_previous_output_untouched(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out, {"metrics.json": "old"})
    with pytest.raises(ZeroDivisionError), staged_dir(out, "train") as stage:
        _write(stage, {"metrics.json": "half"})
        _ = 1 / 0
    assert (out / "metrics.json").read_text(encoding="utf-8") == "old"
    assert _siblings(out) == []


def test_a_foreign_folder_is_refused_unless_overwrite_and_then_kept(tmp_path: Path) -> None:
    out = tmp_path / "mine"
    _write(out, {"thesis.tex": "x", "metrics.json": "my own"})
    with pytest.raises(OutputError, match="--overwrite") as refused:
        check_output_dir(out, "train")
    assert refused.value.path == out
    with pytest.raises(OutputError), staged_dir(out, "train") as stage:
        _write(stage, {"metrics.json": "new"})
    assert (out / "metrics.json").read_text(encoding="utf-8") == "my own"

    check_output_dir(out, "train", overwrite=True)
    _run(out, {"metrics.json": "new", "predictions.csv": "p"}, overwrite=True)
    assert (out / "thesis.tex").read_text(encoding="utf-8") == "x"
    assert (out / "metrics.json").read_text(encoding="utf-8") == "new"  # --overwrite: replaced
    marker = read_marker(out)
    assert marker is not None and marker["kept"] == ["thesis.tex"]


def test_an_output_of_another_kind_is_foreign(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out, {"cohort": ""}, kind="demo")
    with pytest.raises(OutputError, match="hepablate train"):
        check_output_dir(out, "train")
    check_output_dir(out, "demo")


def test_a_foreign_file_with_the_name_of_an_output_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out, {"metrics.json": "{}"})  # a run without a report
    _write(out, {"report.html": "written by hand"})
    with pytest.raises(OutputError, match="would replace") as refused:
        check_output_dir(out, "train", names={"metrics.json", "report.html"})
    assert refused.value.path == out / "report.html"
    with pytest.raises(OutputError), staged_dir(out, "train") as stage:
        _write(stage, {"report.html": "generated"})
    assert (out / "report.html").read_text(encoding="utf-8") == "written by hand"
    check_output_dir(out, "train", names={"report.html"}, overwrite=True)


def test_a_run_must_declare_what_it_writes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match=r"extra\.txt"):
        _run_declared(out)
    assert not out.exists() and _siblings(out) == []


def _run_declared(out: Path) -> None:
    with staged_dir(out, "train", names={"metrics.json"}) as stage:
        _write(stage, {"metrics.json": "{}", "extra.txt": ""})


def test_outputs_that_cannot_be_written_are_refused_naming_the_path(tmp_path: Path) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    with pytest.raises(OutputError, match="is a file") as refused:
        check_output_dir(a_file, "train")
    assert refused.value.path == a_file
    with pytest.raises(OutputError, match="cannot be created under it") as refused:
        check_output_dir(a_file / "sub" / "run", "train")
    assert refused.value.path == a_file
    with pytest.raises(OutputError, match="is a folder") as refused:
        check_output_file(tmp_path, overwrite=True)
    with pytest.raises(OutputError, match="cannot be created under it"):
        check_output_file(a_file / "features.parquet")


def _read_only_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    return folder


@pytest.mark.parametrize("where", ["chmod", "sysfs"])
def test_a_read_only_place_is_refused(tmp_path: Path, where: str) -> None:
    if where == "chmod":
        folder = _read_only_folder(tmp_path)
        if os.access(folder, os.W_OK):
            pytest.skip("running as root: permission bits do not stop this user")
    else:
        folder = Path("/sys")
        if not folder.is_dir() or _writable(folder):
            pytest.skip("no read-only sysfs here")
    try:
        with pytest.raises(OutputError, match="cannot be written") as refused:
            check_output_dir(folder / "run", "train")
        assert refused.value.path == folder
        with pytest.raises(OutputError, match="cannot be written"):
            check_output_file(folder / "features.parquet")
    finally:
        if where == "chmod":
            folder.chmod(0o755)


def _writable(folder: Path) -> bool:
    try:
        (folder / ".hepablate-test").touch()
    except OSError:
        return False
    (folder / ".hepablate-test").unlink()
    return True


def test_the_two_rename_fallback_gives_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outputs, "_exchange_names", lambda a, b: False)
    out = tmp_path / "run"
    _run(out, {"metrics.json": "old"})
    _write(out, {"notes.txt": "mine"})
    _run(out, {"metrics.json": "new"})
    assert (out / "metrics.json").read_text(encoding="utf-8") == "new"
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert _siblings(out) == []


def test_what_a_killed_run_left_is_cleaned_or_put_back(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out, {"metrics.json": "old"})
    host, dead = socket.gethostname(), _dead_pid()
    stale = tmp_path / f".run.partial-{host}-{dead}-0a1b2c3d"
    _write(stale, {"metrics.json": "half"})
    alive = tmp_path / f".run.partial-{host}-{os.getpid()}-0a1b2c3d"  # a run still going
    _write(alive, {"metrics.json": "busy"})
    other_host = tmp_path / f".run.partial-elsewhere-{dead}-0a1b2c3d"  # not ours to judge
    other_host.mkdir()
    check_output_dir(out, "train")
    assert not stale.exists() and alive.is_dir() and other_host.is_dir()

    # killed between the two renames of the fallback: the previous output waits aside
    aside = tmp_path / f".run.old-{host}-{dead}-0a1b2c3d"
    out.rename(aside)
    check_output_dir(out, "train")
    assert (out / "metrics.json").read_text(encoding="utf-8") == "old" and not aside.exists()

    stale_file = tmp_path / f".features.parquet.partial-{host}-{dead}-0a1b2c3d.parquet"
    stale_file.write_text("half", encoding="utf-8")
    check_output_file(tmp_path / "features.parquet")
    assert not stale_file.exists()


KILLED_WRITER = """
import sys, time
from pathlib import Path
from hepablate.outputs import staged_dir
with staged_dir(Path(sys.argv[1]), "train") as stage:
    (stage / "metrics.json").write_text("new", encoding="utf-8")
    print(stage, flush=True)
    time.sleep(600)
"""


def test_a_kill_while_staging_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    _run(out, {"metrics.json": "old"})
    _write(out, {"notes.txt": "mine"})
    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    stage = Path(writer.stdout.readline().strip())
    assert stage.is_dir()
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert (out / "metrics.json").read_text(encoding="utf-8") == "old"
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine"
    _run(out, {"metrics.json": "next"})
    assert not stage.exists() and _siblings(out) == []
    assert (out / "notes.txt").is_file()


def test_a_staged_file_replaces_the_old_one_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "prediction.json"
    with staged_file(out) as temporary:
        assert temporary.parent == out.parent and temporary.suffix == ".json"
        temporary.write_text('{"a": 1}', encoding="utf-8")
    assert json.loads(out.read_text(encoding="utf-8")) == {"a": 1}
    with pytest.raises(KeyError), staged_file(out) as temporary:
        temporary.write_text("half", encoding="utf-8")
        raise KeyError("stopped")
    assert json.loads(out.read_text(encoding="utf-8")) == {"a": 1}
    assert sorted(p.name for p in out.parent.iterdir()) == ["prediction.json"]


def test_an_existing_file_of_another_kind_is_refused_unless_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "prediction.json"
    out.write_text("my notes", encoding="utf-8")

    def is_prediction(path: Path) -> bool:
        return path.read_text(encoding="utf-8").startswith("{")

    with pytest.raises(OutputError, match="is not a prediction") as refused:
        check_output_file(out, recognise=is_prediction, what="a prediction")
    assert refused.value.path == out
    check_output_file(out, recognise=is_prediction, what="a prediction", overwrite=True)
    out.write_text("{}", encoding="utf-8")
    check_output_file(out, recognise=is_prediction, what="a prediction")


def test_the_marker_is_never_taken_for_an_output(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    for broken in ("not json", "[1, 2]", '{"kind": "train"}'):
        (out / MARKER).write_text(broken, encoding="utf-8")
        assert read_marker(out) is None
    check_output_dir(out, "train")  # a folder holding only a broken marker is empty


def test_a_file_put_inside_a_folder_of_the_run_is_not_deleted_without_overwrite(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    _run(out, {"metrics.json": "old", "bundle/model.skops": "old"})
    marker = read_marker(out)
    assert marker is not None and marker["paths"] == ["bundle/model.skops", "metrics.json"]
    _write(out, {"bundle/notes.txt": "mine"})
    with pytest.raises(OutputError, match="replaces the folder it is in") as refused:
        check_output_dir(out, "train")
    assert refused.value.path == out / "bundle" / "notes.txt"
    with pytest.raises(OutputError), staged_dir(out, "train") as stage:
        _write(stage, {"bundle/model.skops": "new"})
    assert (out / "bundle" / "notes.txt").read_text(encoding="utf-8") == "mine"

    _run(out, {"bundle/model.skops": "new"}, overwrite=True)  # asked for: the folder is new
    assert sorted(p.name for p in (out / "bundle").iterdir()) == ["model.skops"]
