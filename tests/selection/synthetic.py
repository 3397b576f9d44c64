"""Synthetic problems for the selector tests: 3 informative columns, 20 noise columns and 3
near-duplicates of the first informative column (correlation about 0.93), fixed seeds."""

from __future__ import annotations

import numpy as np
import pandas as pd

INFORMATIVE = ["inf0", "inf1", "inf2"]
NOISE = [f"noise{i}" for i in range(20)]
DUPLICATES = ["dup0", "dup1", "dup2"]
COEF = np.array([1.5, -1.5, 1.2])


def features(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    informative = rng.normal(size=(n, 3))
    noise = rng.normal(size=(n, 20))
    duplicates = informative[:, [0]] + 0.4 * rng.normal(size=(n, 3))
    data = np.hstack([informative, noise, duplicates])
    return pd.DataFrame(data, columns=INFORMATIVE + NOISE + DUPLICATES)


def binary(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """y ~ Bernoulli(logistic(X_inf @ COEF))."""
    X = features(n, seed)
    rng = np.random.default_rng(seed + 100)
    logit = X[INFORMATIVE].to_numpy() @ COEF
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def survival(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Exponential times with hazard exp(X_inf @ COEF / 2), independent exponential censoring
    (about 30 % censored)."""
    X = features(n, seed)
    rng = np.random.default_rng(seed + 200)
    hazard = np.exp(X[INFORMATIVE].to_numpy() @ COEF / 2)
    time = rng.exponential(1 / hazard)
    censor = rng.exponential(1 / 0.45, size=n)
    y = np.empty(n, dtype=[("event", bool), ("time", float)])
    y["event"] = time <= censor
    y["time"] = np.minimum(time, censor)
    return X, y
