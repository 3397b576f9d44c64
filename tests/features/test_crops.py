"""The crop reader (``CropStore``): the one way the tests, the image models and prediction read
the crops a FeatureTable's cache holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hepablate.features.cache import CacheError, FeatureCache, PatientResult
from hepablate.features.crops import PHASES, CropStore, load_crops


def _crops(value: float) -> np.ndarray:
    return np.full((3, 4, 4, 4), value, dtype=np.float32)


@pytest.fixture
def store(tmp_path: Path) -> CropStore:
    cache = FeatureCache(tmp_path)
    # P1: two tumours with both phases; P2: one tumour not ablated yet (no post crop)
    both = {"1_pre": _crops(1), "1_post": _crops(2), "2_pre": _crops(3), "2_post": _crops(4)}
    cache.put("P1", "k1", PatientResult(rows={1: {}, 2: {}}, crops=both))
    cache.put("P2", "k2", PatientResult(rows={1: {}}, crops={"1_pre": _crops(5)}))
    info = {"cache": str(tmp_path), "keys": {"P1": "k1", "P2": "k2"}, "size_mm": 8.0}
    return CropStore({**info, "spacing_mm": 2.0})


def test_it_reads_a_tumours_crops_and_stacks_rows_in_order(store: CropStore) -> None:
    assert (store.size_mm, store.spacing_mm) == (8.0, 2.0)
    assert set(store.tumour("P1", 2)) == {"pre", "post"}
    assert set(store.tumour("P2", 1)) == {"pre"}  # absent, not zeros
    stacked = store.stack([("P1", 2), ("P1", 1)], PHASES)
    assert stacked.shape == (2, 6, 4, 4, 4) and stacked.dtype == np.float32
    assert stacked[:, ::3, 0, 0, 0].tolist() == [[3.0, 4.0], [1.0, 2.0]]  # pre then post
    assert store.stack([("P2", 1)], ("pre",))[0, 0, 0, 0, 0] == 5.0


def test_the_phases_every_tumour_has(store: CropStore) -> None:
    assert store.phases([("P1", 1), ("P1", 2)]) == PHASES
    assert store.phases([("P1", 1), ("P2", 1)]) == ("pre",)
    with pytest.raises(KeyError, match="patient P2, tumour 1: no post crop"):
        store.stack([("P2", 1)], PHASES)
    with pytest.raises(KeyError, match="patient P1, tumour 7: no pre crop"):
        store.phases([("P1", 7)])


def test_damage_and_missing_patients_are_named(store: CropStore) -> None:
    with pytest.raises(KeyError, match="patient P9: no crops in the FeatureTable's cache"):
        store.patient("P9")
    path = store.cache.crops_path("P1", "k1")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CacheError, match=r"patient P1: .*crops\.npz"):
        store.tumour("P1", 1)
    with pytest.raises(ValueError, match="no crops on disk"):
        CropStore({"cache": None})


def test_load_crops_reads_through_the_tables_attrs(store: CropStore, tmp_path: Path) -> None:
    table = pd.DataFrame()
    table.attrs["hepablate"] = {"crops": {"cache": str(tmp_path), "keys": {"P2": "k2"}}}
    crops = load_crops(table, "P2", 1)
    assert list(crops) == ["pre"] and crops["pre"].shape == (3, 4, 4, 4)
    assert CropStore.of(table).size_mm is None  # a table that did not record it
