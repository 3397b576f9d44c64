"""The user's Ed25519 keys (``cryptography``): where they live (``hepablate_home()``), how a
key is read (an unencrypted PEM file only its owner can read) and made on first use (complete or
not at all), and a key's id. Signatures and the trust store are ``signing.py``'s."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from hepablate.bundle._errors import BundleError
from hepablate.bundle._files import read_file, write_new

__all__ = [
    "HOME_ENV",
    "PRIVATE_KEY",
    "PUBLIC_KEY",
    "SMALL_FILE",
    "SigningKey",
    "TrustStoreError",
    "hepablate_home",
    "key_id",
    "load_public_key",
    "load_signing_key",
    "private_folder",
    "raw_public_key",
    "user_key",
]

HOME_ENV = "HEPABLATE_HOME"
PRIVATE_KEY = "signing-key.pem"
PUBLIC_KEY = "signing-key.pub.pem"
SMALL_FILE = 1 << 20  # signature, key and trust files are a few hundred bytes to kilobytes


class TrustStoreError(BundleError):
    """A key or trust-store file that cannot be read or used; the message names the file."""


def hepablate_home() -> Path:
    """The user's hepablate folder: ``$HEPABLATE_HOME``, else ``$XDG_CONFIG_HOME/hepablate``,
    else ``~/.config/hepablate``."""
    configured = os.environ.get(HOME_ENV)
    if configured:
        return Path(configured).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME")
    return (Path(config).expanduser() if config else Path.home() / ".config") / "hepablate"


def key_id(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key: names a key in signatures and the trust store."""
    return hashlib.sha256(raw_public_key(public)).hexdigest()


def raw_public_key(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class SigningKey:
    """A private Ed25519 key and where it was read from."""

    private: Ed25519PrivateKey
    path: Path | None = None

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)

    def public_pem(self) -> bytes:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def load_signing_key(path: Path) -> SigningKey:
    """A private Ed25519 key from an unencrypted PEM file that only its owner can read."""
    path = Path(path)
    try:
        data = read_file(path, SMALL_FILE)
        mode = path.stat().st_mode
    except BundleError as exc:
        raise TrustStoreError(str(exc)) from None
    if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TrustStoreError(
            f"{path}: a private key readable by others (mode {stat.S_IMODE(mode):o}); "
            f"chmod 600 {path}"
        )
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise TrustStoreError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise TrustStoreError(f"{path}: not an Ed25519 key ({type(private).__name__})")
    return SigningKey(private, path)


def load_public_key(data: bytes, source: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (``hepablate bundle key``) or OpenSSH (``ssh-ed25519``)."""
    public: object
    try:
        if data.lstrip().startswith(b"ssh-"):
            public = serialization.load_ssh_public_key(data.strip())
        else:
            public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise TrustStoreError(f"{source}: not a PEM or OpenSSH public key ({exc})") from None
    if not isinstance(public, Ed25519PublicKey):
        raise TrustStoreError(f"{source}: not an Ed25519 key ({type(public).__name__})")
    return public


def private_folder(home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)


def user_key(home: Path | None = None, *, create: bool = True) -> SigningKey:
    """The user's signing key, made (with its public key file) on first use when ``create``."""
    home = hepablate_home() if home is None else Path(home)
    path = home / PRIVATE_KEY
    if not path.exists():
        if not create:
            raise TrustStoreError(f"{path}: no signing key yet (hepablate bundle key makes one)")
        try:
            made = _new_key(home, path)
        except OSError as exc:
            raise TrustStoreError(f"{path}: cannot make a signing key ({exc.strerror})") from None
        if made is not None:
            return made
    return load_signing_key(path)


def _new_key(home: Path, path: Path) -> SigningKey | None:
    """A new key at ``path``, complete or not at all: written aside, then linked into place;
    None when another process's key got there first (then that one is used)."""
    private_folder(home)
    key = SigningKey(Ed25519PrivateKey.generate(), path)
    pem = key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    aside = home / f".{PRIVATE_KEY}.{os.getpid()}"
    aside.unlink(missing_ok=True)
    write_new(aside, pem, mode=0o600)
    try:
        os.link(aside, path)
    except FileExistsError:
        return None
    finally:
        aside.unlink()
    public = home / PUBLIC_KEY
    public.unlink(missing_ok=True)  # a stale public key of an earlier private key
    write_new(public, key.public_pem())
    return key
