"""The tabular networks on synthetic data whose truth is known (logistic and Cox)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.util import Surv

from hepablate.models import make_model
from hepablate.models.tabular import DeepDiscreteTime, DeepSurv, MLPClassifier

FAST: dict[str, Any] = {"n_members": 2, "epochs": 200, "patience": 15}


def _data(n: int = 500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=["driver", "second", "noise1", "noise2"])
    X["kind"] = rng.choice(["A", "B"], n)
    lp = 1.5 * X["driver"] + 0.7 * X["second"] + 0.6 * (X["kind"] == "B")
    X.loc[rng.random(n) < 0.1, "second"] = np.nan  # missing at random
    return X, lp.to_numpy(), rng.random(n)


def _binary(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    X, lp, u = _data(seed=seed)
    return X, (u < 1 / (1 + np.exp(-(lp - 1.0)))).astype(int)


def _survival(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    X, lp, u = _data(seed=seed)
    rng = np.random.default_rng(seed + 1)
    event_time = -np.log(u) / (0.1 * np.exp(lp))
    censor = rng.exponential(15.0, len(lp))
    return X, Surv.from_arrays(event_time <= censor, np.minimum(event_time, censor))


def _encoded(X: pd.DataFrame) -> pd.DataFrame:
    return pd.get_dummies(X.fillna(X.median(numeric_only=True)), drop_first=True).astype(float)


@pytest.mark.slow
def test_numeric_embeddings_learn_a_periodic_effect_the_plain_mlp_misses() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(600, 3)), columns=["a", "b", "c"])
    lp = 2.5 * np.sin(2 * X["a"]) + 1.0 * X["b"]
    y = (rng.random(600) < 1 / (1 + np.exp(-lp))).astype(int)
    auc = {}
    for embedding in (0, 8):
        model = MLPClassifier(**FAST, embedding=embedding).fit(X[:400], y[:400])
        auc[embedding] = roc_auc_score(y[400:], model.predict_proba(X[400:])[:, 1])
    logistic = LogisticRegression().fit(X[:400], y[:400])
    linear = roc_auc_score(y[400:], logistic.predict_proba(X[400:])[:, 1])
    # Measured: logistic 0.650, plain MLP 0.822, with periodic embeddings 0.856.
    assert auc[8] > auc[0] + 0.02 and auc[0] > linear + 0.1, (auc, linear)
    assert MLPClassifier().embedding == 8  # embeddings are the default


@pytest.mark.slow
def test_the_classifier_learns_like_a_logistic_model_and_handles_gaps() -> None:
    X, y = _binary()
    # Without numeric embeddings: on a truly linear effect the wide term is all it needs.
    model = MLPClassifier(**FAST, embedding=0).fit(X[:350], y[:350])
    probability = model.predict_proba(X[350:])[:, 1]
    assert np.isfinite(probability).all() and ((probability > 0) & (probability < 1)).all()
    auc = roc_auc_score(y[350:], probability)
    logistic = LogisticRegression().fit(_encoded(X)[:350], y[:350])
    reference = roc_auc_score(y[350:], logistic.predict_proba(_encoded(X)[350:])[:, 1])
    assert auc >= reference - 0.03 and auc > 0.75, (auc, reference)
    assert abs(probability.mean() - y[350:].mean()) < 0.1  # prior correction keeps calibration
    spread = model.predict_uncertainty(X[350:])
    assert spread.shape == (150,) and (spread >= 0).all() and spread.max() > 0
    importance = np.abs(model.explain(X[350:400])).mean(axis=0)
    assert importance.shape == (5,) and int(np.argmax(importance)) == 0  # the driver


@pytest.mark.slow
def test_the_same_seed_gives_the_same_network_and_the_state_round_trips() -> None:
    X, y = _binary(seed=1)
    first = MLPClassifier(**FAST).fit(X, y)
    second = MLPClassifier(**FAST).fit(X, y)
    np.testing.assert_array_equal(first.predict_proba(X), second.predict_proba(X))
    tensors, config = first.to_state()
    restored = MLPClassifier.from_state(tensors, config)
    np.testing.assert_array_equal(restored.predict_proba(X), first.predict_proba(X))
    name = next(k for k in tensors if k.endswith("wide.weight"))
    with pytest.raises(ValueError, match="do not fit the network"):
        MLPClassifier.from_state({**tensors, name: np.zeros((2, 2), np.float32)}, config)
    # A state saved before the embeddings existed has no `embedding` parameter: it had none.
    plain = MLPClassifier(**FAST, embedding=0).fit(X, y)
    tensors, config = plain.to_state()
    del config["params"]["embedding"]
    older = MLPClassifier.from_state(tensors, config)
    assert older.embedding == 0
    np.testing.assert_array_equal(older.predict_proba(X), plain.predict_proba(X))


@pytest.mark.slow
@pytest.mark.parametrize("network", [DeepSurv, DeepDiscreteTime])
def test_survival_networks_rank_like_cox_and_give_survival_curves(network: type) -> None:
    X, y = _survival()
    model = network(**FAST).fit(X[:350], y[:350])
    c_index = model.score(X[350:], y[350:])
    cox = CoxPHSurvivalAnalysis(alpha=0.1).fit(_encoded(X)[:350], y[:350])
    reference = cox.score(_encoded(X)[350:], y[350:])
    assert c_index >= reference - 0.03 and c_index > 0.7, (c_index, reference)
    times = np.linspace(0.5, 20.0, 30)
    for function in model.predict_survival_function(X[350:360]):
        low, high = function.domain
        values = function(np.clip(times, low, high))
        assert ((values >= 0) & (values <= 1)).all()
        assert (np.diff(values) <= 1e-12).all()  # never rises
    tensors, config = model.to_state()
    restored = network.from_state(tensors, config)
    np.testing.assert_allclose(restored.predict(X[350:]), model.predict(X[350:]), rtol=1e-6)


def test_the_study_kinds_make_the_networks_with_their_parameters() -> None:
    assert isinstance(make_model("mlp", seed=3), MLPClassifier)
    assert isinstance(make_model("deep_surv"), DeepSurv)
    discrete = clone(DeepDiscreteTime(n_intervals=7, hidden=8))
    assert isinstance(make_model("deep_discrete"), DeepDiscreteTime)
    assert (discrete.n_intervals, discrete.hidden) == (7, 8)


def test_verbose_training_drives_a_progress_bar_per_member(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.progress import Progress

    updates: list[tuple[int, int]] = []
    original = Progress.update

    def update(self: Progress, task: Any, **fields: Any) -> None:
        updates.append((int(task), int(fields["completed"])))
        original(self, task, **fields)

    monkeypatch.setattr(Progress, "update", update)
    X, y = _binary()
    model = MLPClassifier(n_members=2, epochs=30, patience=5, verbose=True).fit(X, y)
    for member in range(2):
        epochs = [done for task, done in updates if task == member]
        # One update per epoch trained, up to the early stop or the last epoch.
        assert epochs == list(range(1, len(epochs) + 1))
        assert model.epochs_[member] <= len(epochs) <= 30
    assert not [u for u in updates if u[0] > 1]
    quiet: list[tuple[int, int]] = []
    monkeypatch.setattr(Progress, "update", lambda self, task, **f: quiet.append(task))
    MLPClassifier(n_members=1, epochs=5).fit(X, y)
    assert quiet == []
