"""What `load_bundle` accepts: only regular files in the folder, a manifest of the right shape,
a signature by a trusted key or a pinned id, well-formed files; and what `save_bundle` writes:
into a new or empty folder only, readable files, the same bytes for the same models.

Every refusal is a BundleError that starts with the file at fault, and `hepablate predict`
exits 2 with "bundle refused: <file>: <reason>".
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from hepablate.bundle import (
    BundleError,
    TrustStore,
    load_bundle,
    save_bundle,
    sign_bundle,
)
from hepablate.bundle.signing import SigningKey, pin_bundle, trust_key
from hepablate.cli import app
from hepablate.schemas.metrics import BinaryStudySummary, SurvivalStudySummary
from tests.bundle.synthetic import rehash, study, table, train

# Its fixtures take tens of seconds: the whole module is left out of make test-fast.
pytestmark = pytest.mark.slow

MODELS = [
    {"name": "logistic", "kind": "logistic", "grid": {"C": [1.0]}},
    {
        "name": "mlp",
        "kind": "mlp",
        "grid": {"epochs": [3], "n_members": [1], "hidden": [4], "embedding": [0]},
    },
]


@dataclass
class Saved:
    result: Any
    summary: BinaryStudySummary | SurvivalStudySummary
    folder: Path  # holds the two bundles, "logistic" and "mlp"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Saved:
    folder = tmp_path_factory.mktemp("saved")
    result, summary = train(table(), study(MODELS))
    for name in ("logistic", "mlp"):
        save_bundle(result, summary, folder / name, extraction=None, model=name)
    return Saved(result, summary, folder)


def _copy(saved: Saved, tmp_path: Path, name: str = "logistic") -> Path:
    target = tmp_path / name
    shutil.copytree(saved.folder / name, target)
    return target


def _predict(bundle: Path, tmp_path: Path, *options: str) -> Any:
    patient = tmp_path / "patient"
    patient.mkdir(exist_ok=True)
    return CliRunner().invoke(app, ["predict", str(bundle), str(patient), *options])


def _refused(run: Any, file: Path, reason: str) -> None:
    text = " ".join(run.stdout.split())  # rich wraps long lines
    assert run.exit_code == 2, run.stdout
    assert f"bundle refused: {file}: {reason}" in text, run.stdout
    assert "This is a bug" not in run.stdout


def test_save_writes_only_into_a_new_or_empty_folder(saved: Saved, tmp_path: Path) -> None:
    """It never removes anything: a folder with files, or a subfolder, is refused as it is."""
    occupied = tmp_path / "occupied"
    (occupied / "sub").mkdir(parents=True)
    (occupied / "notes.txt").write_text("mine\n", encoding="utf-8")
    with pytest.raises(BundleError, match=r"occupied: not empty.*nothing is removed"):
        save_bundle(saved.result, saved.summary, occupied, extraction=None, model="logistic")
    assert sorted(p.name for p in occupied.iterdir()) == ["notes.txt", "sub"]
    (tmp_path / "a_file").write_text("x", encoding="utf-8")
    with pytest.raises(BundleError, match="a_file: not a folder"):
        save_bundle(saved.result, saved.summary, tmp_path / "a_file", extraction=None)
    empty = tmp_path / "empty"
    empty.mkdir()
    save_bundle(saved.result, saved.summary, empty, extraction=None, model="logistic")
    assert load_bundle(empty).manifest.model == "logistic"


def test_every_file_is_readable_by_all(saved: Saved, tmp_path: Path) -> None:
    """0644 less the umask, the weights too (safetensors alone writes 0600)."""
    previous = os.umask(0o022)
    try:
        save_bundle(saved.result, saved.summary, tmp_path / "b", extraction=None, model="mlp")
    finally:
        os.umask(previous)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "b").iterdir()}
    assert "model.safetensors" in modes and set(modes.values()) == {0o644}, modes


def test_the_same_models_give_the_same_bundle_id(saved: Saved, tmp_path: Path) -> None:
    """A copy of the result (other memory ids) saved later: the same manifest bytes, so the
    same id; only the signature (its time) may differ."""
    first = save_bundle(saved.result, saved.summary, tmp_path / "1", extraction=None)
    again = copy.deepcopy(saved.result)
    second = save_bundle(again, saved.summary, tmp_path / "2", extraction=None)
    for name in sorted(p.name for p in first.iterdir() if p.name != "signature.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert load_bundle(first).id == load_bundle(second).id


def _fifo(bundle: Path) -> Path:
    os.mkfifo(bundle / "pipe")
    return bundle / "pipe"


def _folder(bundle: Path) -> Path:
    (bundle / "sub").mkdir()
    (bundle / "sub" / "x.json").write_text("{}", encoding="utf-8")
    return bundle / "sub"


def _folder_link(bundle: Path) -> Path:
    (bundle / "elsewhere").symlink_to(bundle.parent, target_is_directory=True)
    return bundle / "elsewhere"


def _listed_file_as_link(bundle: Path) -> Path:
    """A listed file replaced by a link to an identical copy outside: its hash would match."""
    outside = bundle.parent / "schema-outside.json"
    shutil.move(bundle / "schema.json", outside)
    (bundle / "schema.json").symlink_to(outside)
    return bundle / "schema.json"


def _dev_zero(bundle: Path) -> Path:
    (bundle / "model.skops").unlink()
    (bundle / "model.skops").symlink_to("/dev/zero")
    return bundle / "model.skops"


ENTRIES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "fifo": (_fifo, "a FIFO"),
    "folder": (_folder, "a folder"),
    "folder link": (_folder_link, "a symbolic link"),
    "listed file as a link outside": (_listed_file_as_link, "a symbolic link"),
    "link to /dev/zero": (_dev_zero, "a symbolic link"),
}


@pytest.mark.parametrize("case", sorted(ENTRIES))
def test_only_regular_files_directly_in_the_folder(saved: Saved, tmp_path: Path, case: str) -> None:
    make, what = ENTRIES[case]
    bundle = _copy(saved, tmp_path)
    entry = make(bundle)
    with pytest.raises(BundleError, match=rf"{entry.name}: {what}.*; a bundle holds only regular"):
        load_bundle(bundle)
    _refused(_predict(bundle, tmp_path), entry, what)


def test_a_device_is_refused_without_reading_it(saved: Saved, tmp_path: Path) -> None:
    bundle = _copy(saved, tmp_path)
    (bundle / "model.skops").unlink()
    try:
        os.mknod(bundle / "model.skops", 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero
    except PermissionError:
        pytest.skip("making a device node needs privileges this run lacks")
    _refused(_predict(bundle, tmp_path), bundle / "model.skops", "a device")


def _json_edit(name: str, value: Any) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        (bundle / name).write_text(json.dumps(value), encoding="utf-8")

    return edit


def _network_class(name: str) -> Callable[[Path], None]:
    """model.json naming another allow-listed class, its state kept."""

    def edit(bundle: Path) -> None:
        description = json.loads((bundle / "model.json").read_bytes())
        (bundle / "model.json").write_text(json.dumps({**description, "class": name}))

    return edit


def _bytes_edit(name: str, data: bytes) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        (bundle / name).write_bytes(data)

    return edit


# Malformed files of a bundle whose hashes and signature are then made valid again (as if its
# trusted author had written them): what is refused after the signature, each naming its file.
MALFORMED: dict[str, tuple[str, str, Callable[[Path], None], str]] = {
    "skops not a zip": (
        "logistic",
        "preparation.skops",
        _bytes_edit("preparation.skops", b"not a zip file"),
        "not a readable skops file (BadZipFile",
    ),
    "skops empty": (
        "logistic",
        "model.skops",
        _bytes_edit("model.skops", b""),
        "not a readable skops file",
    ),
    "bad safetensors header": (
        "mlp",
        "model.safetensors",
        _bytes_edit("model.safetensors", b"\xff\xff\xff\xff\xff\xff\xff\x7f{}"),
        "not a readable safetensors file",
    ),
    "invalid JSON": ("logistic", "schema.json", _bytes_edit("schema.json", b"{"), "not valid JSON"),
    "schema of the wrong shape": (
        "logistic",
        "schema.json",
        _json_edit("schema.json", {"columns": 3}),
        "columns: Input should be a valid list",
    ),
    "thresholds of the wrong shape": (
        "logistic",
        "thresholds.json",
        _json_edit("thresholds.json", {"threshold": 0.5, "risk_groups": {"cuts": [1]}}),
        "risk_groups.labels: Field required",
    ),
    "an unknown extraction setting": (
        "logistic",
        "extraction.json",
        _json_edit("extraction.json", {"no_such_setting": 1}),
        "no_such_setting: Extra inputs are not permitted",
    ),
    "an unknown network class": (
        "mlp",
        "model.json",
        _json_edit("model.json", {"class": "os.system", "state": {}}),
        "unknown model class 'os.system'",
    ),
    "another kind's network class": (
        "mlp",
        "model.json",
        _network_class("hepablate.models.tabular.DeepSurv"),
        "a hepablate.models.tabular.DeepSurv network, but the manifest's kind 'mlp' is a "
        "hepablate.models.tabular.MLPClassifier",
    ),
    "a network state that does not fit": (
        "mlp",
        "model.json",
        _json_edit("model.json", {"class": "hepablate.models.tabular.MLPClassifier", "state": {}}),
        "the network cannot be rebuilt",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_file_is_refused_by_name(saved: Saved, tmp_path: Path, case: str) -> None:
    kind, name, edit, reason = MALFORMED[case]
    bundle = _copy(saved, tmp_path, kind)
    edit(bundle)
    rehash(bundle)
    sign_bundle(bundle)
    with pytest.raises(BundleError, match=rf"{name}: "):
        load_bundle(bundle)
    _refused(_predict(bundle, tmp_path), bundle / name, reason)


def _manifest_edit(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        manifest = json.loads((bundle / "manifest.json").read_bytes())
        replaced = change(manifest)
        (bundle / "manifest.json").write_text(
            json.dumps(manifest if replaced is None else replaced), encoding="utf-8"
        )

    return edit


MANIFESTS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "not an object": (lambda m: [m], "not a JSON object"),
    "files a list": (lambda m: m.update(files=list(m["files"])), "files: Input should be"),
    "a digest not hex": (
        lambda m: m["files"].update({"schema.json": "x" * 64}),
        "files.schema.json: String should match pattern",
    ),
    "a path as a name": (
        lambda m: m["files"].update({"../escape": "0" * 64}),
        "files.../escape.[key]: String should match pattern",
    ),
    "another file listed": (
        lambda m: m["files"].update({"run.py": "0" * 64}),
        "lists extraction.json",
    ),
    "an unknown key": (lambda m: m.update(extra=1), "extra: Extra inputs are not permitted"),
    "a missing key": (lambda m: m.__delitem__("kind"), "kind: Field required"),
    "format version 1": (
        lambda m: m.update(format_version=1),
        "format 'hepablate-bundle' version 1; this hepablate reads hepablate-bundle 2 "
        "(retrain to write it)",
    ),
}


@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_a_manifest_of_the_wrong_shape_is_refused(saved: Saved, tmp_path: Path, case: str) -> None:
    change, reason = MANIFESTS[case]
    bundle = _copy(saved, tmp_path)
    _manifest_edit(change)(bundle)
    _refused(_predict(bundle, tmp_path), bundle / "manifest.json", reason)


def test_a_changed_file_with_recomputed_hashes_is_refused(saved: Saved, tmp_path: Path) -> None:
    """The hashes all match again, but the manifest is no longer the one that was signed; with
    the signature removed too, the bundle is unsigned and its new id pinned by nobody."""
    bundle = _copy(saved, tmp_path)
    thresholds = json.loads((bundle / "thresholds.json").read_bytes())
    thresholds["risk_groups"]["cuts"] = [0.9, 0.95]  # everyone "low risk"
    (bundle / "thresholds.json").write_text(json.dumps(thresholds), encoding="utf-8")
    rehash(bundle)
    _refused(_predict(bundle, tmp_path), bundle / "manifest.json", "changed after it was signed")
    (bundle / "signature.json").unlink()
    _refused(_predict(bundle, tmp_path), bundle, "not signed")


def test_a_changed_digest_file_is_blamed_on_itself(saved: Saved, tmp_path: Path) -> None:
    bundle = _copy(saved, tmp_path)
    (bundle / "manifest.sha256").write_text("0" * 64 + "\n", encoding="utf-8")
    _refused(_predict(bundle, tmp_path), bundle / "manifest.sha256", "changed since")


def test_another_signer_is_refused_until_trusted_or_pinned(
    saved: Saved, tmp_path: Path, hepablate_home: Path
) -> None:
    bundle = _copy(saved, tmp_path)
    other = SigningKey(Ed25519PrivateKey.generate())
    sign_bundle(bundle, other, signer="colleague@clinic")
    refused = _predict(bundle, tmp_path)
    _refused(refused, bundle, f"signed by colleague@clinic with key {other.key_id[:16]}")
    assert "hepablate bundle trust KEY_FILE --name NAME" in " ".join(refused.stdout.split())

    # The service's own store: trusts that key, and not the user's (which signed nothing here).
    service = tmp_path / "service-trust.json"
    (tmp_path / "colleague.pem").write_bytes(other.public_pem())
    trust_key(tmp_path / "colleague.pem", "colleague", service)
    accepted = load_bundle(bundle, trust=TrustStore.from_file(service))
    assert accepted.trust.how == "signature" and accepted.trust.key_name == "colleague"
    assert accepted.trust.signer == "colleague@clinic"
    with pytest.raises(BundleError, match="does not trust"):
        load_bundle(saved.folder / "logistic", trust=TrustStore.from_file(service))

    # Pinned by the user: accepted by its id, and said so.
    assert not (hepablate_home / "trust.json").exists()
    pinned_store = tmp_path / "pins.json"
    pin_bundle(accepted.id, "from the colleague by phone", pinned_store)
    pinned = load_bundle(bundle, trust=TrustStore.from_file(pinned_store))
    assert (
        pinned.trust.how == "pinned" and pinned.trust.pinned_by == f"the trust store {pinned_store}"
    )
    assert "colleague@clinic" in pinned.trust.describe()


def test_a_bundle_id_that_is_not_this_bundles_is_refused(saved: Saved, tmp_path: Path) -> None:
    bundle = saved.folder / "logistic"
    other = load_bundle(saved.folder / "mlp").id
    _refused(_predict(bundle, tmp_path, "--bundle-id", other), bundle, "is bundle")
    run = _predict(bundle, tmp_path, "--bundle-id", "abc")
    assert run.exit_code == 2 and "not a SHA-256" in run.stdout
