"""Configs shipped with the package: the light extraction and the demo's study.

They are files (YAML, the format users write) so that ``hepablate extract --config`` and
``hepablate train --config`` can be pointed at them too; :func:`path` finds them in an
installed package.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["path"]


def path(name: str) -> Path:
    """The shipped config ``name`` (e.g. ``"light_extraction"``), as a file path."""
    candidate = resources.files(__name__) / f"{name}.yaml"
    if not candidate.is_file():
        raise FileNotFoundError(f"no shipped config {name!r}")
    return Path(str(candidate))
