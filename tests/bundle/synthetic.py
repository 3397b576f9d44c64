"""A small synthetic FeatureTable and quick studies on it: bundles of every model kind in
seconds, for the tests of what bundles hold and how they are trusted (no simulation, no
extraction)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hepablate.study import StudyConfig, run_study, study_data
from hepablate.study.results import summarise

MARGIN = "geom.minimal_ablative_margin_mm"
# Networks small enough to fit in a second: one member, a few epochs.
SMALL_NETWORK: dict[str, list[Any]] = {
    "epochs": [5],
    "n_members": [1],
    "hidden": [8],
    "embedding": [0],
}
BINARY_MODELS: list[dict[str, Any]] = [
    {"name": "logistic", "kind": "logistic", "grid": {"C": [1.0]}},
    {"name": "boosting", "kind": "gradient_boosting", "grid": {"max_iter": [20]}},
    {"name": "forest", "kind": "random_forest", "grid": {"n_estimators": [20]}},
    {"name": "mlp", "kind": "mlp", "grid": SMALL_NETWORK},
    {"name": "clinical", "kind": "logistic", "clinical_only": True, "grid": {"C": [1.0]}},
]
SURVIVAL_MODELS: list[dict[str, Any]] = [
    {"name": "cox", "kind": "cox", "grid": {"alpha": [1.0]}},
    {"name": "rsf", "kind": "random_survival_forest", "grid": {"n_estimators": [20]}},
    {"name": "boosted_cox", "kind": "gradient_boosting_survival", "grid": {"n_estimators": [20]}},
    {"name": "deep_surv", "kind": "deep_surv", "grid": SMALL_NETWORK},
    {"name": "deep_discrete", "kind": "deep_discrete", "grid": SMALL_NETWORK},
]


def table(n: int = 90, seed: int = 3) -> pd.DataFrame:
    """Patients with clinical, radiomic and margin columns, a binary and a time-to-event
    outcome that depend on the margin and one radiomic feature."""
    rng = np.random.default_rng(seed)
    margin = rng.uniform(0.0, 10.0, n)
    signal = rng.normal(size=n)
    risk = -0.5 * margin + 1.2 * signal + 2.0
    frame = pd.DataFrame(
        {
            "clin.age": rng.normal(65, 8, n).round(),
            "clin.afp_ng_ml": rng.lognormal(2.0, 1.0, n),
            "clin.aetiology": rng.choice(["HBV", "HCV", "NASH"], n).astype(object),
            MARGIN: margin,
            "rad.signal": signal,
            **{f"rad.noise{i}": rng.normal(size=n) for i in range(4)},
        },
        index=pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id"),
    )
    frame.loc[frame.index[::17], "rad.noise0"] = np.nan
    event = rng.random(n) < 1.0 / (1.0 + np.exp(-risk))
    time = np.where(event, rng.uniform(1.0, 24.0, n), 24.0)
    frame["outcome.ltp_24m"] = event.astype(int)
    frame["outcome.ltp.time_months"] = time
    frame["outcome.ltp.event"] = event
    return frame


def study(models: list[dict[str, Any]], *, survival: bool = False, **extra: Any) -> dict[str, Any]:
    """A quick study config: two outer folds, no repeats, the fewest bootstraps."""
    return {
        "endpoint": "ltp" if survival else "ltp_24m",
        "features": {"force": [MARGIN], "log": ["clin.afp_ng_ml"]},
        "selection": [{"method": "near_zero_variance"}],
        "models": models,
        "validation": {
            "folds": 2,
            "repeats": 1,
            "inner_folds": 2,
            "bootstrap": 100,
            "permutations": 0,
        },
        **extra,
    }


def train(frame: pd.DataFrame, settings: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The study's result (every model refitted on all rows) and its summary."""
    config = StudyConfig.model_validate(settings)
    result = run_study(study_data(frame, config), config)
    return result, summarise(result)


def rehash(bundle: Path) -> None:
    """What someone who changed a file does next: recompute the manifest's hashes and its
    digest, so that every hash matches again (the signature then does not)."""
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    digest = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    (bundle / "manifest.sha256").write_text(digest, encoding="utf-8")
