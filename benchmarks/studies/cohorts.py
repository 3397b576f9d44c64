"""Turn the real clinical tables of the shared reference data into hepablate cohort folders.

    .venv/bin/python benchmarks/studies/cohorts.py --out /tmp/hepablate-cohorts [--data DIR]

The data are read in place from ``HEPABLATE_SHARED_DATA`` (default ``<repo>/../shared/data``)
and never copied into the repository. Each builder writes ``<out>/<name>/cohort.yaml`` (every
column with its role, type, unit, range, levels and concept) and ``patients.csv`` (with a
``patient_id``); missing values are written as empty cells.

**UCI HCC Survival** (``clinical/hcc_survival_uci``; Santos et al. 2015, J Biomed Inform
58:49-59): 165 patients, 49 features, ``?`` = missing, ``Class`` 1 = alive at 1 year, 0 = died.
The endpoint ``death_1y`` is ``Class == 0`` (63 deaths). Types, ranges and units follow the UCI
description file (``original_uci_zip_contents/hcc-description.txt``). Values are kept as recorded,
except three unit fixes where the table mixes units within a column (the description's own
ranges show it: "Leukocytes (G/L) 2.2-13000", "Platelets (G/L) 1.71-459000", "Total Proteins
(g/dL) 3.9-102"):

- ``Platelets`` above 1000 are counts per µL (115 of 162 values): divided by 1000 to 10^9/L;
- ``Leucocytes`` above 1000 are counts per µL (38 of 162): divided by 1000 to 10^9/L;
- ``TP`` (total protein) above 20 cannot be g/dL and are taken as g/L (5 values): divided by 10.

``Albumin`` is declared g/dL (the description says mg/dL, but 1.9-4.9 mg/dL is impossible and
1.9-4.9 g/dL is the normal scale). Odd single values (Platelets 1.71, ALP 1.28, Iron/Sat/Ferritin
0) are kept as recorded. Encephalopathy and ascites (1/2/3) become the levels of their concepts,
so that hepablate computes Child-Pugh, ALBI and MELD from the labs.

**HCC-TACE-Seg** (``clinical/hcc_tace_seg``; Moawad et al. 2021, TCIA doi:10.7937/TCIA.5FNA-0924):
105 patients treated by TACE; time to progression (``TTP``, weeks; ``Censored_0_progressed_1``)
and overall survival (``OS``, weeks; ``Death_1_StillAliveorLostToFU_0``). Only pre-treatment
columns are predictors; see ``TACE_EXCLUDED`` for each excluded column and why. Columns are
renamed to snake_case (the description of each names the original column); ordinal stages
(BCLC, CLIP, Okuda, TNM) are recoded to integers in stage order.

**Mayo PBC** (``survival/pbc_mayo_liver/pbc.csv``; Therneau & Grambsch 2000, R package
``survival``; Dickson et al. 1989, Hepatology 10:1-7): 418 patients with primary biliary
cholangitis, 312 of the D-penicillamine trial and 106 followed only; not an ablation cohort but a
liver cohort whose predictors are the labs and signs a hepatologist records, with a well-known
linear structure (the Mayo risk score: age, log bilirubin, log albumin, log prothrombin time,
oedema). Choices:

- endpoint ``death`` (time to death, days): ``status`` 2 is death (161); a liver transplant
  (``status`` 1, 25 patients) is censored at the transplant, as in the Mayo risk score's
  derivation and Therneau & Grambsch's analyses (the transplant ends the natural history);
- ``trt`` (treatment arm) is not a predictor: the trial found no effect of D-penicillamine, and
  the arm is missing exactly for the 106 non-trial patients, so it would encode trial
  participation rather than anything about the patient;
- the 106 non-trial patients lack ascites, hepatomegaly, spiders, cholesterol, copper, ALP, AST
  and triglycerides (missing values, imputed inside the folds by the study like any other);
- ``edema`` is kept as its ordinal score 0 / 0.5 / 1, as the Mayo risk score uses it; ``stage``
  (histologic, 1-4) is a baseline biopsy finding and a predictor;
- AST is recorded in U/mL according to the R documentation, but its values (26-457, median 115)
  are the usual U/L scale, declared so; ``platelet`` is per 10^3/µL, that is 10^9/L.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

__all__ = [
    "PBC_DIR",
    "PBC_FILE",
    "TACE_DIR",
    "TACE_EXCLUDED",
    "TACE_FILE",
    "UCI_DIR",
    "UCI_FILE",
    "SharedDataMissingError",
    "build_all",
    "build_pbc_cohort",
    "build_tace_cohort",
    "build_uci_cohort",
    "shared_data_dir",
]

REPO = Path(__file__).resolve().parents[2]
UCI_DIR = "clinical/hcc_survival_uci"
UCI_FILE = "hcc_with_header_irahulkr.csv"
TACE_DIR = "clinical/hcc_tace_seg"
TACE_FILE = "clinical_data_csv_conversion_RadTACE.csv"
PBC_DIR = "survival/pbc_mayo_liver"
PBC_FILE = "pbc.csv"


class SharedDataMissingError(FileNotFoundError):
    """The shared reference data (or one of its files) is not where it was looked for."""


def shared_data_dir(path: Path | str | None = None) -> Path:
    """``path``, else ``HEPABLATE_SHARED_DATA``, else ``<repo>/../shared/data``."""
    if path is not None:
        return Path(path)
    configured = os.environ.get("HEPABLATE_SHARED_DATA")
    return Path(configured) if configured else REPO.parent / "shared" / "data"


def _source(data_dir: Path | str | None, relative: str) -> Path:
    root = shared_data_dir(data_dir)
    if not root.is_dir():
        raise SharedDataMissingError(
            f"the shared reference data folder {root} does not exist; set HEPABLATE_SHARED_DATA "
            "to the folder that holds clinical/hcc_survival_uci and clinical/hcc_tace_seg"
        )
    path = root / relative
    if not path.is_file():
        raise SharedDataMissingError(
            f"{path} is missing from the shared reference data in {root} "
            "(see its README.md and the folder's SOURCE.md)"
        )
    return path


def _column(role: str, type_: str, description: str, **keys: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"role": role, "type": type_}
    for key in ("unit", "range", "levels", "concept", "required"):
        if key in keys:
            spec[key] = keys[key]
    spec["description"] = description
    return spec


def _write(
    out: Path, schema: dict[str, Any], patients: pd.DataFrame, columns: dict[str, dict]
) -> Path:
    missing = [c for c in patients.columns if c not in columns]
    extra = [c for c in columns if c not in patients.columns]
    if missing or extra:  # a programming error of this module, not a data problem
        raise RuntimeError(f"columns undeclared: {missing}; declared but absent: {extra}")
    out.mkdir(parents=True, exist_ok=True)
    schema["tables"] = {"patients": {"file": "patients.csv", "columns": columns}}
    text = yaml.safe_dump(schema, sort_keys=False, allow_unicode=True, width=100)
    (out / "cohort.yaml").write_text(text, encoding="utf-8")
    patients.to_csv(out / "patients.csv", index=False, na_rep="", encoding="utf-8")
    return out


# --------------------------------------------------------------------------------------------
# UCI HCC Survival

# name in the CSV header: (full name in the UCI description, column spec keys)
_UCI_BOOLEAN = {
    "Symptoms": "Symptoms",
    "Alcohol": "Alcohol (habit)",
    "HBsAg": "Hepatitis B surface antigen",
    "HBeAg": "Hepatitis B e antigen",
    "HBcAg": "Hepatitis B core antibody (HBcAb in the description; the header says HBcAg)",
    "HCVAb": "Hepatitis C virus antibody",
    "Cirrhosis": "Cirrhosis",
    "Endemic": "Endemic countries",
    "Smoking": "Smoking",
    "Diabetis": "Diabetes (header spelling kept)",
    "Obesity": "Obesity",
    "Hemochro": "Hemochromatosis",
    "AHT": "Arterial hypertension",
    "CRI": "Chronic renal insufficiency",
    "HIV": "Human immunodeficiency virus",
    "NASH": "Nonalcoholic steatohepatitis",
    "Varices": "Esophageal varices",
    "Spleno": "Splenomegaly",
    "PHT": "Portal hypertension",
    "PVT": "Portal vein thrombosis",
    "Metastasis": "Liver metastasis",
    "Hallmark": "Radiological hallmark",
}

_UCI_NUMBERS: dict[str, dict[str, Any]] = {
    "Age": {
        "type": "integer",
        "unit": "years",
        "range": [18, 100],
        "concept": "age",
        "required": True,
        "description": "Age at diagnosis",
    },
    "Grams_day": {"unit": "g/day", "range": [0, 1000], "description": "Grams of alcohol per day"},
    "Packs_year": {
        "unit": "packs/year",
        "range": [0, 1000],
        "description": "Packs of cigarettes per year (description: 'Packs of cigarets per year')",
    },
    "PS": {
        "type": "integer",
        "range": [0, 5],
        "description": "Performance status (ordinal): 0 active, 1 restricted, 2 ambulatory, "
        "3 selfcare, 4 disabled, 5 dead",
    },
    "INR": {"unit": "1", "range": [0.5, 10], "concept": "inr", "description": "INR"},
    "AFP": {
        "unit": "ng/mL",
        "range": [0, 1e7],
        "concept": "afp",
        "description": "Alpha-fetoprotein",
    },
    "Hemoglobin": {"unit": "g/dL", "range": [2, 25], "description": "Haemoglobin"},
    "MCV": {"unit": "fL", "range": [50, 150], "description": "Mean corpuscular volume"},
    "Leucocytes": {
        "unit": "10^9/L",
        "range": [0.5, 200],
        "description": "Leukocytes; values above 1000 in the source (per µL) divided by 1000",
    },
    "Platelets": {
        "unit": "10^9/L",
        "range": [1, 2000],
        "concept": "platelets",
        "description": "Platelets; values above 1000 in the source (per µL) divided by 1000",
    },
    "Albumin": {
        "unit": "g/dL",
        "range": [1, 7],
        "concept": "albumin",
        "description": "Albumin (the description says mg/dL; the values are g/dL)",
    },
    "Total_Bil": {
        "unit": "mg/dL",
        "range": [0.05, 60],
        "concept": "total_bilirubin",
        "description": "Total bilirubin",
    },
    "ALT": {"unit": "U/L", "range": [0, 5000], "concept": "alt", "description": "ALT"},
    "AST": {"unit": "U/L", "range": [0, 5000], "concept": "ast", "description": "AST"},
    "GGT": {"unit": "U/L", "range": [0, 5000], "description": "Gamma-glutamyl transferase"},
    "ALP": {"unit": "U/L", "range": [0, 5000], "description": "Alkaline phosphatase"},
    "TP": {
        "unit": "g/dL",
        "range": [1, 20],
        "description": "Total proteins; values above 20 in the source (g/L) divided by 10",
    },
    "Creatinine": {
        "unit": "mg/dL",
        "range": [0.05, 20],
        "concept": "creatinine",
        "description": "Creatinine",
    },
    "Nodule": {
        "type": "integer",
        "range": [0, 5],
        "description": "Number of nodules (0-5 in the description; 5 probably means 5 or more)",
    },
    "Major_Dim": {
        "unit": "cm",
        "range": [0.1, 40],
        "concept": "tumour_diameter",
        "description": "Major dimension of the (largest) nodule",
    },
    "Dir_Bil": {"unit": "mg/dL", "range": [0, 60], "description": "Direct bilirubin"},
    "Iron": {"unit": "µg/dL", "range": [0, 1000], "description": "Iron (mcg/dL)"},
    "SAT": {
        "unit": "%",
        "range": [0, 200],
        "description": "Oxygen saturation as named in the UCI description (beside iron and "
        "ferritin it is probably transferrin saturation)",
    },
    "Ferritin": {"unit": "ng/mL", "range": [0, 20000], "description": "Ferritin"},
}

_ENCEPHALOPATHY = {1: "none", 2: "grade_1_2", 3: "grade_3_4"}
_ASCITES = {1: "none", 2: "mild", 3: "moderate_severe"}


def _read_uci(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, na_values=["?"], keep_default_na=False)
    text = [c for c in raw.columns if not pd.api.types.is_numeric_dtype(raw[c])]
    if text:
        raise ValueError(f"{path}: non-numeric values other than '?' in columns {text}")
    expected = {"Gender", "Encephalopathy", "Ascites", "Class", *_UCI_BOOLEAN, *_UCI_NUMBERS}
    if set(raw.columns) != expected or len(raw.columns) != 50 or len(raw) != 165:
        raise ValueError(f"{path}: not the UCI HCC Survival table (165 rows, 50 columns)")
    return raw


def uci_patients(path: Path) -> pd.DataFrame:
    """The UCI table as cohort columns (see the module docstring for every change)."""
    raw = _read_uci(path)
    out = pd.DataFrame({"patient_id": [f"P{i:03d}" for i in range(1, len(raw) + 1)]})
    out["Gender"] = raw["Gender"].map({1: "M", 0: "F"})
    for name in _UCI_BOOLEAN:
        out[name] = raw[name].astype("Int64")
    for name in _UCI_NUMBERS:
        values = raw[name].astype("float64")
        if name in ("Platelets", "Leucocytes"):
            values = values.where(values <= 1000, values / 1000)
        elif name == "TP":
            values = values.where(values <= 20, values / 10)
        if _UCI_NUMBERS[name].get("type") == "integer":
            out[name] = values.astype("Int64")
        else:
            out[name] = values
    out["Encephalopathy"] = raw["Encephalopathy"].map(_ENCEPHALOPATHY)
    out["Ascites"] = raw["Ascites"].map(_ASCITES)
    out["died_1y"] = (raw["Class"] == 0).astype("Int64")
    out["Class"] = raw["Class"].astype("Int64")
    return out


def build_uci_cohort(out: Path | str, data_dir: Path | str | None = None) -> Path:
    """Write the UCI HCC Survival cohort (endpoint ``death_1y``) to ``out``."""
    path = _source(data_dir, f"{UCI_DIR}/{UCI_FILE}")
    patients = uci_patients(path)
    columns: dict[str, dict[str, Any]] = {
        "patient_id": _column("id", "string", "Row number of the UCI table (P001 = first row)"),
        "Gender": _column(
            "predictor", "category", "Gender (source 1 = male, 0 = female)", levels=["M", "F"]
        ),
    }
    for name, full in _UCI_BOOLEAN.items():
        columns[name] = _column("predictor", "boolean", f"{full} (1 = yes, 0 = no)")
    for name, keys in _UCI_NUMBERS.items():
        keys = dict(keys)
        columns[name] = _column(
            "predictor", keys.pop("type", "number"), keys.pop("description"), **keys
        )
    columns["Encephalopathy"] = _column(
        "predictor",
        "category",
        "Encephalopathy degree (source 1 none, 2 grade I/II, 3 grade III/IV)",
        levels=list(_ENCEPHALOPATHY.values()),
        concept="encephalopathy",
    )
    columns["Ascites"] = _column(
        "predictor",
        "category",
        "Ascites degree (source 1 none, 2 mild, 3 moderate to severe)",
        levels=list(_ASCITES.values()),
        concept="ascites",
    )
    columns["died_1y"] = _column(
        "outcome", "boolean", "Died within 1 year (Class = 0)", required=True
    )
    columns["Class"] = _column(
        "outcome", "boolean", "UCI class attribute: 1 = alive at 1 year, 0 = died", required=True
    )
    schema: dict[str, Any] = {
        "format_version": 1,
        "name": "UCI HCC Survival (Santos et al. 2015)",
        "description": (
            f"Built by benchmarks/studies/cohorts.py from {UCI_DIR}/{UCI_FILE} of the shared "
            "reference data (UCI doi:10.24432/C5TS4S, CC BY 4.0; cite Santos et al., J Biomed "
            "Inform 58:49-59, 2015). 165 HCC patients of a Portuguese university hospital; "
            "'?' in the source is written as an empty cell. Unit fixes: Platelets and "
            "Leucocytes above 1000 (per µL) / 1000; TP above 20 (g/L) / 10."
        ),
        "missing_values": ["", "NA"],
        "endpoints": [
            {
                "name": "death_1y",
                "kind": "binary",
                "table": "patients",
                "event": "died_1y",
                "horizon_months": 12,
                "description": "Death within 1 year (UCI Class 0)",
            }
        ],
    }
    return _write(Path(out), schema, patients, columns)


# --------------------------------------------------------------------------------------------
# HCC-TACE-Seg

# Source columns that are not predictors, and why.
TACE_EXCLUDED: dict[str, str] = {
    "Interval_BL": "days from diagnosis to baseline CT: the origin of TTP and OS is not stated, "
    "so an interval already lived since diagnosis could leak survival time (immortal time)",
    "Interval_FU": "weeks from baseline to the follow-up CT after TACE: post-treatment",
    "agegp": "age group, derived from age (a predictor)",
    "AFP_group": "AFP dichotomised at 400 ng/mL, derived from AFP (a predictor)",
    "CLIP": "CLIP group, derived from CLIP_Score (a predictor)",
    "2_RECIST_BL": "reader 2's baseline RECIST; reader 1's is the predictor (one reading each)",
    "3_RECIST_BL": "reader 3's baseline RECIST; reader 1's is the predictor",
    "2_mRECIST_BL": "reader 2's baseline mRECIST; reader 1's is the predictor",
    "3_mRECIST_BL": "reader 3's baseline mRECIST; reader 1's is the predictor",
}
for _reading in (
    "1_EASL",
    "1_RECIST",
    "2_RECIST",
    "3_RECIST",
    "1_mRECIST",
    "2_mRECIST",
    "3_mRECIST",
):
    _reader, _criterion = _reading.split("_")
    TACE_EXCLUDED[f"{_reading}_FU"] = (
        f"reader {_reader}'s {_criterion} measurement on the follow-up CT after TACE: "
        "post-treatment"
    )
    TACE_EXCLUDED[_reading] = (
        f"reader {_reader}'s {_criterion} treatment response (from the follow-up CT): "
        "outcome-derived (progressive disease is progression)"
    )

_YES_NO = {"1": 1, "0": 0}
_TACE_BOOLEAN = {
    "Smoking": ("smoking", "Smoking"),
    "Alcohol": ("alcohol", "Alcohol"),
    "fhx_can": ("family_history_cancer", "Family history of cancer"),
    "fhx_livc": ("family_history_liver_cancer", "Family history of liver cancer"),
    "Diabetes": ("diabetes", "Diabetes"),
    "Personal history of cancer": ("personal_history_cancer", "Personal history of cancer"),
    "Evidence_of_cirh": ("cirrhosis", "Evidence of cirrhosis"),
    "Vascular invasion": ("vascular_invasion", "Vascular invasion"),
    "Metastasis": ("metastasis", "Metastasis"),
    "Lymphnodes": ("lymph_nodes", "Lymph nodes"),
    "Portal Vein Thrombosis": ("portal_vein_thrombosis", "Portal vein thrombosis"),
}
_HEPATITIS = {
    "No virus": "none",
    "HCV only": "HCV",
    "HBV only": "HBV",
    "HCV and HBV": "HCV_HBV",
}
_PATHOLOGY = {
    "Well differentiated": "well",
    "Well-moderately differentiated": "well_moderate",
    "Moderately differentiated": "moderate",
    "Moderately-poorly differentiated": "moderate_poor",
    "Poorly differentiated": "poor",
    "NOT STATED": "not_stated",
    "No biopsy": "no_biopsy",
}
_CHEMOTHERAPY = {
    "Cisplatin, doxorubicin, Mitomycin-C": "cisplatin_doxorubicin_mitomycin",
    "Cisplatin, Mitomycin-C": "cisplatin_mitomycin",
    "Cisplastin": "cisplatin",
    "doxorubicin LC beads": "doxorubicin_beads",
}
_OKUDA = {"Stage I": 1, "Stage II": 2, "Stage III": 3}
_TNM = {
    "Stage-I": 1,
    "Stage-II": 2,
    "Stage-IIIA": 3,
    "Stage-IIIB": 4,
    "Stage-IIIC": 5,
    "Stage-IVA": 6,
    "Stage-IVB": 7,
}
_BCLC = {"Stage-0": 0, "Stage-A": 1, "Stage-B": 2, "Stage-C": 3, "Stage-D": 4}
_CLIP_SCORE = {f"Stage_{k}": k for k in range(7)}


def _mapped(raw: pd.DataFrame, column: str, mapping: dict[str, Any]) -> pd.Series:
    values = raw[column]
    unknown = sorted(set(values) - set(mapping) - {""})
    if unknown:
        raise ValueError(f"column {column!r}: values {unknown} not in {sorted(mapping)}")
    return values.map(mapping)


def _number(raw: pd.DataFrame, column: str) -> pd.Series:
    return pd.to_numeric(raw[column].replace({"": np.nan, "NA": np.nan}), errors="raise")


def tace_patients(path: Path) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The TACE table as cohort columns and their specs (every source column kept)."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    raw.columns = [c.strip() for c in raw.columns]
    if len(raw) != 105 or "TTP" not in raw or "OS" not in raw:
        raise ValueError(f"{path}: not the HCC-TACE-Seg clinical table (105 rows, TTP, OS)")
    out = pd.DataFrame()
    cols: dict[str, dict[str, Any]] = {}

    def add(name: str, values: Any, spec: dict[str, Any]) -> None:
        out[name] = values
        cols[name] = spec

    def source(column: str) -> str:
        return f"source column {column!r}"

    add("patient_id", raw["ID"], _column("id", "string", "TCIA patient id (source column 'ID')"))
    add(
        "ttp_weeks",
        _number(raw, "TTP"),
        _column(
            "outcome",
            "number",
            "Time to progression (TTP)",
            unit="weeks",
            range=[0, 1000],
            required=True,
        ),
    )
    add(
        "progressed",
        _mapped(raw, "Censored_0_progressed_1", _YES_NO).astype("Int64"),
        _column(
            "outcome",
            "boolean",
            "Progressed (source Censored_0_progressed_1; censored when no progression by the "
            "study date, lost to follow-up, died before progression, or switched treatment)",
            required=True,
        ),
    )
    add(
        "os_weeks",
        _number(raw, "OS"),
        _column(
            "outcome",
            "number",
            "Overall survival (OS)",
            unit="weeks",
            range=[0, 1000],
            required=True,
        ),
    )
    add(
        "died",
        _mapped(raw, "Death_1_StillAliveorLostToFU_0", _YES_NO).astype("Int64"),
        _column(
            "outcome",
            "boolean",
            "Died (source Death_1_StillAliveorLostToFU_0; 0 = alive or lost to follow-up)",
            required=True,
        ),
    )
    add(
        "hepatitis",
        _mapped(raw, "hepatitis", _HEPATITIS),
        _column(
            "predictor",
            "category",
            "Hepatitis status (source 'hepatitis', recoded)",
            levels=list(_HEPATITIS.values()),
        ),
    )
    add(
        "age",
        _number(raw, "age").astype("Int64"),
        _column(
            "predictor",
            "integer",
            "Age at diagnosis",
            unit="years",
            range=[18, 100],
            concept="age",
            required=True,
        ),
    )
    add(
        "sex",
        _mapped(raw, "Sex", {"1": "M", "2": "F"}),
        _column("predictor", "category", "Sex (source 1 = male, 2 = female)", levels=["M", "F"]),
    )
    for column, (name, text) in _TACE_BOOLEAN.items():
        add(
            name,
            _mapped(raw, column, _YES_NO).astype("Int64"),
            _column("predictor", "boolean", f"{text} ({source(column)}, 1 = yes)"),
        )
    add(
        "pathology",
        _mapped(raw, "Pathology", _PATHOLOGY),
        _column(
            "predictor",
            "category",
            "Pathological grade (differentiation), recoded",
            levels=list(_PATHOLOGY.values()),
        ),
    )
    add(
        "performance_status_bclc",
        _number(raw, "PS_bclc_0_0_1-2_1_3-4_3").astype("Int64"),
        _column(
            "predictor",
            "integer",
            "Performance status for BCLC: 0 = PS 0, 1 = PS 1-2, 3 = PS 3-4 (source coding)",
            range=[0, 3],
        ),
    )
    add(
        "child_pugh_class",
        _mapped(raw, "CPS", {"A": "A", "B": "B", "C": "C"}),
        _column("predictor", "category", "Child-Pugh class (source 'CPS')", levels=["A", "B", "C"]),
    )
    add(
        "tumour_size_cm",
        _number(raw, "Tr_Size"),
        _column(
            "predictor",
            "number",
            "Tumour size (source 'Tr_Size'; missing for about half)",
            unit="cm",
            range=[0.1, 40],
            concept="tumour_diameter",
        ),
    )
    add(
        "multinodular",
        _mapped(raw, "tumor_nodul", {"multinodular": 1, "uninodular": 0}).astype("Int64"),
        _column("predictor", "boolean", "Multinodular tumour (source 'tumor_nodul')"),
    )
    add(
        "liver_involvement_over_50pct",
        _mapped(raw, "T_involvment", {">50%": 1, "< or = 50%": 0}).astype("Int64"),
        _column(
            "predictor",
            "boolean",
            "Tumour involves more than 50% of the liver (source 'T_involvment')",
        ),
    )
    add(
        "afp_ng_ml",
        _number(raw, "AFP"),
        _column(
            "predictor",
            "number",
            "Alpha-fetoprotein (source 'AFP')",
            unit="ng/mL",
            range=[0, 1e7],
            concept="afp",
        ),
    )
    add(
        "clip_score",
        _mapped(raw, "CLIP_Score", _CLIP_SCORE).astype("Int64"),
        _column(
            "predictor",
            "integer",
            "CLIP score 0-6 (source 'CLIP_Score', 'Stage_k' = k)",
            range=[0, 6],
        ),
    )
    add(
        "okuda_stage",
        _mapped(raw, "Okuda", _OKUDA).astype("Int64"),
        _column("predictor", "integer", "Okuda stage I-III as 1-3 (source 'Okuda')", range=[1, 3]),
    )
    add(
        "tnm_stage",
        _mapped(raw, "TNM", _TNM).astype("Int64"),
        _column(
            "predictor",
            "integer",
            "TNM stage in order I, II, IIIA, IIIB, IIIC, IVA, IVB as 1-7 (source 'TNM')",
            range=[1, 7],
        ),
    )
    add(
        "bclc_stage",
        _mapped(raw, "BCLC", _BCLC).astype("Int64"),
        _column(
            "predictor", "integer", "BCLC stage 0, A, B, C, D as 0-4 (source 'BCLC')", range=[0, 4]
        ),
    )
    add(
        "chemotherapy",
        _mapped(raw, "chemotherapy", {**_CHEMOTHERAPY, "NA": np.nan}),
        _column(
            "predictor",
            "category",
            "Chemotherapy of the TACE procedure (source 'chemotherapy', recoded; "
            "'NA' = missing; 'Cisplastin' read as cisplatin)",
            levels=list(_CHEMOTHERAPY.values()),
        ),
    )
    for criterion, unit_text in (
        ("EASL", "unit not stated in the glossary"),
        ("RECIST", "sum of diameters, mm presumably"),
        ("mRECIST", "sum of viable-tumour diameters, mm presumably"),
    ):
        column = f"1_{criterion}_BL"
        add(
            f"{criterion.lower()}_baseline_reader1",
            _number(raw, column),
            _column(
                "predictor",
                "number",
                f"Reader 1's {criterion} reading of the baseline CT before TACE "
                f"({source(column)}; {unit_text})",
                range=[0, 1e6],
            ),
        )
    for column, why in TACE_EXCLUDED.items():
        name = "excluded_" + column.lower().replace(" ", "_")
        add(
            name,
            raw[column].replace({"NA": ""}),
            _column("ignore", "string", f"Not a predictor ({source(column)}): {why}"),
        )
    unused = sorted(
        set(raw.columns)
        - {"ID", "TTP", "OS", "Censored_0_progressed_1", "Death_1_StillAliveorLostToFU_0"}
        - {"hepatitis", "age", "Sex", "Pathology", "PS_bclc_0_0_1-2_1_3-4_3", "CPS", "Tr_Size"}
        - {"tumor_nodul", "T_involvment", "AFP", "CLIP_Score", "Okuda", "TNM", "BCLC"}
        - {"chemotherapy", "1_EASL_BL", "1_RECIST_BL", "1_mRECIST_BL"}
        - set(_TACE_BOOLEAN)
        - set(TACE_EXCLUDED)
    )
    if unused:
        raise ValueError(f"{path}: columns this builder does not know: {unused}")
    return out, cols


def build_tace_cohort(out: Path | str, data_dir: Path | str | None = None) -> Path:
    """Write the HCC-TACE-Seg cohort (endpoints ``ttp`` and ``os``) to ``out``."""
    path = _source(data_dir, f"{TACE_DIR}/{TACE_FILE}")
    patients, columns = tace_patients(path)
    schema: dict[str, Any] = {
        "format_version": 1,
        "name": "HCC-TACE-Seg clinical data (Moawad et al. 2021)",
        "description": (
            f"Built by benchmarks/studies/cohorts.py from {TACE_DIR}/{TACE_FILE} of the shared "
            "reference data (TCIA HCC-TACE-Seg, doi:10.7937/TCIA.5FNA-0924, CC BY 4.0). 105 "
            "HCC patients treated by transarterial chemoembolisation (TACE). Only "
            "pre-treatment columns are predictors; excluded columns are kept as 'ignore' with "
            "the reason in their description."
        ),
        "missing_values": ["", "NA"],
        "endpoints": [
            {
                "name": "ttp",
                "kind": "time_to_event",
                "table": "patients",
                "time": "ttp_weeks",
                "event": "progressed",
                "description": "Time to progression after TACE",
            },
            {
                "name": "os",
                "kind": "time_to_event",
                "table": "patients",
                "time": "os_weeks",
                "event": "died",
                "description": "Overall survival",
            },
        ],
    }
    return _write(Path(out), schema, patients, columns)


# --------------------------------------------------------------------------------------------
# Mayo PBC

# column of pbc.csv: (cohort column, type, unit, valid range, concept, description)
_PBC_NUMBERS: dict[str, tuple[str, str, str | None, list[float], str | None, str]] = {
    "age": ("age", "number", "years", [18, 100], "age", "Age at registration"),
    "bili": ("bilirubin", "number", "mg/dL", [0.05, 60], "total_bilirubin", "Serum bilirubin"),
    "chol": ("cholesterol", "number", "mg/dL", [50, 2000], None, "Serum cholesterol"),
    "albumin": ("albumin", "number", "g/dL", [1, 7], "albumin", "Serum albumin"),
    "copper": ("copper", "number", "µg/day", [0, 1000], None, "Urine copper"),
    "alk.phos": ("alk_phos", "number", "U/L", [0, 20000], None, "Alkaline phosphatase"),
    "ast": ("ast", "number", "U/L", [0, 5000], "ast", "AST (the R documentation says U/mL)"),
    "trig": ("triglycerides", "number", "mg/dL", [10, 1000], None, "Triglycerides"),
    "platelet": ("platelets", "number", "10^9/L", [1, 2000], "platelets", "Platelet count"),
    "protime": ("prothrombin_time", "number", "s", [5, 40], None, "Prothrombin time"),
    "edema": (
        "oedema",
        "number",
        None,
        [0, 1],
        None,
        "Oedema: 0 none, 0.5 untreated or successfully treated, 1 despite diuretics",
    ),
    "stage": ("stage", "integer", None, [1, 4], None, "Histologic stage (biopsy), 1-4"),
}
_PBC_BOOLEAN = {
    "ascites": "Ascites",
    "hepato": "Hepatomegaly",
    "spiders": "Spider angiomata (blood vessel malformations in the skin)",
}


def pbc_patients(path: Path) -> pd.DataFrame:
    """The PBC table as cohort columns (see the module docstring for every choice)."""
    raw = pd.read_csv(path, na_values=["NA", ""], keep_default_na=False)
    expected = {"rownames", "id", "time", "status", "trt", "sex", *_PBC_NUMBERS, *_PBC_BOOLEAN}
    if set(raw.columns) != expected or len(raw) != 418:
        raise ValueError(f"{path}: not the Mayo PBC table (418 rows, {len(expected)} columns)")
    unknown = sorted(set(raw["status"]) - {0, 1, 2})
    if unknown:
        raise ValueError(f"{path}: status values {unknown} are not 0, 1 or 2")
    out = pd.DataFrame({"patient_id": [f"PBC{int(i):03d}" for i in raw["id"]]})
    out["death_days"] = raw["time"].astype("float64")
    out["died"] = (raw["status"] == 2).astype("Int64")
    out["status"] = raw["status"].map({0: "censored", 1: "transplant", 2: "dead"})
    out["trt"] = raw["trt"].map({1: "D-penicillamine", 2: "placebo"})
    out["sex"] = raw["sex"].map({"m": "M", "f": "F"})
    for source, (name, type_, *_rest) in _PBC_NUMBERS.items():
        values = raw[source].astype("float64")
        out[name] = values.astype("Int64") if type_ == "integer" else values
    for source in _PBC_BOOLEAN:
        out[source] = raw[source].astype("Int64")
    return out


def build_pbc_cohort(out: Path | str, data_dir: Path | str | None = None) -> Path:
    """Write the Mayo PBC cohort (endpoint ``death``) to ``out``."""
    path = _source(data_dir, f"{PBC_DIR}/{PBC_FILE}")
    patients = pbc_patients(path)
    columns: dict[str, dict[str, Any]] = {
        "patient_id": _column("id", "string", "PBC + the case number of pbc.csv (id)"),
        "death_days": _column(
            "outcome",
            "number",
            "Days from registration to death, transplant or the end of follow-up (July 1986)",
            unit="days",
            range=[0, 10000],
            required=True,
        ),
        "died": _column(
            "outcome",
            "boolean",
            "Died (status 2); a transplant (status 1) is censored at the transplant",
            required=True,
        ),
        "status": _column(
            "ignore", "string", "Source status (0 censored, 1 transplant, 2 dead): see died"
        ),
        "trt": _column(
            "ignore",
            "string",
            "Treatment arm of the trial, missing for the 106 non-trial patients: not a "
            "predictor (no effect found; its missingness encodes trial participation)",
        ),
        "sex": _column("predictor", "category", "Sex", levels=["M", "F"]),
    }
    for name, type_, unit, valid, concept, description in _PBC_NUMBERS.values():
        keys: dict[str, Any] = {"range": valid}
        if unit is not None:
            keys["unit"] = unit
        if concept is not None:
            keys["concept"] = concept
        columns[name] = _column("predictor", type_, description, **keys)
    for source, full in _PBC_BOOLEAN.items():
        columns[source] = _column("predictor", "boolean", f"{full} (1 = yes, 0 = no)")
    schema: dict[str, Any] = {
        "format_version": 1,
        "name": "Mayo Clinic primary biliary cholangitis (Therneau & Grambsch 2000)",
        "description": (
            f"Built by benchmarks/studies/cohorts.py from {PBC_DIR}/{PBC_FILE} of the shared "
            "reference data (Rdatasets copy of the R survival package's pbc). 418 patients of "
            "the Mayo Clinic PBC trial (1974-1984): 312 randomised, 106 followed only. Death "
            "is the event; a transplant is censored at the transplant."
        ),
        "missing_values": ["", "NA"],
        "endpoints": [
            {
                "name": "death",
                "kind": "time_to_event",
                "table": "patients",
                "time": "death_days",
                "event": "died",
                "description": "Overall survival (transplant censored)",
            }
        ],
    }
    return _write(Path(out), schema, patients, columns)


def build_all(out: Path | str, data_dir: Path | str | None = None) -> dict[str, Path]:
    """The cohorts under ``out``: ``hcc_survival_uci``, ``hcc_tace_seg`` and ``pbc_mayo``."""
    out = Path(out)
    return {
        "hcc_survival_uci": build_uci_cohort(out / "hcc_survival_uci", data_dir),
        "hcc_tace_seg": build_tace_cohort(out / "hcc_tace_seg", data_dir),
        "pbc_mayo": build_pbc_cohort(out / "pbc_mayo", data_dir),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the cohorts to")
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="shared data folder (default: $HEPABLATE_SHARED_DATA or <repo>/../shared/data)",
    )
    args = parser.parse_args(argv)
    try:
        built = build_all(args.out, args.data)
    except SharedDataMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, path in built.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
