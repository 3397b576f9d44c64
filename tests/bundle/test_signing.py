"""Signatures, keys and trust stores (hepablate.bundle.signing), on manifests made up here."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hepablate.bundle import BundleError
from hepablate.bundle.signing import (
    SigningKey,
    TrustedKey,
    TrustStore,
    TrustStoreError,
    check_trust,
    hepablate_home,
    load_signing_key,
    make_signature,
    pin_bundle,
    trust_key,
    untrust,
    user_key,
)

MANIFEST = b'{"format": "hepablate-bundle", "files": {}}\n'
BUNDLE_ID = hashlib.sha256(MANIFEST).hexdigest()
FOLDER = Path("/bundles/b")


def _key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.generate())


def _store(*keys: SigningKey, pinned: frozenset[str] = frozenset()) -> TrustStore:
    trusted = tuple(TrustedKey(f"key{i}", k.key_id) for i, k in enumerate(keys))
    return TrustStore(keys=trusted, pinned=pinned, source="the test's store")


def test_the_home_folder_is_configured_or_the_users_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HEPABLATE_HOME", str(tmp_path / "mine"))
    assert hepablate_home() == tmp_path / "mine"
    monkeypatch.delenv("HEPABLATE_HOME")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert hepablate_home() == tmp_path / "xdg" / "hepablate"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hepablate_home() == tmp_path / "home" / ".config" / "hepablate"


def test_the_users_key_is_made_once_private_and_trusted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = user_key(home)
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "signing-key.pem").stat().st_mode) == 0o600
    assert user_key(home).key_id == key.key_id  # the same key the second time
    public = serialization.load_pem_public_key((home / "signing-key.pub.pem").read_bytes())
    assert isinstance(public, type(key.public)) and public == key.public
    assert TrustStore.user(home).key_name(key.key_id) == "own key"
    assert TrustStore.user(tmp_path / "nobody").keys == ()  # no key made by reading
    assert not (tmp_path / "nobody").exists()
    assert TrustStore.from_file(home / "trust.json").keys == ()  # a file's store: its keys only
    assert sorted(p.name for p in home.iterdir()) == ["signing-key.pem", "signing-key.pub.pem"]
    (tmp_path / "a_file").write_text("", encoding="utf-8")
    with pytest.raises(TrustStoreError, match="cannot make a signing key"):
        user_key(tmp_path / "a_file")


def test_a_key_others_can_read_or_of_another_kind_is_refused(tmp_path: Path) -> None:
    user_key(tmp_path)
    (tmp_path / "signing-key.pem").chmod(0o644)
    with pytest.raises(TrustStoreError, match=r"readable by others \(mode 644\); chmod 600"):
        user_key(tmp_path)
    other = tmp_path / "ec.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    other.chmod(0o600)
    with pytest.raises(TrustStoreError, match=r"ec\.pem: not an Ed25519 key \(ECPrivateKey\)"):
        load_signing_key(other)
    (tmp_path / "junk.pem").write_text("junk", encoding="utf-8")
    (tmp_path / "junk.pem").chmod(0o600)
    with pytest.raises(TrustStoreError, match="not an unencrypted PEM private key"):
        load_signing_key(tmp_path / "junk.pem")


def test_a_signature_by_a_trusted_key_accepts_the_bundle() -> None:
    key = _key()
    signature = make_signature(BUNDLE_ID, key, signer="alice@lab")
    trust = check_trust(FOLDER, MANIFEST, signature, _store(_key(), key))
    assert (trust.how, trust.key_name, trust.signer) == ("signature", "key1", "alice@lab")
    assert trust.bundle_id == BUNDLE_ID and trust.key_id == key.key_id
    assert trust.describe().startswith(f"signed by alice@lab on {trust.signed_at} with key ")
    assert trust.as_dict()["accepted_by"] == "signature"


def _edited(signature: bytes, **fields: object) -> bytes:
    content = json.loads(signature)
    content.update(fields)
    return json.dumps(content).encode()


def test_a_changed_signature_or_manifest_is_refused() -> None:
    key, other = _key(), _key()
    store = _store(key, other)
    signature = make_signature(BUNDLE_ID, key, signer="alice@lab")
    forged_signer = _edited(signature, signer="mallory@lab")
    with pytest.raises(BundleError, match=r"b/signature\.json: the signature does not verify"):
        check_trust(FOLDER, MANIFEST, forged_signer, store)
    # Another trusted key's public key and id put in: the signature is still alice's.
    swapped = _edited(
        signature,
        public_key=json.loads(make_signature(BUNDLE_ID, other))["public_key"],
        key_id=other.key_id,
    )
    with pytest.raises(BundleError, match="does not verify"):
        check_trust(FOLDER, MANIFEST, swapped, store)
    with pytest.raises(BundleError, match="key_id is not the SHA-256 of its public_key"):
        check_trust(FOLDER, MANIFEST, _edited(signature, key_id="0" * 64), store)
    with pytest.raises(BundleError, match=r"b/manifest\.json: changed after it was signed"):
        check_trust(FOLDER, MANIFEST + b" ", signature, store)
    for broken in (b"{", b"[]", _edited(signature, algorithm="RSA"), _edited(signature, x=1)):
        with pytest.raises(BundleError, match=r"signature\.json: not a hepablate signature"):
            check_trust(FOLDER, MANIFEST, broken, store)


def test_an_untrusted_or_missing_signature_is_refused_with_the_fix() -> None:
    signature = make_signature(BUNDLE_ID, _key(), signer="bob@elsewhere")
    with pytest.raises(BundleError) as untrusted:
        check_trust(FOLDER, MANIFEST, signature, _store(_key()))
    assert "signed by bob@elsewhere" in str(untrusted.value)
    assert "the test's store does not trust" in str(untrusted.value)
    assert "hepablate bundle trust KEY_FILE --name NAME" in str(untrusted.value)
    assert "--bundle-id ID" in str(untrusted.value)
    with pytest.raises(BundleError, match=r"not signed, and the test's store does not pin"):
        check_trust(FOLDER, MANIFEST, None, _store(_key()))


def test_a_pinned_id_accepts_the_bundle_and_another_id_refuses_it() -> None:
    key = _key()
    signature = make_signature(BUNDLE_ID, _key(), signer="bob@elsewhere")
    by_store = check_trust(FOLDER, MANIFEST, None, _store(pinned=frozenset({BUNDLE_ID})))
    assert by_store.how == "pinned" and by_store.pinned_by == "the test's store"
    assert by_store.describe() == "its id is pinned (the test's store); unsigned"
    by_option = check_trust(FOLDER, MANIFEST, signature, _store(), bundle_id=BUNDLE_ID.upper())
    assert by_option.how == "pinned" and by_option.signer == "bob@elsewhere"
    assert "a key not trusted here" in by_option.describe()
    trusted = make_signature(BUNDLE_ID, key)
    with pytest.raises(BundleError, match=f"is bundle {BUNDLE_ID}, not the pinned {'1' * 64}"):
        check_trust(FOLDER, MANIFEST, trusted, _store(key), bundle_id="1" * 64)
    with pytest.raises(BundleError, match="not a SHA-256"):
        check_trust(FOLDER, MANIFEST, trusted, _store(key), bundle_id="abc")
    # A pin does not excuse a signature that no longer verifies.
    with pytest.raises(BundleError, match="does not verify"):
        check_trust(FOLDER, MANIFEST, _edited(signature, signer="x"), _store(), BUNDLE_ID)


def test_keys_and_pins_are_added_and_removed(tmp_path: Path) -> None:
    store = tmp_path / "trust.json"
    alice = _key()
    (tmp_path / "alice.pem").write_bytes(alice.public_pem())
    assert trust_key(tmp_path / "alice.pem", "alice", store) == TrustedKey("alice", alice.key_id)
    bob = _key()
    openssh = bob.public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (tmp_path / "bob.pub").write_bytes(openssh + b" bob@laptop\n")
    trust_key(tmp_path / "bob.pub", "bob", store)
    with pytest.raises(TrustStoreError, match="trusted already, as 'alice'"):
        trust_key(tmp_path / "alice.pem", "alice2", store)
    with pytest.raises(TrustStoreError, match="a key named 'alice' is trusted already"):
        (tmp_path / "carol.pem").write_bytes(_key().public_pem())
        trust_key(tmp_path / "carol.pem", "alice", store)
    with pytest.raises(TrustStoreError, match="--name 'a b'"):
        trust_key(tmp_path / "carol.pem", "a b", store)
    assert pin_bundle(BUNDLE_ID.upper(), "by phone", store) == BUNDLE_ID
    loaded = TrustStore.from_file(store)
    assert [k.name for k in loaded.keys] == ["alice", "bob"] and loaded.pinned == {BUNDLE_ID}
    assert untrust("alice", store) == [f"key alice ({alice.key_id[:16]})"]
    assert untrust(BUNDLE_ID, store) == [f"pinned bundle {BUNDLE_ID}"]
    assert untrust("nobody", store) == []
    assert [k.name for k in TrustStore.from_file(store).keys] == ["bob"]


def test_a_damaged_trust_store_is_refused_by_name(tmp_path: Path) -> None:
    store = tmp_path / "trust.json"
    store.write_text("{", encoding="utf-8")
    with pytest.raises(TrustStoreError, match=r"trust\.json: not a hepablate trust store"):
        TrustStore.from_file(store)
    (tmp_path / "alice.pem").write_bytes(_key().public_pem())
    store.unlink()
    trust_key(tmp_path / "alice.pem", "alice", store)
    content = json.loads(store.read_bytes())
    content["keys"][0]["key_id"] = "0" * 64  # the name now points at another key's id
    store.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(TrustStoreError, match="key 'alice': key_id does not match its key"):
        TrustStore.from_file(store)
    assert issubclass(TrustStoreError, BundleError)  # `predict` reports it, exit 2
