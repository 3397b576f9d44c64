"""A bundle's manifest (format, versions, the SHA-256 of every file), its digest (the bundle's
id), the files a bundle has, and their verification on load."""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pydantic import ValidationError

from hepablate.bundle._errors import BundleError
from hepablate.bundle._files import list_entries, read_file
from hepablate.bundle.contents import first_error
from hepablate.bundle.signing import SIGNATURE
from hepablate.schemas.manifest import MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, Manifest

__all__ = [
    "FILE_SETS",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "MANIFEST_DIGEST",
    "PACKAGES",
    "Contents",
    "bundle_id_of",
    "check_files",
    "check_versions",
    "read_contents",
    "sha256",
    "versions",
]

FORMAT = MANIFEST_FORMAT
# 2: no creation time in the manifest (it is the signature's), signature.json, exact file set.
FORMAT_VERSION = MANIFEST_FORMAT_VERSION
MANIFEST = "manifest.json"
# The SHA-256 of manifest.json's bytes (the bundle's id), for people and scripts to read.
MANIFEST_DIGEST = "manifest.sha256"
# Packages whose version decides how a bundle's objects behave.
PACKAGES = (
    "hepablate",
    "scikit-learn",
    "scikit-survival",
    "numpy",
    "scipy",
    "pandas",
    "torch",
    "monai",
    "skops",
    "safetensors",
    "mirp",
    "SimpleITK",
)
COMMON_FILES = frozenset(
    {
        "extraction.json",
        "study.json",
        "schema.json",
        "metrics.json",
        "thresholds.json",
        "preparation.skops",
    }
)
# The two shapes of a bundle: a scikit-learn model, or a network's weights and description.
FILE_SETS = (COMMON_FILES | {"model.skops"}, COMMON_FILES | {"model.safetensors", "model.json"})
SMALL = 1 << 20  # the manifest, its digest and the signature are a few kilobytes
JSON_LIMIT = 64 << 20


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Contents:
    """A bundle folder's manifest and signature, read and parsed but not yet trusted."""

    path: Path
    names: frozenset[str]
    manifest_bytes: bytes
    manifest: Manifest
    signature: bytes | None

    @property
    def id(self) -> str:
        return sha256(self.manifest_bytes)


def _parse_manifest(path: Path, data: bytes) -> Manifest:
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{path}: not a JSON object; not a hepablate bundle manifest")
    if raw.get("format") != FORMAT or raw.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            f"{path}: format {raw.get('format')!r} version {raw.get('format_version')!r}; this "
            f"hepablate reads {FORMAT} {FORMAT_VERSION}"
            + (" (retrain to write it)" if raw.get("format") == FORMAT else "")
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{path}: {first_error(exc)}") from None
    if frozenset(manifest.files) not in FILE_SETS:
        expected = " or ".join(", ".join(sorted(s)) for s in FILE_SETS)
        raise BundleError(
            f"{path}: lists {', '.join(sorted(manifest.files))}; a bundle lists {expected}"
        )
    return manifest


def read_contents(path: Path) -> Contents:
    names = frozenset(list_entries(path))
    if MANIFEST not in names:
        raise BundleError(f"{path}: no {MANIFEST}; not a hepablate bundle")
    manifest_bytes = read_file(path / MANIFEST, SMALL)
    manifest = _parse_manifest(path / MANIFEST, manifest_bytes)
    signature = read_file(path / SIGNATURE, SMALL) if SIGNATURE in names else None
    return Contents(path, names, manifest_bytes, manifest, signature)


def check_files(contents: Contents, *, authentic: bool) -> dict[str, bytes]:
    """Every listed file, read once and matching its hash; nothing else in the folder.
    ``authentic``: the manifest is vouched for (signature or pin), so a digest that differs
    from it is the digest file's fault."""
    path, names = contents.path, contents.names
    digest_file = path / MANIFEST_DIGEST
    if MANIFEST_DIGEST not in names:
        raise BundleError(f"{digest_file}: missing")
    digest = read_file(digest_file, SMALL).decode("ascii", errors="replace").strip()
    if digest != contents.id:
        raise BundleError(
            f"{digest_file}: changed since the bundle was written (manifest.json's SHA-256 is "
            f"{contents.id})"
            if authentic
            else f"{digest_file}: does not match manifest.json (one of them changed since the "
            "bundle was written)"
        )
    listed = contents.manifest.files
    extra = sorted(names - set(listed) - {MANIFEST, MANIFEST_DIGEST, SIGNATURE})
    if extra:
        raise BundleError(f"{path}: files not in the manifest: {', '.join(extra)}")
    missing = sorted(set(listed) - names)
    if missing:
        raise BundleError(f"{path}: files missing: {', '.join(missing)}")
    files: dict[str, bytes] = {}
    for name, expected in listed.items():
        data = read_file(path / name)
        if sha256(data) != expected:
            raise BundleError(f"{path / name}: changed since the bundle was written (SHA-256)")
        files[name] = data
    return files


def bundle_id_of(path: Path | str) -> str:
    """The id of the bundle in ``path`` (the SHA-256 of its manifest.json), not verified: what
    to compare with the id its author gave (then pin it)."""
    path = Path(path)
    return sha256(read_file(path / MANIFEST, SMALL))


def _minor(text: str | None) -> tuple[str, ...]:
    return tuple((text or "").split(".")[:2])


def check_versions(saved: dict[str, str | None], path: Path) -> None:
    now = versions()
    if _minor(saved.get("scikit-learn")) != _minor(now["scikit-learn"]):
        raise BundleError(
            f"{path}: fitted with scikit-learn {saved.get('scikit-learn')}, this environment has "
            f"{now['scikit-learn']}; estimators change between minor versions: install "
            f"scikit-learn=={saved.get('scikit-learn')} or retrain"
        )
    changed = [
        f"{p} {saved.get(p)} -> {now.get(p)}"
        for p in PACKAGES
        if saved.get(p) and now.get(p) and saved.get(p) != now.get(p)
    ]
    if changed:
        warnings.warn(
            f"{path}: package versions differ from the bundle's: {', '.join(changed)}",
            stacklevel=2,
        )
