"""Where a bundle comes from: Ed25519 signatures (``cryptography``), keys and a trust store.

A bundle's id is the SHA-256 of its ``manifest.json``, which holds the SHA-256 of every other
file; ``signature.json`` beside it signs that id (with the signer's name and the time), so it
vouches for every byte of the bundle. It is not listed in the manifest: signing does not change
the id, and a bundle can be signed again by someone else (a reviewer, an institution).

A bundle is accepted only when its signature verifies against a trusted key, or when its id is
pinned (the user got the id from its author by other means). Changed files with recomputed
hashes change the id, so the signature no longer matches and no pin names it.

The user's keys (``keys.py``, re-exported here) and trust store live in ``hepablate_home()``,
outside any project and bundle:

- ``signing-key.pem``: the private key (PKCS #8 PEM, mode 0600, the folder 0700), made on first
  use by ``hepablate train``; it never leaves the folder;
- ``signing-key.pub.pem``: its public key, what others add to their trust store;
- ``trust.json``: the trusted public keys by name and the pinned bundle ids.

The user's own key is trusted by default (``TrustStore.user``). A service passes its own store
(``TrustStore.from_file``), which trusts only the keys and ids in that file.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import json
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hepablate.bundle._errors import BundleError
from hepablate.bundle._files import read_file
from hepablate.bundle.keys import (
    HOME_ENV,
    PRIVATE_KEY,
    PUBLIC_KEY,
    SMALL_FILE,
    SigningKey,
    TrustStoreError,
    hepablate_home,
    key_id,
    load_public_key,
    load_signing_key,
    private_folder,
    raw_public_key,
    user_key,
)

__all__ = [
    "HOME_ENV",
    "PRIVATE_KEY",
    "PUBLIC_KEY",
    "SIGNATURE",
    "TRUST_FILE",
    "SigningKey",
    "Trust",
    "TrustStore",
    "TrustStoreError",
    "TrustedKey",
    "check_trust",
    "hepablate_home",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "make_signature",
    "pin_bundle",
    "trust_key",
    "untrust",
    "user_key",
]

TRUST_FILE = "trust.json"
SIGNATURE = "signature.json"
SIGNATURE_FORMAT = "hepablate-bundle-signature"
TRUST_FORMAT = "hepablate-trust"
_SHA256 = r"^[0-9a-f]{64}$"
_NAME = r"^[A-Za-z0-9_.@+-]{1,64}$"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, size: int, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"{what} is not base64") from None
    if len(data) != size:
        raise ValueError(f"{what} has {len(data)} bytes, not {size}")
    return data


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _signer() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        user = "unknown"
    return f"{user}@{socket.gethostname() or 'unknown'}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _SignatureFile(_Strict):
    format: Literal["hepablate-bundle-signature"]
    version: Literal[1]
    algorithm: Literal["Ed25519"]
    bundle_id: str = Field(pattern=_SHA256)
    key_id: str = Field(pattern=_SHA256)
    public_key: str = Field(max_length=100)
    signer: str = Field(max_length=200)
    signed_at: str = Field(max_length=40)
    signature: str = Field(max_length=200)


def _message(fields: dict[str, Any]) -> bytes:
    """What is signed: every field of ``signature.json`` but the signature, canonical JSON."""
    unsigned = {k: v for k, v in fields.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def make_signature(bundle_id: str, key: SigningKey, signer: str | None = None) -> bytes:
    """The content of ``signature.json`` for the bundle whose id is ``bundle_id``."""
    fields: dict[str, Any] = {
        "format": SIGNATURE_FORMAT,
        "version": 1,
        "algorithm": "Ed25519",
        "bundle_id": bundle_id,
        "key_id": key.key_id,
        "public_key": _b64(raw_public_key(key.public)),
        "signer": signer or _signer(),
        "signed_at": _now(),
    }
    fields["signature"] = _b64(key.private.sign(_message(fields)))
    return (json.dumps(fields, indent=1) + "\n").encode("utf-8")


@dataclass(frozen=True)
class _Signed:
    signer: str
    signed_at: str
    key_id: str


def _verified(path: Path, data: bytes, bundle_id: str) -> _Signed:
    """The signer of a valid signature of ``bundle_id``, or a BundleError saying what is wrong."""
    try:
        fields = json.loads(data)
        signature = _SignatureFile.model_validate(fields)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, ValidationError
        detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise BundleError(f"{path}: not a hepablate signature ({detail})") from None
    try:
        raw = _unb64(signature.public_key, 32, "public_key")
        signed = _unb64(signature.signature, 64, "signature")
    except ValueError as exc:
        raise BundleError(f"{path}: {exc}") from None
    public = Ed25519PublicKey.from_public_bytes(raw)
    if key_id(public) != signature.key_id:
        raise BundleError(f"{path}: key_id is not the SHA-256 of its public_key")
    try:
        public.verify(signed, _message(fields))
    except InvalidSignature:
        raise BundleError(f"{path}: the signature does not verify (the file was changed)") from None
    if signature.bundle_id != bundle_id:
        raise BundleError(
            f"{path.parent / 'manifest.json'}: changed after it was signed (its SHA-256 is "
            f"{bundle_id[:16]}..., {path.name} signed {signature.bundle_id[:16]}...)"
        )
    return _Signed(signature.signer, signature.signed_at, signature.key_id)


@dataclass(frozen=True)
class TrustedKey:
    name: str
    key_id: str


@dataclass(frozen=True)
class TrustStore:
    """The keys and pinned bundle ids a caller trusts; ``source`` names it in messages."""

    keys: tuple[TrustedKey, ...] = ()
    pinned: frozenset[str] = frozenset()
    source: str = "no trust store"

    @classmethod
    def from_file(cls, path: Path) -> TrustStore:
        """The keys and ids of one ``trust.json`` (a service's own, say), nothing else."""
        path = Path(path)
        content = _read_trust(path)
        return cls(
            keys=tuple(TrustedKey(k.name, k.key_id) for k in content.keys),
            pinned=frozenset(p.bundle_id for p in content.pinned),
            source=f"the trust store {path}",
        )

    @classmethod
    def user(cls, home: Path | None = None) -> TrustStore:
        """The user's trust store (``trust.json`` in ``hepablate_home()``) and their own key."""
        home = hepablate_home() if home is None else Path(home)
        store = cls.from_file(home / TRUST_FILE)
        own = _own_key_id(home)
        keys = store.keys if own is None else (TrustedKey("own key", own), *store.keys)
        return cls(keys=keys, pinned=store.pinned, source=store.source)

    def key_name(self, key: str) -> str | None:
        return next((k.name for k in self.keys if k.key_id == key), None)


def _own_key_id(home: Path) -> str | None:
    public = home / PUBLIC_KEY
    if public.exists():
        try:
            data = read_file(public, SMALL_FILE)
        except BundleError as exc:
            raise TrustStoreError(str(exc)) from None
        return key_id(load_public_key(data, str(public)))
    if (home / PRIVATE_KEY).exists():
        return user_key(home, create=False).key_id
    return None


@dataclass(frozen=True)
class Trust:
    """How a bundle was accepted: a signature of a trusted key, or its pinned id."""

    how: Literal["signature", "pinned"]
    bundle_id: str
    # The signature, when there is a valid one (trusted or not).
    signer: str | None = None
    signed_at: str | None = None
    key_id: str | None = None
    key_name: str | None = None  # the trusted key's name in the store
    pinned_by: str | None = None  # "--bundle-id" or the trust store that pins the id

    def describe(self) -> str:
        signed = (
            f"signed by {self.signer} on {self.signed_at} with key {(self.key_id or '')[:16]}"
            if self.signer
            else "unsigned"
        )
        if self.how == "signature":
            return f"{signed} (trusted: {self.key_name})"
        untrusted = ", a key not trusted here" if self.signer else ""
        return f"its id is pinned ({self.pinned_by}); {signed}{untrusted}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted_by": self.how,
            "description": self.describe(),
            "signer": self.signer,
            "signed_at": self.signed_at,
            "key_id": self.key_id,
            "key_name": self.key_name,
            "pinned_by": self.pinned_by,
        }


def check_trust(
    folder: Path,
    manifest: bytes,
    signature: bytes | None,
    store: TrustStore,
    bundle_id: str | None = None,
) -> Trust:
    """Accept the bundle whose manifest has these bytes, or raise a BundleError with the fix.

    A valid signature by a key of ``store`` accepts it; otherwise its id pinned in ``store`` or
    given as ``bundle_id`` does. A signature that does not verify is refused either way: the
    bundle was changed after it was signed. A ``bundle_id`` that is not this bundle's id is
    refused even if the bundle is signed: the caller asked for another bundle.
    """
    actual = hashlib.sha256(manifest).hexdigest()
    if bundle_id is not None:
        wanted = bundle_id.strip().lower()
        if not re.fullmatch(_SHA256, wanted):
            raise BundleError(f"bundle id {bundle_id!r}: not a SHA-256 (64 hex digits)")
        if wanted != actual:
            raise BundleError(
                f"{folder}: is bundle {actual}, not the pinned {wanted} (another bundle, or this "
                "one changed)"
            )
    signed = _verified(folder / SIGNATURE, signature, actual) if signature is not None else None
    if signed is not None:
        name = store.key_name(signed.key_id)
        if name is not None:
            return Trust("signature", actual, signed.signer, signed.signed_at, signed.key_id, name)
    pinned_by = "--bundle-id" if bundle_id is not None else None
    if pinned_by is None and actual in store.pinned:
        pinned_by = store.source
    if pinned_by is not None:
        if signed is None:
            return Trust("pinned", actual, pinned_by=pinned_by)
        return Trust(
            "pinned", actual, signed.signer, signed.signed_at, signed.key_id, pinned_by=pinned_by
        )
    pin = "or pin the id its author gave you (--bundle-id ID, or hepablate bundle pin ID)"
    if signed is None:
        raise BundleError(
            f"{folder}: not signed, and {store.source} does not pin its id: sign it if you made "
            f"it (hepablate bundle sign {folder}), {pin}"
        )
    raise BundleError(
        f"{folder}: signed by {signed.signer} with key {signed.key_id[:16]}, which "
        f"{store.source} does not trust: if you trust its author, add their public key "
        f"(hepablate bundle trust KEY_FILE --name NAME), {pin}"
    )


class _KeyEntry(_Strict):
    name: str = Field(pattern=_NAME)
    key_id: str = Field(pattern=_SHA256)
    public_key: str = Field(max_length=100)
    added: str = Field(max_length=40)


class _PinEntry(_Strict):
    bundle_id: str = Field(pattern=_SHA256)
    note: str = Field(default="", max_length=500)
    added: str = Field(max_length=40)


class _TrustFile(_Strict):
    format: Literal["hepablate-trust"] = "hepablate-trust"
    version: Literal[1] = 1
    keys: tuple[_KeyEntry, ...] = ()
    pinned: tuple[_PinEntry, ...] = ()


def _read_trust(path: Path) -> _TrustFile:
    if not path.exists():
        return _TrustFile()
    try:
        content = _TrustFile.model_validate_json(read_file(path, SMALL_FILE))
    except BundleError as exc:
        raise TrustStoreError(str(exc)) from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "the top level"
        raise TrustStoreError(
            f"{path}: not a hepablate trust store ({where}: {error['msg']})"
        ) from None
    for entry in content.keys:
        try:
            raw = _unb64(entry.public_key, 32, "public_key")
        except ValueError as exc:
            raise TrustStoreError(f"{path}: key {entry.name!r}: {exc}") from None
        if key_id(Ed25519PublicKey.from_public_bytes(raw)) != entry.key_id:
            raise TrustStoreError(f"{path}: key {entry.name!r}: key_id does not match its key")
    return content


def _write_trust(path: Path, content: _TrustFile) -> None:
    """Replace the trust store in one step (a crash leaves the old or the new one)."""
    private_folder(path.parent)
    text = json.dumps(content.model_dump(mode="json"), indent=1) + "\n"
    fd, temporary = tempfile.mkstemp(prefix=".trust-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _store_path(path: Path | None) -> Path:
    return hepablate_home() / TRUST_FILE if path is None else Path(path)


def trust_key(public_key: Path, name: str, path: Path | None = None) -> TrustedKey:
    """Add the public key (PEM or OpenSSH) in the file ``public_key`` to a trust store (default:
    the user's) under ``name``; returns it."""
    if not re.fullmatch(_NAME, name):
        raise TrustStoreError(f"--name {name!r}: 1-64 letters, digits and _ . @ + -")
    try:
        data = read_file(Path(public_key), SMALL_FILE)
    except BundleError as exc:
        raise TrustStoreError(str(exc)) from None
    public = load_public_key(data, str(public_key))
    store = _store_path(path)
    content = _read_trust(store)
    entry = _KeyEntry(
        name=name, key_id=key_id(public), public_key=_b64(raw_public_key(public)), added=_now()
    )
    for other in content.keys:
        if other.name == name and other.key_id != entry.key_id:
            raise TrustStoreError(f"{store}: a key named {name!r} is trusted already")
        if other.key_id == entry.key_id:
            raise TrustStoreError(f"{store}: this key is trusted already, as {other.name!r}")
    _write_trust(store, content.model_copy(update={"keys": (*content.keys, entry)}))
    return TrustedKey(name, entry.key_id)


def pin_bundle(bundle_id: str, note: str = "", path: Path | None = None) -> str:
    """Pin a bundle id in a trust store: that exact bundle is accepted, signed or not."""
    wanted = bundle_id.strip().lower()
    if not re.fullmatch(_SHA256, wanted):
        raise TrustStoreError(f"bundle id {bundle_id!r}: not a SHA-256 (64 hex digits)")
    store = _store_path(path)
    content = _read_trust(store)
    if all(p.bundle_id != wanted for p in content.pinned):
        entry = _PinEntry(bundle_id=wanted, note=note, added=_now())
        _write_trust(store, content.model_copy(update={"pinned": (*content.pinned, entry)}))
    return wanted


def untrust(name_or_id: str, path: Path | None = None) -> list[str]:
    """Remove a trusted key (by name or key id) or a pinned id; returns what was removed."""
    store = _store_path(path)
    content = _read_trust(store)
    wanted = name_or_id.strip()
    keys = tuple(k for k in content.keys if wanted not in (k.name, k.key_id))
    pinned = tuple(p for p in content.pinned if p.bundle_id != wanted.lower())
    removed = [f"key {k.name} ({k.key_id[:16]})" for k in content.keys if k not in keys]
    removed += [f"pinned bundle {p.bundle_id}" for p in content.pinned if p not in pinned]
    if removed:
        _write_trust(store, content.model_copy(update={"keys": keys, "pinned": pinned}))
    return removed
