"""The study config of ``hepablate train``: endpoint, features, selection, models, validation.

One typed document (YAML or JSON) says everything a reviewer needs to repeat the study; it is
copied into ``metrics.json`` and the report. Documented in ``docs/study-config.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hepablate.models.registry import KINDS, default_models, make_model
from hepablate.schemas.metrics import ModelKind

__all__ = [
    "FeatureSources",
    "ModelSpec",
    "SelectionStep",
    "StudyConfig",
    "StudyConfigError",
    "ValidationScheme",
    "load_study_config",
]


def _known_selector(method: str) -> str:
    from hepablate.selection.registry import selector_class  # the selectors and their libraries

    selector_class(method)  # a ValueError naming the selectors there are
    return method


# The names of hepablate.selection.SELECTORS (validated against it, so listed only there).
SelectorName = Annotated[str, AfterValidator(_known_selector)]
# The kinds of each endpoint and the networks, from the models' registry.
BINARY_MODELS: frozenset[str] = frozenset(k for k, e in KINDS.items() if not e.survival)
SURVIVAL_MODELS: frozenset[str] = frozenset(k for k, e in KINDS.items() if e.survival)
# Deep networks: each is compared with the best of the other models on the same folds.
DEEP_MODELS: frozenset[str] = frozenset(k for k, e in KINDS.items() if e.deep)


class StudyConfigError(ValueError):
    """The study config cannot be read or does not fit the data."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSources(_Strict):
    """Which FeatureTable columns are candidate predictors (shell-style patterns)."""

    include: tuple[str, ...] = ("clin.*", "geom.*", "rad.*", "deep.*")
    exclude: tuple[str, ...] = ()
    # The clinical-only models use these columns and no selection.
    clinical: tuple[str, ...] = ("clin.*",)
    # Always kept by every selector (names after encoding: a category becomes name_level).
    force: tuple[str, ...] = ()
    # Numeric columns taken as log(1 + x) before imputation and scaling (skewed labs: AFP).
    log: tuple[str, ...] = ()


class SelectionStep(_Strict):
    """One selector of the pipeline, with its keyword arguments."""

    method: SelectorName
    params: dict[str, Any] = Field(default_factory=dict)


class ModelSpec(_Strict):
    """One model to validate. ``clinical_only`` models see only ``features.clinical``."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    kind: ModelKind
    clinical_only: bool = False
    # Hyperparameter grid searched by inner grouped cross-validation (sklearn names).
    grid: dict[str, list[Any]] | None = None


class ValidationScheme(_Strict):
    """Outer validation; selection and tuning are refitted inside every outer training set."""

    scheme: Literal["kfold", "by_centre"] = "kfold"
    folds: int = Field(default=5, ge=2)
    repeats: int = Field(default=3, ge=1)
    inner_folds: int = Field(default=3, ge=2)
    # by_centre: these centres are the test set; none = each centre left out in turn.
    test_centres: tuple[str, ...] = ()
    seed: int = 1
    bootstrap: int = Field(default=1000, ge=100)
    # Binary endpoints: the probability threshold for sensitivity, specificity, PPV and NPV;
    # none = the outcome's prevalence in the analysed rows (stated in the report).
    threshold: float | None = Field(default=None, gt=0, lt=1)
    # Survival: the horizon of Uno's C and of the risk groups' table (months).
    horizon_months: float = Field(default=24.0, gt=0)
    # Runs of the whole validation with shuffled labels (the first model only).
    permutations: int = Field(default=1, ge=0)
    imputation: Literal["median", "iterative"] = "median"


def _default_selection() -> tuple[SelectionStep, ...]:
    """No selection step: the model gets every candidate column, and its own penalty (ridge
    Cox, tuned logistic C) or the trees do the selecting. Chosen on four real tables and the
    virtual cohort, on the same folds (``benchmarks/selection_recipes.py``, docs/benchmarks.md
    "Selection recipes on real tables"): of the eleven recipes, only this and `reproducible`
    alone (which changes nothing on a table without ICCs) are never below the plain linear
    model on a real table (issue 16's done-when); their means tie (0.704 and 0.708, within the
    rule's 0.005), and a tie goes to the fewer steps. Near-zero variance drops rare category
    levels, merging them into the reference level, and cost 0.002 of C on HCC-TACE-Seg OS.
    Stability selection, the earlier default, kept one or two columns per training set and lost
    0.02-0.17 against the best recipe on the real tables; a univariate FDR step lost 0.14
    against the plain Cox on HCC-TACE-Seg TTP. With radiomics ICCs, add `reproducible`.
    """
    return ()


class StudyConfig(_Strict):
    """A whole study: what to predict, from what, how to select, which models, how to validate."""

    name: str = "study"
    endpoint: str
    features: FeatureSources = FeatureSources()
    selection: tuple[SelectionStep, ...] = Field(default_factory=_default_selection)
    models: tuple[ModelSpec, ...] = ()
    validation: ValidationScheme = ValidationScheme()
    # Extraction settings when the input is a cohort folder (keys of ExtractionConfig).
    extraction: dict[str, Any] | None = None
    workers: int = Field(default=0, ge=0)
    # The model `hepablate train` writes into RUN_DIR/bundle; None: the best-ranked one.
    bundle_model: str | None = None

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: tuple[ModelSpec, ...]) -> tuple[ModelSpec, ...]:
        names = [m.name for m in models]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"model names must be unique: {', '.join(doubled)}")
        return models

    @model_validator(mode="after")
    def _bundle_model_exists(self) -> StudyConfig:
        names = [m.name for m in self.models]
        if self.bundle_model is not None and self.models and self.bundle_model not in names:
            raise ValueError(f"bundle_model {self.bundle_model!r} is not one of models {names}")
        return self

    @model_validator(mode="after")
    def _same_kind(self) -> StudyConfig:
        kinds = {m.kind in SURVIVAL_MODELS for m in self.models}
        if len(kinds) > 1:
            raise ValueError("models mix binary and time-to-event kinds; one endpoint, one kind")
        return self

    @model_validator(mode="after")
    def _known_parameters(self) -> StudyConfig:
        problems = parameter_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def models_for(self, survival: bool) -> tuple[ModelSpec, ...]:
        """The configured models, or the default baselines for the endpoint's kind."""
        if self.models:
            wanted = SURVIVAL_MODELS if survival else BINARY_MODELS
            wrong = [m.name for m in self.models if m.kind not in wanted]
            if wrong:
                kind = "time-to-event" if survival else "binary"
                raise StudyConfigError(
                    f"endpoint {self.endpoint!r} is {kind}; models {', '.join(wrong)} are not"
                )
            return self.models
        return tuple(
            ModelSpec(name=name, kind=cast(ModelKind, kind), clinical_only=clinical)
            for name, kind, clinical in default_models(survival)
        )


# Parameters the study sets itself: a config that sets them would be overridden or clash.
_SET_BY_THE_STUDY = {"force": "features.force", "crops": "the FeatureTable's crops"}


def parameter_problems(config: StudyConfig) -> list[str]:
    """Selector parameters and model grids checked against the estimators they configure,
    before any data is read: unknown names (with the names there are), and values the
    estimator's own constraints (scikit-learn) or type hints (hepablate's) refuse. One
    line per problem, naming the field."""
    from hepablate.study.pipeline import make_selector  # the estimators the study builds

    problems = []
    for i, step in enumerate(config.selection):
        selector = make_selector(SelectionStep(method=step.method), icc={}, force=())
        where = f"selection.{i} ({step.method}).params"
        problems += _check_parameters(selector, step.params.items(), where, one_value=True)
    for i, spec in enumerate(config.models):
        if spec.grid is None:
            continue
        where = f"models.{i} ({spec.name}).grid"
        empty = [name for name, values in spec.grid.items() if not values]
        problems += [f"{where}.{name}: an empty list; give at least one value" for name in empty]
        model = make_model(spec.kind, config.validation.seed)
        values = [(name, value) for name, options in spec.grid.items() for value in options]
        problems += _check_parameters(model, values, where, one_value=False)
    return list(dict.fromkeys(problems))


def _check_parameters(estimator: Any, values: Any, where: str, *, one_value: bool) -> list[str]:
    import typing

    from pydantic import TypeAdapter, ValidationError
    from sklearn.base import clone

    known = estimator.get_params(deep=True)
    shown = ", ".join(sorted(k for k in known if k not in _SET_BY_THE_STUDY))
    cls = type(estimator)
    hints = typing.get_type_hints(cls.__init__) if cls.__module__.startswith("hepablate") else {}
    problems = []
    for name, value in values:
        field = f"{where}.{name}"
        if name in _SET_BY_THE_STUDY:
            problems.append(f"{field}: set by the study from {_SET_BY_THE_STUDY[name]}, not here")
            continue
        if name not in known:
            problems.append(f"{field}: {cls.__name__} has no parameter {name!r} (it has {shown})")
            continue
        shown_value = "" if one_value else f"{value!r}: "
        if name in hints:  # hepablate's estimators check ranges when fitted; types here
            try:
                TypeAdapter(hints[name]).validate_python(value, strict=True)
            except ValidationError:
                try:  # YAML has lists where a parameter takes a tuple
                    TypeAdapter(hints[name]).validate_python(
                        tuple(value) if isinstance(value, list) else value, strict=True
                    )
                except ValidationError as exc:
                    problems.append(f"{field}: {shown_value}{exc.errors()[0]['msg']}")
            continue
        # scikit-learn's own constraints of the value (what fit would check, hours later)
        probe = clone(estimator).set_params(**{name: value})
        validate = getattr(probe, "_validate_params", None)
        if validate is None:
            continue
        try:
            validate()
        except (ValueError, TypeError) as exc:
            problems.append(f"{field}: {shown_value}{exc}")
    return problems


def load_study_config(path: Path) -> StudyConfig:
    """Read a study config (YAML or JSON); errors name the file and the field, one line per
    problem."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise StudyConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start}); save the study config as UTF-8"
        ) from exc
    except (OSError, yaml.YAMLError) as exc:
        raise StudyConfigError(f"{path}: cannot read the study config: {exc}") from exc
    if not isinstance(data, dict):
        raise StudyConfigError(f"{path}: a study config is a mapping (endpoint: ..., ...)")
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as exc:
        raise StudyConfigError("\n".join(f"{path}: {line}" for line in _lines(exc))) from exc


def _lines(exc: ValidationError) -> list[str]:
    """One line per problem of a pydantic error: ``field.path: message``."""
    lines = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        where = ".".join(str(part) for part in error["loc"])
        lines += [f"{where}: {line}" if where else line for line in message.splitlines()]
    return lines
