"""skops files of a bundle: written byte-for-byte reproducibly, read only with the exact types
hepablate writes."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np

from hepablate.bundle._errors import BundleError
from hepablate.bundle.trusted_types import TRUSTED_TYPES

__all__ = ["dump_skops", "load_skops", "skops_types"]

# The DOS epoch: zip entries carry no time of writing, so the same object gives the same bytes.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _renumber(state: Any, ids: dict[int, int], files: dict[str, str]) -> None:
    """Replace, in place, skops' memory ids (``id(obj)`` when it was saved) by their order of
    first appearance, and the names of the zip entries they (or a random UUID) named."""
    if isinstance(state, list):
        for item in state:
            _renumber(item, ids, files)
        return
    if not isinstance(state, dict):
        return
    if "__loader__" in state:  # a node's state, not a dict's content
        saved = state.get("__id__")
        if isinstance(saved, int):
            state["__id__"] = ids.setdefault(saved, len(ids) + 1)
        name = state.get("file")
        if isinstance(name, str):
            suffix = name[name.rfind(".") :] if "." in name else ""
            state["file"] = files.setdefault(name, f"{len(files) + 1}{suffix}")
    for value in state.values():
        _renumber(value, ids, files)


def _zero_padding(data: bytes) -> bytes:
    """An ``.npy`` of a structured array with its padding bytes zeroed: they are whatever the
    memory held (a fitted tree's nodes have 7 per node), so they differ between two fits."""
    array = np.load(io.BytesIO(data), allow_pickle=False)
    if array.dtype.fields is None:
        return data
    clean = np.zeros(array.shape, dtype=array.dtype)
    for field in array.dtype.names or ():
        clean[field] = array[field]
    buffer = io.BytesIO()
    np.save(buffer, clean, allow_pickle=False)
    return buffer.getvalue()


def dump_skops(obj: Any) -> bytes:
    """``skops.io.dumps(obj)`` with its memory ids, random entry names, entry times and array
    padding made deterministic: an object fitted the same way gives the same bytes, so a retrain
    of the same data gives the same bundle id. Ids are renumbered consistently (a shared object
    keeps one id), so the file loads as the original would."""
    import skops.io as sio

    with zipfile.ZipFile(io.BytesIO(sio.dumps(obj))) as original:
        schema = json.loads(original.read("schema.json"))
        files: dict[str, str] = {}
        _renumber(schema, {}, files)
        entries = {
            new: _zero_padding(original.read(old)) if new.endswith(".npy") else original.read(old)
            for old, new in files.items()
        }
    entries["schema.json"] = json.dumps(schema, indent=2).encode("utf-8")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as out:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            out.writestr(info, entries[name])
    return buffer.getvalue()


def skops_types(data: bytes, name: str) -> list[str]:
    """The types, functions and methods a skops file names that skops does not trust by
    default (its own report: the file is parsed, nothing in it imported or constructed)."""
    import skops.io as sio

    try:
        return list(sio.get_untrusted_types(data=data))
    # Parsing bytes from outside: a damaged zip, schema or node raises whatever its parser
    # raises (zipfile, json, KeyError, TypeError, ...); each is a bad file, not a bug.
    except Exception as exc:
        raise BundleError(
            f"{name}: not a readable skops file ({type(exc).__name__}: {exc})"
        ) from exc


def load_skops(data: bytes, name: str) -> Any:
    """The object of a skops file, when every type it names is one hepablate writes
    (``TRUSTED_TYPES``); anything else is refused before it is imported or called."""
    import skops.io as sio

    found = skops_types(data, name)
    refused = sorted(set(found) - TRUSTED_TYPES)
    if refused:
        raise BundleError(
            f"{name}: names types hepablate does not write, refused unloaded: {', '.join(refused)}"
        )
    try:
        return sio.loads(data, trusted=sorted(found))
    # Every type is one hepablate writes; what fails now is the file's content (a truncated
    # array, a state that does not fit its class), whatever the library raises for it.
    except Exception as exc:
        raise BundleError(f"{name}: cannot be loaded ({type(exc).__name__}: {exc})") from exc
