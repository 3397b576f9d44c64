"""``manifest.json`` of a model bundle: what it holds and the SHA-256 of each of its files.

Its version is ``format_version`` (2: no creation time, signature.json, the exact file set),
the bundle format's own since before the other outputs were versioned; a manifest of another
format version is refused. The bundle's id is the SHA-256 of this file's bytes, so it holds
nothing that depends on when or where the bundle was written.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, StringConstraints

from hepablate.schemas._base import Closed
from hepablate.schemas.metrics import ModelKind, StudyEndpoint

__all__ = ["MANIFEST_FORMAT", "MANIFEST_FORMAT_VERSION", "Manifest"]

MANIFEST_FORMAT = "hepablate-bundle"
MANIFEST_FORMAT_VERSION = 2

FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}$")]
Digest = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class Manifest(Closed):
    """``manifest.json``; ``files``: every other file of the bundle but the signature."""

    model_config = ConfigDict(frozen=True, strict=True)

    format: Literal["hepablate-bundle"]
    format_version: Literal[2]
    model: str
    kind: ModelKind
    clinical_only: bool
    endpoint: StudyEndpoint
    survival: bool
    versions: dict[str, str | None]  # of the packages that decide how the model behaves
    files: dict[FileName, Digest]
