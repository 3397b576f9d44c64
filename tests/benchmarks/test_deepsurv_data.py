"""The DeepSurv data sets as the survival benchmark reads them (shapes of the published splits:
Katzman et al. 2018 list the same row and covariate counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from benchmarks.deepsurv_datasets import DATA_SETS, _read

pytestmark = pytest.mark.shared_data

SHAPES = {  # (training rows, test rows, covariates)
    "WHAS": (1310, 328, 6),
    "SUPPORT": (7098, 1775, 14),
    "METABRIC": (1523, 381, 9),
    "Rotterdam & GBSG": (1546, 686, 7),
}


@pytest.mark.parametrize("name", list(DATA_SETS))
def test_each_data_set_reads_with_its_split_and_survival_target(
    shared_data: Path, name: str
) -> None:
    splits = _read(shared_data / "survival" / "deepsurv_experiments_data" / DATA_SETS[name])
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    assert (len(x_train), len(x_test), x_train.shape[1]) == SHAPES[name]
    assert x_test.shape[1] == x_train.shape[1] and np.isfinite(x_train).all()
    for y in (y_train, y_test):
        assert y.dtype.names == ("event", "time")
        # METABRIC has follow-up times of 0 (as published); none is negative.
        assert 0 < y["event"].mean() < 1 and (y["time"] >= 0).all()
