"""The feature cache: entries checked against their checksums, damaged ones discarded (named by
patient and file), a lock per patient that lets processes write one entry at once."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from hepablate.features.cache import CacheError, FeatureCache, PatientResult

KEY, OTHER_KEY = "a" * 64, "b" * 64


def _result(value: float = 1.5) -> PatientResult:
    return PatientResult(
        rows={1: {"geom.minimal_ablative_margin_mm": value, "qa.registration_ok": True}},
        perturbed={"P1:1:tumour": [{"rad.tumour.stat.mean": 3.0}]},
        crops={"1_pre": np.arange(24, dtype=np.float32).reshape(2, 3, 4)},
        warnings=[{"patient": "P1", "tumour": 1, "step": "radiomics", "reason": "small"}],
    )


def _stored(tmp_path: Path) -> tuple[FeatureCache, Path]:
    cache = FeatureCache(tmp_path / "cache")
    cache.put("P1", KEY, _result())
    return cache, tmp_path / "cache" / "P1" / KEY


def test_a_stored_entry_comes_back_whole_with_its_checksums(tmp_path: Path) -> None:
    cache, entry = _stored(tmp_path)

    back = cache.get("P1", KEY)

    assert back is not None and back.rows == _result().rows
    assert back.warnings == _result().warnings and back.perturbed == _result().perturbed
    np.testing.assert_array_equal(back.crops["1_pre"], _result().crops["1_pre"])
    record = json.loads((entry / "checksums.json").read_text(encoding="utf-8"))
    assert record["key"] == KEY and set(record["files"]) == {"result.json", "crops.npz"}
    assert cache.discarded == []
    assert cache.get("P1", OTHER_KEY) is None and cache.get("P2", KEY) is None


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_result(path: Path) -> None:
    """A hand edit that keeps valid JSON: another margin."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data["rows"]["1"]["geom.minimal_ablative_margin_mm"] = 9.0
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "damage", "reason"),
    [
        ("result.json", _truncate, "does not match its checksum"),
        ("result.json", _edit_result, "does not match its checksum"),
        ("crops.npz", _truncate, "does not match its checksum"),
        ("checksums.json", _truncate, "not a valid checksum record"),
        ("checksums.json", Path.unlink, "missing"),
    ],
    ids=["truncated_result", "edited_result", "truncated_crops", "bad_record", "no_record"],
)
def test_a_damaged_or_edited_entry_is_discarded_and_named(
    tmp_path: Path, name: str, damage: object, reason: str
) -> None:
    cache, entry = _stored(tmp_path)
    damage(entry / name)  # type: ignore[operator]

    assert cache.get("P1", KEY) is None  # so the patient is extracted again

    [discarded] = cache.discarded
    assert discarded["patient"] == "P1"
    assert discarded["file"] == str(entry / name)
    assert reason in discarded["reason"]
    assert not entry.exists()
    cache.put("P1", KEY, _result())  # ... and stored anew
    assert cache.get("P1", KEY) is not None


def test_an_extra_file_in_an_entry_is_refused(tmp_path: Path) -> None:
    cache, entry = _stored(tmp_path)
    (entry / "notes.txt").write_text("hello", encoding="utf-8")

    assert cache.get("P1", KEY) is None
    assert cache.discarded[0]["file"].endswith("notes.txt")


def test_damaged_crops_raise_an_error_naming_patient_and_file(tmp_path: Path) -> None:
    cache, entry = _stored(tmp_path)
    np.testing.assert_array_equal(cache.read_crops("P1", KEY)["1_pre"], _result().crops["1_pre"])
    _truncate(entry / "crops.npz")

    with pytest.raises(CacheError, match=r"patient P1: .*P1/a+/crops\.npz does not match"):
        cache.read_crops("P1", KEY)
    with pytest.raises(CacheError, match=r"patient P1: no crops at"):
        cache.read_crops("P1", OTHER_KEY)


def test_stale_partial_folders_are_removed(tmp_path: Path) -> None:
    cache, entry = _stored(tmp_path)
    stale = entry.parent / ".partial-killed"
    stale.mkdir()
    (stale / "result.json").write_text("{", encoding="utf-8")

    assert cache.get("P1", KEY) is not None
    assert not stale.exists()
    stale.mkdir()
    cache.put("P1", OTHER_KEY, _result())
    assert sorted(p.name for p in entry.parent.iterdir()) == [".lock", OTHER_KEY]


def _writer(root: str, worker: int, rounds: int) -> str | None:
    """Store the same patient over and over, alternating two keys; the error, if any."""
    cache = FeatureCache(Path(root))
    try:
        for i in range(rounds):
            key = KEY if (worker + i) % 2 else OTHER_KEY
            cache.put("P1", key, _result(float(worker)))
            cache.get("P1", key)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.mark.slow
def test_concurrent_writers_of_one_patient_do_not_clobber_each_other(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        errors = pool.starmap(_writer, [(str(root), w, 40) for w in range(4)])

    assert errors == [None] * 4
    entries = [p for p in (root / "P1").iterdir() if p.name != ".lock"]
    assert len(entries) == 1  # the last writer's entry; the others and every staging gone
    cache = FeatureCache(root)
    back = cache.get("P1", entries[0].name)
    assert back is not None and cache.discarded == []
    assert back.rows[1]["geom.minimal_ablative_margin_mm"] in {0.0, 1.0, 2.0, 3.0}
