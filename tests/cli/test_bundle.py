"""`hepablate bundle key|sign|verify|trust|pin`, as a user runs them (each test in its own
hepablate folder, so its key and trust store are its own)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner, Result

from hepablate.bundle import bundle_id_of, save_bundle
from hepablate.cli import app
from tests.bundle.synthetic import study, table, train


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle signed by the session's key: another user's, for each test's own home."""
    result, summary = train(
        table(), study([{"name": "logistic", "kind": "logistic", "grid": {"C": [1.0]}}])
    )
    return save_bundle(result, summary, tmp_path_factory.mktemp("cli") / "b", extraction=None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("HEPABLATE_HOME", str(folder))
    return folder


def _run(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert "This is a bug" not in result.output, result.output
    return result


def _text(result: Result) -> str:
    return " ".join(result.stdout.split())


def test_key_is_made_on_first_use_and_exported(home: Path, tmp_path: Path) -> None:
    shown = _run("bundle", "key", "--out", str(tmp_path / "me.pem"))
    assert shown.exit_code == 0, shown.stdout
    pem = (tmp_path / "me.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----") and pem.decode() in shown.stdout
    assert (home / "signing-key.pem").is_file() and "keep it private" in shown.stdout
    assert b"PRIVATE" not in pem and "PRIVATE KEY-----" not in shown.stdout
    again = _run("bundle", "key")
    assert again.exit_code == 0 and pem.decode() in again.stdout  # the same key
    exists = _run("bundle", "key", "--out", str(tmp_path / "me.pem"))
    assert exists.exit_code == 2 and "exists already" in exists.stdout


def test_a_foreign_bundle_is_verified_once_its_key_is_trusted(
    home: Path, signed: Path, tmp_path: Path, hepablate_home: Path
) -> None:
    bundle_id = bundle_id_of(signed)
    refused = _run("bundle", "verify", str(signed))
    assert refused.exit_code == 2 and f"bundle {bundle_id}" in refused.stdout
    assert "does not trust" in _text(refused)

    public = tmp_path / "colleague.pem"
    shutil.copy(hepablate_home / "signing-key.pub.pem", public)
    nameless = _run("bundle", "trust", str(public))
    assert nameless.exit_code == 2 and "--name NAME is needed" in nameless.stdout
    added = _run("bundle", "trust", str(public), "--name", "colleague")
    assert added.exit_code == 0 and "as colleague" in added.stdout
    listed = _run("bundle", "trust")
    assert "colleague" in listed.stdout and "own key" not in listed.stdout  # no key of mine yet
    verified = _run("bundle", "verify", str(signed))
    assert verified.exit_code == 0, verified.stdout
    assert f"bundle {bundle_id}" in verified.stdout and "(trusted: colleague)" in verified.stdout

    removed = _run("bundle", "trust", "--remove", "colleague")
    assert removed.exit_code == 0 and "removed key colleague" in removed.stdout
    assert _run("bundle", "verify", str(signed)).exit_code == 2
    assert _run("bundle", "trust", "--remove", "colleague").exit_code == 2

    pinned = _run("bundle", "pin", bundle_id, "--note", "read out by its author")
    assert pinned.exit_code == 0 and bundle_id in pinned.stdout
    verified = _run("bundle", "verify", str(signed))
    assert verified.exit_code == 0 and "its id is pinned" in _text(verified)
    assert _run("bundle", "verify", str(signed), "--bundle-id", "0" * 64).exit_code == 2


def test_sign_with_another_key_and_verify_against_another_store(
    home: Path, signed: Path, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(signed, bundle)
    private = Ed25519PrivateKey.generate()
    key_file = tmp_path / "lab.pem"
    key_file.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_file.chmod(0o600)
    resigned = _run("bundle", "sign", str(bundle), "--key", str(key_file), "--signer", "lab")
    assert resigned.exit_code == 0 and "signed bundle" in resigned.stdout
    public = tmp_path / "lab.pub.pem"
    public.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    service = tmp_path / "service.json"
    trusted = _run("bundle", "trust", str(public), "--name", "lab", "--trust-store", str(service))
    assert trusted.exit_code == 0, trusted.stdout
    verified = _run("bundle", "verify", str(bundle), "--trust-store", str(service))
    assert verified.exit_code == 0, verified.stdout
    assert "signed by lab" in verified.stdout and "(trusted: lab)" in verified.stdout
    # The user's own store does not hold the lab's key; the service's does not hold theirs.
    assert _run("bundle", "verify", str(bundle)).exit_code == 2

    (bundle / "schema.json").write_text("{}", encoding="utf-8")
    broken = _run("bundle", "sign", str(bundle))
    assert broken.exit_code == 2 and "schema.json: changed" in _text(broken)
