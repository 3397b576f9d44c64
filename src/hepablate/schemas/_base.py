"""What the output models share: strict JSON objects without NaN, versions, readable errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "Closed",
    "Open",
    "OutputFileError",
    "absent_if_none",
    "check_version",
    "describe",
    "dump_json",
    "tag",
    "validate",
]

T = TypeVar("T")


class Closed(BaseModel):
    """A JSON object of exactly these keys; NaN and infinities refused (undefined is null)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Open(BaseModel):
    """A JSON object with these keys at least; others are kept as written (open by design:
    a config echoed, an endpoint's cohort-defined details)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


def dump_json(model: BaseModel) -> str:
    """An output's text as hepablate writes it: strict JSON (no NaN), indent 1, keys in the
    model's order, one trailing newline (deterministic: the same object, the same bytes)."""
    return json.dumps(model.model_dump(mode="json"), indent=1, allow_nan=False) + "\n"


def absent_if_none(default: Any = None, **kwargs: Any) -> Any:
    """A key that is written only when it has a value (as the writers always did)."""
    return Field(default, exclude_if=lambda value: value is None, **kwargs)


class OutputFileError(ValueError):
    """An output file hepablate cannot read: not JSON, another schema version, or a field
    missing or of the wrong type. The message starts with the file and names the field."""


_TAGS: set[str] = set()


def tag(name: str) -> str:
    """The tag of one member of a union told apart by a discriminator function. Error paths
    leave the tags out (``models.logistic.metrics``, not ``models.logistic.<binary>.metrics``);
    only registered tags are, so pydantic's own ``[key]`` marker of a dict key stays."""
    tagged = f"<{name}>"
    _TAGS.add(tagged)
    return tagged


def _is_tag(part: int | str) -> bool:
    return isinstance(part, str) and part in _TAGS


def describe(exc: ValidationError) -> list[str]:
    """One line per problem, ``field.path: message`` (tags of unions left out of the path)."""
    lines = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"] if not _is_tag(p))
        lines.append(f"{where}: {error['msg']}" if where else error["msg"])
    return list(dict.fromkeys(lines))


def load_json(path: Path, data: bytes | str | None = None) -> Any:
    """The JSON of ``path`` (or of ``data`` read from it) or an OutputFileError naming it."""
    try:
        text = path.read_bytes() if data is None else data
        return json.loads(text)
    except OSError as exc:
        raise OutputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise OutputFileError(f"{path}: not valid JSON ({exc})") from None


def check_version(path: Path | str, raw: Any, current: int, key: str = "schema_version") -> None:
    """Refuse a file of a newer schema than this hepablate reads. A file without the key was
    written before the outputs were versioned and is read as version 1 (every field it lacks
    is then named by the validation)."""
    if not isinstance(raw, dict):
        raise OutputFileError(f"{path}: not a JSON object")
    version = raw.setdefault(key, 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > current:
        raise OutputFileError(
            f"{path}: {key} {version} is newer than this hepablate reads ({current}); "
            "upgrade hepablate to read it"
        )


def validate(path: Path | str, raw: Any, shape: TypeAdapter[T]) -> T:
    """``raw`` as ``shape``, or an OutputFileError: ``path: field.path: message`` per problem."""
    try:
        return shape.validate_python(raw)
    except ValidationError as exc:
        raise OutputFileError("\n".join(f"{path}: {line}" for line in describe(exc))) from None
