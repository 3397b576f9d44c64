"""The study report: real (tiny) runs of the study pipeline, rendered to HTML, PDF and in Chromium.

A synthetic FeatureTable (clinical, geometric and radiomics columns; some patients with two
tumours; missing values) goes through ``study_data``, ``run_study`` and ``write_outputs`` as
``hepablate train`` does; then ``write_cohort_tables`` and ``write_report``. The tests check the
report against the run's own files.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import os
import re
import shutil
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hepablate.report.study import (
    BAR,
    COLOURS,
    format_estimate,
    render_report,
    write_cohort_tables,
    write_report,
)
from hepablate.report.tripod import ITEMS
from hepablate.schemas.metrics import Estimate, FoldMean
from hepablate.study import StudyConfig, run_study, study_data
from hepablate.study.data import StudyData
from hepablate.study.results import write_outputs

# Its fixtures take tens of seconds: the whole module is left out of make test-fast.
pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SELECTION = [{"method": "near_zero_variance"}, {"method": "univariate", "params": {"fdr": 0.2}}]
BINARY: dict[str, Any] = {
    "name": "Synthetic study: local progression at 2 years",
    "endpoint": "ltp_24m",
    "selection": SELECTION,
    "models": [
        {"name": "logistic", "kind": "logistic", "grid": {"C": [0.1, 1.0]}},
        {
            "name": "forest",
            "kind": "random_forest",
            "grid": {"n_estimators": [60], "min_samples_leaf": [5]},
        },
        {
            "name": "clinical_logistic",
            "kind": "logistic",
            "clinical_only": True,
            "grid": {"C": [0.1, 1.0]},
        },
    ],
    "validation": {
        "folds": 3,
        "repeats": 2,
        "inner_folds": 2,
        "bootstrap": 100,
        "permutations": 1,
    },
}
SURVIVAL: dict[str, Any] = {
    "name": "Synthetic study: time to local progression",
    "endpoint": "ltp",
    "selection": SELECTION,
    "models": [
        {"name": "cox", "kind": "cox"},
        {"name": "clinical_cox", "kind": "cox", "clinical_only": True},
    ],
    "validation": {"scheme": "by_centre", "inner_folds": 2, "bootstrap": 100, "permutations": 1},
}


def feature_table(n_patients: int = 100, seed: int = 0) -> pd.DataFrame:
    """A FeatureTable: one row per tumour, a quarter of the patients with two tumours; the
    outcomes depend on the ablative margin, AFP, the tumour volume and three radiomics."""
    rng = np.random.default_rng(seed)
    tumours = rng.choice([1, 1, 1, 2], size=n_patients)

    def per_patient(values: np.ndarray) -> np.ndarray:
        return np.repeat(values, tumours)

    group = per_patient(np.array([f"P{i:03d}" for i in range(n_patients)]))
    n = len(group)
    margin = rng.normal(4, 2.5, n)
    afp = np.exp(rng.normal(2.5, 1.2, n))
    volume = np.exp(rng.normal(1, 0.7, n))
    risk = -0.6 * margin + 0.5 * np.log(afp) + 0.3 * volume
    risk -= risk.mean()
    label = (rng.random(n) < 1 / (1 + np.exp(-risk))).astype(int)
    event_time = rng.exponential(30 / np.exp(0.8 * risk))
    censoring = rng.uniform(6, 60, n)
    frame = pd.DataFrame(
        {
            "group": group,
            "centre": per_patient(rng.choice(["A", "B", "C"], size=n_patients)),
            "clin.age": per_patient(rng.normal(65, 9, n_patients)),
            "clin.sex": per_patient(rng.choice(["F", "M"], size=n_patients, p=[0.3, 0.7])),
            "clin.aetiology": per_patient(
                rng.choice(["HBV", "HCV", "alcohol", "NASH"], size=n_patients)
            ),
            "clin.diabetes": pd.array(per_patient(rng.random(n_patients) < 0.3), dtype="boolean"),
            "clin.ecog": pd.array(
                per_patient(rng.choice([0, 1, 2], size=n_patients)), dtype="Int64"
            ),
            "clin.afp_ng_ml": afp,
            "geom.minimal_ablative_margin_mm": margin,
            "geom.tumour_volume_ml": volume,
            "outcome.ltp_24m": pd.array(label, dtype="Int64"),
            "outcome.ltp.time_months": np.minimum(event_time, censoring),
            "outcome.ltp.event": pd.array(event_time <= censoring, dtype="boolean"),
        },
        index=[f"T{i:03d}" for i in range(n)],
    )
    for k in range(40):
        frame[f"rad.tumour.stat.f{k:02d}"] = rng.normal(size=n) + (0.5 * margin if k < 3 else 0)
    frame.loc[rng.random(n) < 0.1, "clin.afp_ng_ml"] = np.nan
    frame.loc[rng.random(n) < 0.05, "rad.tumour.stat.f05"] = np.nan
    frame.loc[frame.index[:6], "outcome.ltp_24m"] = pd.NA  # outcome unknown: left out
    return frame


def _run(settings: dict[str, Any], run_dir: Path) -> tuple[StudyData, dict[str, Path]]:
    from threadpoolctl import threadpool_limits

    config = StudyConfig.model_validate(settings)
    data = study_data(feature_table(), config)
    with threadpool_limits(1):  # tiny matrices: BLAS threads only cost time
        result = run_study(data, config, refit=not data.survival)  # the nomogram needs a refit
        write_outputs(result, run_dir)
    write_cohort_tables(data, run_dir)
    return data, write_report(run_dir)


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StudyData, dict[str, Path]]:
    run_dir = tmp_path_factory.mktemp("binary")
    data, paths = _run(BINARY, run_dir)
    return run_dir, data, paths


@pytest.fixture(scope="module")
def survival_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, StudyData, dict[str, Path]]:
    run_dir = tmp_path_factory.mktemp("survival")
    data, paths = _run(SURVIVAL, run_dir)
    return run_dir, data, paths


def _estimate(written: dict[str, Any]) -> str:
    """How the report shows an estimate of metrics.json (as written: a JSON object)."""
    return format_estimate(Estimate.model_validate(written))


def _metrics(run_dir: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    return result


def _figures(page: str) -> dict[str, str]:
    """data-figure name -> the whole <img> tag."""
    tags = re.findall(r"<img\b[^>]*>", page)
    return {re.search(r'data-figure="([^"]+)"', t).group(1): t for t in tags}  # type: ignore[union-attr]


def _png(tag: str) -> bytes:
    src = re.search(r'src="data:image/png;base64,([^"]+)"', tag)
    assert src, tag[:200]
    return base64.b64decode(src.group(1))


def _text(page: str) -> str:
    """The page as text (tags removed, entities decoded, white space collapsed)."""
    without_tags = re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", " ", page, flags=re.S))
    return " ".join(html_lib.unescape(without_tags).split())


def _rows(page: str, table_class: str) -> list[list[str]]:
    table = re.search(rf'<table class="{table_class}">(.*?)</table>', page, flags=re.S)
    assert table, table_class
    body = table.group(1).split("<tbody>", 1)[1]
    return [
        [_text(cell) for cell in re.findall(r"<td\b[^>]*>(.*?)</td>", row, flags=re.S)]
        for row in re.findall(r"<tr\b[^>]*>(.*?)</tr>", body, flags=re.S)
    ]


def _no_external_resources(page: str) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, flags=re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", page, flags=re.I)
    assert "@import" not in page and "<script" not in page.lower()
    assert "<link" not in page.lower()
    assert "http://" not in page and "https://" not in page


# --- cohort tables ---------------------------------------------------------------------------


def test_table_one_and_missingness_describe_the_analysed_rows(
    binary_run: tuple[Path, StudyData, dict[str, Path]],
) -> None:
    run_dir, data, _ = binary_run
    table1 = pd.read_csv(run_dir / "table1.csv", encoding="utf-8", keep_default_na=False)
    assert list(table1.columns) == ["variable", "level", "overall", "event", "no_event", "missing"]
    variables = [v for v in table1["variable"] if v]
    assert variables == [c for c in data.X.columns if not c.startswith("rad.")]

    age = table1.set_index("variable").loc["clin.age"]
    q1, q2, q3 = np.percentile(data.X["clin.age"], [25, 50, 75])
    assert age["level"] == "median (IQR)"
    assert age["overall"] == f"{q2:.1f} ({q1:.1f} to {q3:.1f})"
    with_event = data.X["clin.age"][data.events]
    assert age["event"].startswith(f"{np.median(with_event):.1f} (")

    afp = table1.set_index("variable").loc["clin.afp_ng_ml"]
    assert int(str(afp["missing"])) == int(data.X["clin.afp_ng_ml"].isna().sum()) > 0

    diabetes = table1.set_index("variable").loc["clin.diabetes"]  # a boolean: one row, n (%)
    count = int((data.X["clin.diabetes"] == 1).sum())
    assert diabetes["level"] == "yes, n (%)"
    assert diabetes["overall"] == f"{count} ({count / len(data.X) * 100:.0f}%)"

    start = table1.index[table1["variable"] == "clin.aetiology"][0]
    levels = table1.iloc[start : start + 4]
    assert [lv.split(",")[0] for lv in levels["level"]] == ["HBV", "HCV", "NASH", "alcohol"]
    counts = [int(v.split(" ")[0]) for v in levels["overall"]]
    assert sum(counts) == len(data.X)
    events = [int(v.split(" ")[0]) for v in levels["event"]]
    assert sum(events) == int(data.events.sum())

    start = table1.index[table1["variable"] == "clin.ecog"][0]  # a score: n (%) per value
    ecog = table1.iloc[start : start + 3]
    assert list(ecog["level"]) == ["0, n (%)", "1, n (%)", "2, n (%)"]
    for value, cell in zip((0, 1, 2), ecog["overall"], strict=True):
        assert int(cell.split(" ")[0]) == int((data.X["clin.ecog"] == value).sum())

    missing = pd.read_csv(run_dir / "missingness.csv", encoding="utf-8")
    expected = data.X.isna().sum()
    expected = expected[expected > 0]
    assert (
        set(missing["column"])
        == set(expected.index)
        == {
            "clin.afp_ng_ml",
            "rad.tumour.stat.f05",
        }
    )
    assert list(missing["missing"]) == sorted(expected.to_numpy(), reverse=True)
    per_column = {str(k): int(v) for k, v in expected.items()}
    for column, percent in zip(missing["column"], missing["percent"], strict=True):
        assert percent == pytest.approx(per_column[column] / len(data.X) * 100, abs=0.05)


# --- the HTML report -------------------------------------------------------------------------


def test_binary_report_holds_every_figure_table_and_number(
    binary_run: tuple[Path, StudyData, dict[str, Path]],
) -> None:
    run_dir, _, paths = binary_run
    assert paths == {"report_html": run_dir / "report.html", "report_pdf": run_dir / "report.pdf"}
    page = paths["report_html"].read_text(encoding="utf-8")
    summary = _metrics(run_dir)
    text = _text(page)

    figures = _figures(page)
    assert set(figures) == {
        "roc",
        "calibration",
        "decision_curve",
        "selection_frequency",
        "nomogram",
    }
    for tag in figures.values():
        assert re.search(r'alt="[^"]{20,}"', tag)
        assert _png(tag).startswith(b"\x89PNG\r\n\x1a\n")
    _no_external_resources(page)

    assert f"<title>{summary['study']['name']}</title>" in page
    assert f"hepablate {summary['hepablate']}" in text
    cohort = summary["cohort"]
    assert f"{cohort['rows']} rows from {cohort['patients']} patients" in text
    assert f"{summary['endpoint']['excluded_rows']} rows were left out" in text
    assert "2 × repeated 3-fold cross-validation" in text

    best = summary["comparison"]["best"]
    ranking = summary["comparison"]["ranking"]
    comparison = _rows(page, "comparison")
    by_label = {row[0]: row[1:] for row in comparison}
    assert by_label["AUC"] == [_estimate(summary["models"][n]["metrics"]["auc"]) for n in ranking]
    auc = summary["models"][best]["metrics"]["auc"]
    assert f"{auc['value']:.3f} ({auc['ci'][0]:.3f} to {auc['ci'][1]:.3f})" in by_label["AUC"][0]
    slope = summary["models"][ranking[-1]]["metrics"]["calibration_slope"]
    assert by_label["Calibration slope"][-1] == _estimate(slope)
    delong = {d["against"]: d["p_value"] for d in summary["comparison"]["delong"]}
    row = by_label[f"DeLong p vs {best}"]
    assert row[0] == "best"
    for name, cell in zip(ranking[1:], row[1:], strict=True):
        assert cell == ("<0.001" if delong[name] < 0.001 else f"{delong[name]:.3f}")
    header = re.search(r'<table class="comparison">.*?</thead>', page, flags=re.S).group(0)  # type: ignore[union-attr]
    assert header.count("badge best") == 1 and re.search(
        rf">{best}<span class=\"badge best\"", header
    )
    assert re.search(
        # A model name may break after an underscore in the PDF (<wbr>).
        r">clinical_<wbr>logistic(<span[^>]*>best</span>)?<span class=\"badge clinical\"",
        header,
    )

    repeats = {r[0]: r for r in _rows(page, "per-repeat")}
    values = summary["models"]["logistic"]["per_repeat"]
    assert repeats["logistic"][1] == "2"
    assert repeats["logistic"][5] == ", ".join(f"{v:.3f}" for v in values)
    assert repeats["logistic"][3] == f"{np.std(values, ddof=1):.3f}"

    permutation = summary["permutation"]["runs"][0]
    perm_row = _rows(page, "permutation")[0]
    assert perm_row[2] == format_estimate(FoldMean.model_validate(permutation))
    contains = permutation["ci"][0] <= 0.5 <= permutation["ci"][1]
    assert perm_row[3] == ("yes" if contains else "no")
    assert ("compatible with chance" in text) is contains

    nomogram = summary["nomogram"]
    rows = _rows(page, "nomogram")
    assert [r[0] for r in rows] == [f["feature"] for f in nomogram["features"]]
    first = nomogram["features"][0]
    assert rows[0][1:4] == [
        f"{first['coefficient']:.3f}",
        f"{first['odds_ratio']:.3f}",
        f"0 to {first['points_range'][1]:.0f}",
    ]

    table1 = _rows(page, "table-one")
    csv = pd.read_csv(run_dir / "table1.csv", encoding="utf-8", keep_default_na=False)
    assert len(table1) == len(csv)
    assert table1[0][:3] == [str(csv["variable"][0]), str(csv["level"][0]), str(csv["overall"][0])]
    assert f"All (n = {cohort['rows']})" in text
    missing = _rows(page, "missing")
    assert [r[0] for r in missing] == ["clin.afp_ng_ml", "rad.tumour.stat.f05"]

    tripod = _rows(page, "tripod")
    assert [r[0] for r in tripod] == [item for item, _, _ in ITEMS]
    todo = re.findall(r'<tr class="todo" data-item="([^"]+)">', page)
    assert todo and all(r[3] == "to complete" for r in tripod if r[0] in todo)
    assert {r[0] for r in tripod if r[3] == "filled by the run"} >= {"20a", "23a", "22"}
    filled = {r[0]: r[4] for r in tripod}
    assert f"{cohort['rows']} rows from {cohort['patients']} patients" in filled["20a"]
    assert "to complete" in text and f'{len(todo)} rows marked "to complete"' in text

    config_block = re.search(r"<pre>(.*?)</pre>", page, flags=re.S).group(1)  # type: ignore[union-attr]
    assert "endpoint: ltp_24m" in html_lib.unescape(config_block)
    assert "method: univariate" in config_block


def test_the_model_table_shows_each_models_fit_time(
    binary_run: tuple[Path, StudyData, dict[str, Path]],
) -> None:
    run_dir, _, paths = binary_run
    summary = _metrics(run_dir)
    by_label = {
        row[0]: row[1:] for row in _rows(paths["report_html"].read_text("utf-8"), "comparison")
    }
    splits = len(summary["validation"]["splits"])
    cells = by_label[f"Fit time, s: all {splits} splits (per split)"]
    ranking = summary["comparison"]["ranking"]
    assert len(cells) == len(ranking)
    for cell, name in zip(cells, ranking, strict=True):
        time = summary["models"][name]["time"]
        assert time["fit_seconds"] > 0
        assert cell == f"{time['fit_seconds']:.1f} ({time['mean_split_seconds']:.2f})"


def test_survival_report_has_kaplan_meier_td_auc_and_centres(
    survival_run: tuple[Path, StudyData, dict[str, Path]],
) -> None:
    run_dir, _, paths = survival_run
    page = paths["report_html"].read_text(encoding="utf-8")
    summary = _metrics(run_dir)
    assert set(_figures(page)) == {"kaplan_meier", "td_auc", "selection_frequency"}
    _no_external_resources(page)

    best = summary["comparison"]["best"]
    ranking = summary["comparison"]["ranking"]
    by_label = {r[0]: r[1:] for r in _rows(page, "comparison")}
    assert by_label["Harrell's C-index"] == [
        _estimate(summary["models"][n]["metrics"]["harrell_c"]) for n in ranking
    ]
    assert by_label["Mean time-dependent AUC"][0] == _estimate(
        summary["models"][best]["metrics"]["td_auc"]["mean_auc"]
    )
    logrank = summary["models"][best]["risk_groups"]["logrank"]
    p = "p < 0.001" if logrank["p_value"] < 0.001 else f"p = {logrank['p_value']:.3f}"
    assert f"on {logrank['df']} df, {p}." in _text(page)
    assert f"log-rank {p}" in html_lib.unescape(_figures(page)["kaplan_meier"])

    centres = _rows(page, "by-centre")
    assert [r[0] for r in centres] == list(summary["by_centre"])
    for row, models in zip(centres, summary["by_centre"].values(), strict=True):
        assert row[1] == str(models[ranking[0]]["n"])
        assert row[3:] == [_estimate(models[n]["harrell_c"]) for n in ranking]
    assert "Validation by centre" in _text(page) or "validation by centre" in _text(page)


def test_survival_report_states_no_probability_threshold(
    survival_run: tuple[Path, StudyData, dict[str, Path]],
    binary_run: tuple[Path, StudyData, dict[str, Path]],
) -> None:
    """A risk score has no probability threshold: none is computed, stated or checked off as
    the event share ("prevalence"); a binary study keeps its prevalence threshold."""
    run_dir, data, paths = survival_run
    validation = _metrics(run_dir)["validation"]
    assert validation["threshold"] is None
    assert validation["threshold_source"].startswith("none: a time-to-event model")
    text = _text(paths["report_html"].read_text(encoding="utf-8"))
    assert "prevalence" not in text and "probability threshold of" not in text
    answers = {
        row[0]: row[4] for row in _rows(paths["report_html"].read_text(encoding="utf-8"), "tripod")
    }
    assert "no probability threshold" in answers["13"]
    assert answers["15"].startswith("A risk score and a survival curve per row; no probability")

    run_dir, data, paths = binary_run
    validation = _metrics(run_dir)["validation"]
    assert validation["threshold"] == pytest.approx(float(np.mean(data.events)))
    answers = {
        row[0]: row[4] for row in _rows(paths["report_html"].read_text(encoding="utf-8"), "tripod")
    }
    assert f"threshold {validation['threshold']:.3f} (prevalence of the outcome" in answers["15"]


def test_undefined_values_render_as_a_dash(
    binary_run: tuple[Path, StudyData, dict[str, Path]], tmp_path: Path
) -> None:
    run_dir, _, _ = binary_run
    for name in ("metrics.json", "selected_features.csv", "predictions.csv"):
        shutil.copy(run_dir / name, tmp_path / name)  # no table1.csv, no missingness.csv
    summary = _metrics(run_dir)
    worst = summary["comparison"]["ranking"][-1]
    summary["models"][worst]["metrics"]["calibration_slope"] = {"value": None, "ci": None}
    summary["models"][worst]["metrics"]["ppv"] = {"value": 0.5, "ci": None}
    summary["permutation"] = None
    (tmp_path / "metrics.json").write_text(json.dumps(summary), encoding="utf-8")
    page = render_report(tmp_path)
    by_label = {r[0]: r[1:] for r in _rows(page, "comparison")}
    assert by_label["Calibration slope"][-1] == "-"
    assert by_label["Positive predictive value"][-1] == "0.500"
    text = _text(page)
    assert "no table1.csv" in text and "no missingness.csv" in text
    assert "Not run (validation.permutations is 0)" in text


def test_permutation_runs_are_read_in_plain_words(
    binary_run: tuple[Path, StudyData, dict[str, Path]], tmp_path: Path
) -> None:
    run_dir, _, _ = binary_run
    for name in ("metrics.json", "selected_features.csv", "predictions.csv"):
        shutil.copy(run_dir / name, tmp_path / name)
    summary = _metrics(run_dir)
    summary["permutation"]["runs"] = [
        {"value": 0.49, "ci": [0.41, 0.58], "splits": 3},
        {"value": 0.71, "ci": [0.62, 0.80], "splits": 3},  # above chance: a leak
        {
            "value": 0.38,
            "ci": [0.27, 0.49],
            "splits": 3,
        },  # below chance: not a leak, but unexpected
    ]
    (tmp_path / "metrics.json").write_text(json.dumps(summary), encoding="utf-8")
    page = render_report(tmp_path)
    rows = _rows(page, "permutation")
    assert [r[2:] for r in rows] == [
        ["0.490 (0.410 to 0.580)", "yes"],
        ["0.710 (0.620 to 0.800)", "no"],
        ["0.380 (0.270 to 0.490)", "no"],
    ]
    verdicts = re.findall(r'<p class="(ok|alert)">(.*?)</p>', page, flags=re.S)
    assert [v[0] for v in verdicts] == ["ok", "alert", "alert"]
    assert "compatible with chance" in verdicts[0][1]
    assert "probably leaks" in verdicts[1][1]
    assert "below chance" in verdicts[2][1] and "A leak would raise it" in verdicts[2][1]


def test_a_category_a_training_set_lacks_is_recorded_and_reported(tmp_path: Path) -> None:
    """One patient with an aetiology no other patient has: in each repeat, the split that tests
    that patient records it (with the column's name), scikit-learn's nameless warning does not
    show, and the report says it."""
    import warnings

    table = feature_table()
    lone = table["group"] == "P007"
    table.loc[lone, "clin.aetiology"] = "HDV"
    settings = {**BINARY, "models": BINARY["models"][:1]}
    settings["validation"] = {**BINARY["validation"], "permutations": 0}
    config = StudyConfig.model_validate(settings)
    data = study_data(table, config)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_study(data, config, refit=False)
    assert not [w for w in caught if "unknown categories" in str(w.message)]
    rows = int((data.groups == "P007").sum())
    testing = [s.label for s in result.splits if "P007" in set(data.groups[s.test])]
    assert [u["split"] for u in result.unseen] == testing and len(testing) == 2
    for entry in result.unseen:
        assert entry["columns"] == {"clin.aetiology": {"values": ["HDV"], "rows": rows}}
    write_outputs(result, tmp_path)
    recorded = _metrics(tmp_path)["validation"]["unseen_categories"]
    assert recorded == result.unseen
    text = _text(render_report(tmp_path))
    assert "test rows had a category their training set lacked" in text
    assert f"clin.aetiology: HDV ({rows} rows)" in text


def test_no_unseen_category_no_sentence(
    binary_run: tuple[Path, StudyData, dict[str, Path]],
) -> None:
    run_dir, _, paths = binary_run
    assert _metrics(run_dir)["validation"]["unseen_categories"] == []
    assert "training set lacked" not in _text(paths["report_html"].read_text(encoding="utf-8"))


# --- the PDF ---------------------------------------------------------------------------------


def _pdf_pages(pdf: bytes) -> int:
    try:
        from pypdf import PdfReader  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        pass
    else:
        import io

        return len(PdfReader(io.BytesIO(pdf)).pages)
    # Page objects may sit in compressed object streams: inflate every stream and count there.
    chunks = [pdf]
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, flags=re.S):
        try:
            chunks.append(zlib.decompress(match.group(1)))
        except zlib.error:
            continue
    return sum(len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", c)) for c in chunks)


def test_pdf_is_a4_with_several_pages(
    binary_run: tuple[Path, StudyData, dict[str, Path]],
) -> None:
    pdf = binary_run[2]["report_pdf"].read_bytes()
    assert pdf.startswith(b"%PDF")
    assert _pdf_pages(pdf) >= 2
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    inflated = b"".join(
        zlib.decompress(m.group(1))
        for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", pdf, flags=re.S)
        if m.group(1)[:1] == b"x"
    )
    boxes += re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", inflated)
    assert boxes
    width, height = (float(v) for v in boxes[0])
    assert (round(width), round(height)) == (595, 842)  # A4 in points


# --- Chromium --------------------------------------------------------------------------------


def _chromium() -> Path:
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} not found (Debian package chromium)"
        if os.environ.get("HEPABLATE_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason + "; HEPABLATE_REQUIRE_SHARED_DATA=1 makes this a failure")
        pytest.skip(reason)
    return CHROMIUM


def _run_chromium(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[bytes]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    command = [
        str(_chromium()),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *arguments,
    ]
    env = {**os.environ, "HOME": str(tmp_path)}
    return subprocess.run(command, capture_output=True, timeout=90, env=env, check=False)


PROBE = """<script>
window.addEventListener("load", () => {
  for (const img of document.querySelectorAll("img[data-figure]")) {
    img.setAttribute("data-natural-width", String(img.naturalWidth));
    img.setAttribute("data-natural-height", String(img.naturalHeight));
  }
  document.body.setAttribute("data-probed", "yes");
});
</script>"""


def test_chromium_decodes_every_figure(
    binary_run: tuple[Path, StudyData, dict[str, Path]], tmp_path: Path
) -> None:
    """In a copy of the page, a probe script records each figure's decoded size in the DOM."""
    page = binary_run[2]["report_html"].read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = _run_chromium(
        tmp_path,
        "--virtual-time-budget=5000",
        "--run-all-compositor-stages-before-draw",
        "--dump-dom",
        probed.as_uri(),
    )
    dom = done.stdout.decode("utf-8", errors="replace")
    assert 'data-probed="yes"' in dom, done.stderr.decode(errors="replace")[-2000:]
    images = re.findall(r"<img\b[^>]*>", dom)
    names = [re.search(r'data-figure="([^"]+)"', i).group(1) for i in images]  # type: ignore[union-attr]
    assert sorted(names) == sorted(_figures(page))
    for image in images:
        width = int(re.search(r'data-natural-width="(\d+)"', image).group(1))  # type: ignore[union-attr]
        height = int(re.search(r'data-natural-height="(\d+)"', image).group(1))  # type: ignore[union-attr]
        assert width > 300 and height > 150, image[:120]


def _hex(colour: str) -> np.ndarray:
    return np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)], dtype=float)


def test_chromium_screenshot_shows_the_plots(
    binary_run: tuple[Path, StudyData, dict[str, Path]], tmp_path: Path
) -> None:
    from matplotlib.image import imread

    report = binary_run[2]["report_html"]
    screenshot = tmp_path / "report.png"
    done = _run_chromium(
        tmp_path,
        f"--screenshot={screenshot}",
        "--window-size=1280,9000",
        "--virtual-time-budget=5000",
        report.as_uri(),
    )
    assert screenshot.is_file(), done.stderr.decode(errors="replace")[-2000:]
    pixels = imread(screenshot)[..., :3].astype(float) * 255  # PNG: floats in [0, 1]
    assert pixels.shape[:2] == (9000, 1280)
    assert pixels.std() > 20  # not a blank page

    def pixels_of(colour: str, tolerance: float = 8) -> int:
        distance = np.abs(pixels - _hex(colour)).max(axis=2)
        return int((distance <= tolerance).sum())

    # The curves of the best and the second model (ROC, calibration, decision curve) and the
    # bars of the selection frequency; none of these colours is used by the page itself (a
    # screenshot with broken images has 0 pixels of each).
    assert pixels_of(COLOURS[0]) > 1000
    assert pixels_of(COLOURS[1]) > 1000
    assert pixels_of(BAR) > 10000
    # The page is mostly white paper.
    assert pixels_of("#ffffff", 3) > 0.5 * pixels.shape[0] * pixels.shape[1]


def test_pdf_figures_fit_the_page_width(
    binary_run: tuple[Path, StudyData, dict[str, Path]],
) -> None:
    """WeasyPrint's layout of the report: every figure inside the A4 page's content box."""
    from weasyprint import HTML  # type: ignore[import-untyped]
    from weasyprint.formatting_structure.boxes import ReplacedBox  # type: ignore[import-untyped]

    page = binary_run[2]["report_html"].read_text(encoding="utf-8")
    document = HTML(string=page).render()
    placed: dict[str, tuple[float, float]] = {}
    for laid_out in document.pages:
        box = laid_out._page_box
        right = laid_out.width - box.margin_right
        for child in box.descendants():
            if isinstance(child, ReplacedBox) and child.element.get("data-figure"):
                left = child.position_x
                placed[child.element.get("data-figure")] = (left, left + child.margin_width())
                assert box.margin_left - 0.5 <= left and left + child.margin_width() <= right + 0.5
    assert set(placed) == set(_figures(page))
    assert len(document.pages) >= 2


def _cell_lines(html: str, table_class: str) -> list[list[list[str]]]:
    """The PDF layout (WeasyPrint) of a table's body: rows of cells, each its lines of text."""
    from weasyprint import HTML
    from weasyprint.formatting_structure.boxes import LineBox, TableBox, TableRowBox, TextBox

    def lines(cell: Any) -> list[str]:
        texts = (
            "".join(t.text for t in line.descendants() if isinstance(t, TextBox)).strip()
            for line in cell.descendants()
            if isinstance(line, LineBox)
        )
        return [text for text in texts if text]

    rows = []
    for page in HTML(string=html).render().pages:
        for table in page._page_box.descendants():
            if isinstance(table, TableBox) and table.element.get("class", "").split()[0] == (
                table_class
            ):
                rows += [
                    [lines(cell) for cell in row.children]
                    for row in table.descendants()
                    if isinstance(row, TableRowBox) and row.children[0].element.tag == "td"
                ]
    return rows


def _five_models(binary_run: tuple[Path, StudyData, dict[str, Path]], folder: Path) -> str:
    """The binary run's report as if it had compared five models with long names (the default
    baselines' names and two clinical-only ones): the models renamed and copied in the files."""
    run_dir = binary_run[0]
    shutil.copytree(run_dir, folder, dirs_exist_ok=True)
    names = {
        "forest": "gradient_boosting",
        "logistic": "random_forest",
        "clinical_logistic": "clinical_logistic",
    }
    summary = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    models = {names[n]: m for n, m in summary["models"].items()}
    models["clinical_random_forest"] = models["clinical_logistic"]
    models["clinical_gradient_boosting"] = models["clinical_logistic"]
    comparison = summary["comparison"]
    comparison["ranking"] = [names[n] for n in comparison["ranking"]] + [
        "clinical_random_forest",
        "clinical_gradient_boosting",
    ]
    comparison["best"] = names[comparison["best"]]
    comparison["delong"] = [
        {**d, "model": names[d["model"]], "against": names[d["against"]]}
        for d in comparison["delong"]
    ]
    summary["models"] = models
    (folder / "metrics.json").write_text(json.dumps(summary), encoding="utf-8")
    predictions = pd.read_csv(run_dir / "predictions.csv", index_col=0).rename(columns=names)
    predictions.to_csv(folder / "predictions.csv")
    return render_report(folder)


def test_pdf_tables_break_lines_between_words_not_inside_them(
    binary_run: tuple[Path, StudyData, dict[str, Path]], tmp_path: Path
) -> None:
    """In the PDF layout, the checklist's item, section and topic and the comparison's metric
    names keep whole words (they were crushed to a letter per line by the long answers), each
    metric name on one line and each interval on the line below its estimate, with five models
    of long names."""
    page = _five_models(binary_run, tmp_path / "five")
    tripod = _cell_lines(page, "tripod")
    assert len(tripod) == len(ITEMS)
    for row, (item, section, topic) in zip(tripod, ITEMS, strict=True):
        assert row[0] == [item]
        for lines, text in ((row[1], section), (row[2], topic)):
            assert " ".join(lines).split() == text.split(), (lines, text)

    comparison = _cell_lines(page, "comparison")
    assert len(comparison[0]) == 6  # the metric and five models
    for row in comparison[:-1]:  # the last: "DeLong p vs NAME" may wrap
        assert len(row[0]) == 1, row[0]
        for lines in row[1:]:
            if len(lines) > 1 or "(" in " ".join(lines):
                assert len(lines) == 2 and re.fullmatch(r"\(\S+ to \S+\)", lines[1]), lines
