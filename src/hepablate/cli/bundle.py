"""``hepablate bundle``: sign a model bundle, verify one, and manage whom you trust.

A bundle is accepted (by ``predict``, ``bundle verify`` and later the service) only when it is
signed by a trusted key or its id is pinned. Your own key is made by the first ``hepablate
train`` (or ``hepablate bundle key``) in your hepablate folder (``$HEPABLATE_HOME``, else
``~/.config/hepablate``) and trusted by default; give its public key (``hepablate bundle key
--out FILE``) to whoever should trust your bundles.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from hepablate.cli._errors import EXIT_INVALID

__all__ = ["bundle_app"]

bundle_app = typer.Typer(
    name="bundle",
    help="Sign and verify model bundles; trust keys and pin bundle ids.",
    no_args_is_help=True,
)

_STORE_HELP = "A trust store other than yours (a service's trust.json), to read or change."
TrustStoreOption = Annotated[
    Path | None, typer.Option("--trust-store", metavar="FILE", help=_STORE_HELP)
]


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(console: Console, message: str) -> typer.Exit:
    console.print(f"[red]ERROR[/] {escape(message)}")
    return typer.Exit(EXIT_INVALID)


@bundle_app.command()
def sign(
    bundle_dir: Annotated[Path, typer.Argument(help="The bundle folder.")],
    key: Annotated[
        Path | None,
        typer.Option("--key", metavar="FILE", help="A private Ed25519 key (PEM); default: yours."),
    ] = None,
    signer: Annotated[
        str | None, typer.Option("--signer", help="The name to sign as; default: user@host.")
    ] = None,
) -> None:
    """Sign a bundle with your key (or --key), replacing its signature.

    Its files are checked first. Signing vouches for the bundle: sign only one you made or
    reviewed.
    """
    from hepablate.bundle import BundleError, sign_bundle
    from hepablate.bundle.signing import load_signing_key, user_key

    console = _console()
    try:
        signing_key = user_key() if key is None else load_signing_key(key)
        bundle_id = sign_bundle(bundle_dir, signing_key, signer)
    except BundleError as exc:
        raise _fail(console, str(exc)) from None
    console.print(f"signed bundle {bundle_id} with key {signing_key.key_id}")


@bundle_app.command()
def verify(
    bundle_dir: Annotated[Path, typer.Argument(help="The bundle folder.")],
    bundle_id: Annotated[
        str | None,
        typer.Option("--bundle-id", metavar="SHA256", help="Accept only this exact bundle."),
    ] = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Check a bundle as `predict` would and say who signed it and why it is trusted.

    Every file, its types, its signature or pinned id; exits 2 when it is refused.
    """
    from hepablate.bundle import BundleError, TrustStore, bundle_id_of, load_bundle

    console = _console()
    try:
        store = None if trust_store is None else TrustStore.from_file(trust_store)
        bundle = load_bundle(bundle_dir, trust=store, bundle_id=bundle_id)
    except BundleError as exc:
        with contextlib.suppress(BundleError):  # no readable manifest: the refusal says so
            console.print(f"bundle {bundle_id_of(bundle_dir)} (SHA-256 of its manifest.json)")
        raise _fail(console, f"bundle refused: {exc}") from None
    console.print(f"bundle {bundle.id}")
    console.print(f"  model {escape(bundle.manifest.model)} ({bundle.manifest.kind})")
    console.print(f"  accepted: {escape(bundle.trust.describe())}")


@bundle_app.command()
def trust(
    public_key: Annotated[
        Path | None,
        typer.Argument(help="A public key file (PEM, or OpenSSH ssh-ed25519) to trust."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="What to call the key (its owner).")
    ] = None,
    remove: Annotated[
        str | None,
        typer.Option("--remove", metavar="NAME_OR_ID", help="Stop trusting a key or a pin."),
    ] = None,
    trust_store: TrustStoreOption = None,
) -> None:
    """Trust a public key, stop trusting a key or pin (--remove), or list what is trusted.

    `trust KEY_FILE --name NAME` accepts every bundle that key signs; with no argument, the
    trusted keys (your own included) and pinned ids are listed.
    """
    from hepablate.bundle import BundleError, TrustStore
    from hepablate.bundle.signing import trust_key, untrust

    console = _console()
    try:
        if remove is not None:
            removed = untrust(remove, trust_store)
            if not removed:
                raise _fail(console, f"{remove}: no trusted key or pinned bundle of that name")
            for what in removed:
                console.print(f"removed {escape(what)}")
            return
        if public_key is not None:
            if name is None:
                raise _fail(console, "--name NAME is needed: who the key belongs to")
            added = trust_key(public_key, name, trust_store)
            console.print(f"trusting key {added.key_id} as {escape(added.name)}")
            return
        store = TrustStore.user() if trust_store is None else TrustStore.from_file(trust_store)
    except BundleError as exc:
        raise _fail(console, str(exc)) from None
    console.print(f"{escape(store.source)}:")
    for entry in store.keys:
        console.print(f"  key {entry.key_id}  {escape(entry.name)}")
    for pinned in sorted(store.pinned):
        console.print(f"  pinned bundle {pinned}")
    if not store.keys and not store.pinned:
        console.print("  nothing trusted yet")


@bundle_app.command()
def pin(
    bundle_id: Annotated[str, typer.Argument(metavar="SHA256", help="The bundle's id.")],
    note: Annotated[str, typer.Option("--note", help="Where the id came from.")] = "",
    trust_store: TrustStoreOption = None,
) -> None:
    """Accept the bundle with this id, signed or not.

    The id is the SHA-256 of its manifest.json (`hepablate bundle verify` prints it); pin only
    an id its author gave you by other means.
    """
    from hepablate.bundle import BundleError
    from hepablate.bundle.signing import pin_bundle

    console = _console()
    try:
        pinned = pin_bundle(bundle_id, note, trust_store)
    except BundleError as exc:
        raise _fail(console, str(exc)) from None
    console.print(f"pinned bundle {pinned}")


@bundle_app.command()
def key(
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Also write the public key to this file."),
    ] = None,
) -> None:
    """Print your public key and its id (the key is made on first use).

    Others `trust` this public key to accept your bundles; the private key stays in your
    hepablate folder.
    """
    from hepablate.bundle import BundleError
    from hepablate.bundle.signing import user_key

    console = _console()
    if out is not None and (out.exists() or out.is_symlink()):
        raise _fail(console, f"{out}: exists already; choose another file")
    try:
        signing_key = user_key()
    except BundleError as exc:
        raise _fail(console, str(exc)) from None
    if out is not None:
        out.write_bytes(signing_key.public_pem())
    typer.echo(signing_key.public_pem().decode("ascii"), nl=False)
    console.print(f"key id {signing_key.key_id}")
    console.print(f"private key {escape(str(signing_key.path))} (keep it private)")
    if out is not None:
        console.print(f"public key written to {escape(str(out))}")
