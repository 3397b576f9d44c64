"""The extraction config: which images play which part, where the masks come from (the
cohort's or a segmenter's), preprocessing, registration, radiomics, robustness, crops and the
deep encoder (``ExtractionConfig``), and its reading from a YAML or JSON file
(``load_extraction_config``). It is stored with every FeatureTable and bundle.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hepablate.features.crops import CropConfig
from hepablate.features.radiomics import RadiomicsConfig
from hepablate.features.robustness import RobustnessConfig
from hepablate.imaging.preprocess import Preprocessing
from hepablate.imaging.registration import RegistrationConfig

__all__ = [
    "DeepEncoder",
    "ExtractionConfig",
    "ExtractionConfigError",
    "ImageNames",
    "MaskMode",
    "Region",
    "SegmenterRef",
    "load_extraction_config",
]

Region = Literal["tumour", "ring", "ablation"]
# Where the masks come from: the cohort's (drawn by hand), a segmenter's for every patient, or
# the segmenter's only for the masks a patient lacks.
MaskMode = Literal["manual", "auto", "manual_else_auto"]


class ImageNames(BaseModel):
    """Which image of ``cohort.yaml`` plays which part (the documented names by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pre_ct: str = "pre_ct"
    post_ct: str = "post_ct"
    tumours: str = "pre_tumours"
    ablation: str = "post_ablation"
    liver: str = "liver"
    post_liver: str = "post_liver"
    vessels: str = "vessels"


class DeepEncoder(BaseModel):
    """The image encoder of a trained image network (a bundle of kind ``multimodal`` or
    ``multimodal_surv``) whose embedding of each tumour's crops become ``deep.image_*``
    columns. It must have been trained on other patients than the ones it describes here:
    otherwise their outcomes leak into the features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle: Path
    # The bundle's id (SHA-256 of its manifest): a different bundle at that path is refused.
    id: str | None = None


class SegmenterRef(BaseModel):
    """The segmentation bundle (``hepablate segment train``) that draws the automatic masks;
    written as its folder (``segmenter: seg/``) or with its id (``{bundle: seg/, id: ...}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bundle: Path
    # The bundle's id (SHA-256 of its manifest): a different bundle at that path is refused.
    # An extraction with automatic masks records it here.
    id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _a_folder_alone(cls, value: Any) -> Any:
        return {"bundle": value} if isinstance(value, str | Path) else value


class ExtractionConfig(BaseModel):
    """Everything that decides the features; stored with the FeatureTable and the bundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    images: ImageNames = ImageNames()
    # manual: the cohort's masks; auto: the segmenter's tumours, liver and zone masks for every
    # patient; manual_else_auto: the segmenter's for the masks a patient lacks. The
    # segmentation runs in hepablate.app (features never load a segmentation bundle).
    masks: MaskMode = "manual"
    segmenter: SegmenterRef | None = None
    preprocessing: Preprocessing = Preprocessing()  # applied to each scan and its masks
    registration: RegistrationConfig = RegistrationConfig()
    register_post_ct: bool = True
    # Radiomics (null: none) of each tumour's regions: the tumour on the pre CT, a ring of
    # ``ring_mm`` around it inside the liver, the ablation zone on the registered post CT.
    radiomics: RadiomicsConfig | None = RadiomicsConfig()
    regions: tuple[Region, ...] = ("tumour", "ring", "ablation")
    ring_mm: float = Field(default=5.0, gt=0)
    # The ring's shape is the tumour's: its morphology features would only repeat them.
    morphology_regions: tuple[Region, ...] = ("tumour", "ablation")
    robustness: RobustnessConfig = RobustnessConfig()
    crops: CropConfig = CropConfig()
    # ``deep.image_*`` columns from a trained image network's encoder (needs the crops).
    deep: DeepEncoder | None = None

    @model_validator(mode="after")
    def _segmenter_with_automatic_masks(self) -> ExtractionConfig:
        if self.masks != "manual" and self.segmenter is None:
            raise ValueError(f"masks: {self.masks} needs a segmenter (segmenter: FOLDER)")
        if self.masks == "manual" and self.segmenter is not None:
            raise ValueError(
                "segmenter: given, but masks: manual uses none; set masks: auto or manual_else_auto"
            )
        return self


class ExtractionConfigError(ValueError):
    """An extraction config file that cannot be read or is not a valid ExtractionConfig."""


def load_extraction_config(
    path: Path | str, updates: dict[str, Any] | None = None
) -> ExtractionConfig:
    """An ExtractionConfig from a YAML or JSON file (keys of ExtractionConfig; empty: defaults),
    with the top-level settings of ``updates`` (a command's options) in place of the file's.

    Errors name the file and, for an invalid setting, the field.
    """
    path = Path(path)
    try:
        settings = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if updates and isinstance(settings, dict):
            settings = {**settings, **updates}
        return ExtractionConfig.model_validate(settings)
    except UnicodeDecodeError as exc:
        raise ExtractionConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
            f"{exc.start}); save it as UTF-8"
        ) from None
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ExtractionConfigError(f"{path}: {exc}") from exc
