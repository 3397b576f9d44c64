"""A study: select features, validate models on the same grouped folds, report (``hepablate
train``). Configured by :class:`StudyConfig` (``docs/study-config.md``)."""

from hepablate.study.config import StudyConfig, StudyConfigError, load_study_config
from hepablate.study.data import StudyData, study_data
from hepablate.study.run import StudyResult, run_study

__all__ = [
    "StudyConfig",
    "StudyConfigError",
    "StudyData",
    "StudyResult",
    "load_study_config",
    "run_study",
    "study_data",
]
