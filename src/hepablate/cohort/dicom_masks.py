"""The names of a DICOM import's masks: the rules (``dicom_masks.yaml``, extended with
``--mask-names``) that turn a segment, ROI or series name into a structure and a number."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from hepablate.cohort.dicom_files import DicomImportError

__all__ = [
    "MaskNames",
    "NamedMask",
    "Structure",
]

# The mask-names rules shipped with the package (docs/cohort-format.md, section 7).
_SHIPPED_MASK_NAMES = Path(str(resources.files("hepablate.cohort") / "dicom_masks.yaml"))


Structure = Literal["tumour", "ablation", "liver", "vessels", "ignore"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pattern: str
    structure: Structure


class _RulesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rules: list[_Rule]


@dataclass(frozen=True)
class NamedMask:
    """The structure a mask name stands for, and its number (``tumour 2``) if it has one."""

    structure: Structure
    number: int | None


class MaskNames:
    """The rules that turn a segment, ROI or series name into a structure (and a number)."""

    def __init__(self, extra: Path | None = None) -> None:
        files = [*([extra] if extra is not None else []), _SHIPPED_MASK_NAMES]
        self.rules: list[tuple[re.Pattern[str], Structure]] = []
        for path in files:
            self.rules += _load_rules(path)

    def __call__(self, name: str) -> NamedMask | None:
        text = _normalised(name)
        for pattern, structure in self.rules:
            match = pattern.fullmatch(text)
            if match:
                number = match.groupdict().get("n")
                return NamedMask(structure, int(number) if number else None)
        return None


def _normalised(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def _load_rules(path: Path) -> list[tuple[re.Pattern[str], Structure]]:
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
        rules = _RulesFile.model_validate(content).rules
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DicomImportError(f"{path}: cannot read the mask names: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise DicomImportError(f"{path}: {where}: {first['msg']}") from None
    compiled = []
    for k, rule in enumerate(rules):
        try:
            compiled.append((re.compile(rule.pattern), rule.structure))
        except re.error as exc:
            raise DicomImportError(f"{path}: rule {k + 1}: {rule.pattern!r}: {exc}") from None
    return compiled
