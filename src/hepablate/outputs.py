"""Outputs that are never lost: checked before the work, written aside, swapped in whole.

The command line and the service write every result through these primitives:

- ``check_output_dir`` / ``check_output_file`` run before any work: the parent chain can be
  created (nothing on it is a file), the target is a folder (or a file) as expected and
  writable, and an existing non-empty folder is a previous output of the same kind (it holds
  the marker ``.hepablate-output.json`` that names the entries and files hepablate wrote) or
  the caller passed ``overwrite``; without ``overwrite`` a file hepablate did not write is
  never in the way (of the name of an output, or inside a folder the run replaces). A refused
  output raises ``OutputError`` naming the path and the reason.
- ``staged_dir`` yields a fresh sibling folder ``.<name>.partial-<host>-<pid>-<token>``; when
  the block succeeds it writes the marker and swaps the folder in at once (Linux:
  ``renameat2(RENAME_EXCHANGE)``; elsewhere two renames), so ``out`` always holds either the
  whole previous output or the whole new one. Entries of the previous folder that hepablate
  did not write (not in its marker; every entry of a foreign folder under ``overwrite``) are
  hard-linked into the new folder before the swap: a kill at any moment loses none of them.
  On an exception the staging folder is removed and ``out`` is untouched.
- ``staged_file`` does the same for one file: a temporary sibling, flushed to disk, then
  ``os.replace``.

What a killed run leaves (its ``.partial-*`` sibling; with the two-rename fallback, the
previous folder set aside as ``.<name>.old-*``) is cleaned, or put back, by the next check or
staging of the same output on the same host, once the process that made it is gone.

This module imports nothing else of hepablate.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import secrets
import shutil
import socket
import sys
import tempfile
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

__all__ = [
    "MARKER",
    "OutputError",
    "check_output_dir",
    "check_output_file",
    "read_marker",
    "staged_dir",
    "staged_file",
]

MARKER = ".hepablate-output.json"
_PARTIAL, _OLD = "partial", "old"
# Linux <linux/fcntl.h> and <linux/fs.h>
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


class OutputError(ValueError):
    """An output that cannot or must not be written; names the path and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker of a previous hepablate output in ``folder``, or None (none, or unreadable)."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict):
        return None
    if not isinstance(marker.get("kind"), str) or not isinstance(marker.get("files"), list):
        return None
    return marker


def check_output_dir(
    out: Path,
    kind: str,
    *,
    overwrite: bool = False,
    names: Collection[str] | None = None,
) -> None:
    """Refuse, before any work, an output folder that ``staged_dir`` would not write.

    ``kind`` names the command (``train``, ``demo``); ``names`` are the entries the command
    may write: without ``overwrite`` a foreign entry of that name is refused (it would be
    replaced), so a run never removes a file that hepablate did not write unless told to.
    Also cleans what a killed run on this output left (see the module's docstring).
    """
    out = _target(out)
    _check_parents(out)
    _recover(out)
    if not (out.exists() or out.is_symlink()):
        return
    if not out.is_dir():
        raise OutputError(out, "is a file; the output is a folder")
    _probe(out)
    refusal = _refusal(out, kind, overwrite=overwrite, names=names or ())
    if refusal is not None:
        raise refusal


def check_output_file(
    out: Path,
    *,
    overwrite: bool = False,
    recognise: Callable[[Path], bool] | None = None,
    what: str = "an output of hepablate",
) -> None:
    """Refuse, before any work, an output file that ``staged_file`` would not write: a folder,
    a path under a file, an unwritable place, or an existing file that ``recognise`` does not
    accept as ``what`` (without ``overwrite``)."""
    out = _target(out)
    _check_parents(out)
    if out.parent.is_dir():
        _clean_stale_files(out)
    if out.is_dir():
        raise OutputError(out, "is a folder; the output is a file")
    if not out.exists():
        return
    if not os.access(out, os.W_OK):
        raise OutputError(out, "is read-only")
    if not overwrite and recognise is not None and not recognise(out):
        raise OutputError(out, f"exists and is not {what}; choose another name or pass --overwrite")


@contextmanager
def staged_dir(
    out: Path,
    kind: str,
    *,
    overwrite: bool = False,
    names: Collection[str] | None = None,
) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out``; on success swap it in as ``out``.

    The previous folder's entries that hepablate did not write are kept (hard links, or
    copies where a link is refused); its own entries (listed in its marker) are replaced or,
    if this run does not write them, dropped. The new marker lists the entries this run wrote
    (``files``), every file under them (``paths``) and the entries it kept (``kept``).
    ``names``, when given, are all the entries the run may write (a check on the caller).
    """
    out = _target_with_parent(out)
    _recover(out)
    stage = _make_sibling(out, _PARTIAL, folder=True)
    try:
        yield stage
        _commit(stage, out, kind, overwrite=overwrite, names=names)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _target_with_parent(out: Path) -> Path:
    """``_target(out)``, with its parent folder created."""
    out = _target(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(out.parent, f"cannot create the folder ({exc.strerror})") from exc
    return out


@contextmanager
def staged_file(out: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``out`` (same suffix); on success it replaces ``out``."""
    out = _target_with_parent(out)
    _clean_stale_files(out)
    temporary = _make_sibling(out, _PARTIAL, folder=False)
    try:
        yield temporary
        _fsync(temporary)
        temporary.replace(out)
        _fsync(out.parent)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --- checks --------------------------------------------------------------------------------


def _target(out: Path) -> Path:
    """``out`` made absolute (``.`` has no name to stage beside), through a symbolic link at
    its last component: the output goes where the link points."""
    out = Path(out)
    return out.resolve() if out.is_symlink() else Path(os.path.normpath(out.absolute()))


def _check_parents(out: Path) -> None:
    """The nearest existing ancestor of ``out`` is a folder that can be written."""
    ancestor = out.parent
    while not (ancestor.exists() or ancestor.is_symlink()):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputError(ancestor, f"is a file; {out} cannot be created under it")
    _probe(ancestor)


def _probe(folder: Path) -> None:
    """Create and remove a file in ``folder``: the only check that read-only mounts, ACLs and
    permissions all answer."""
    try:
        handle, name = tempfile.mkstemp(prefix=".hepablate-probe-", dir=folder)
    except OSError as exc:
        raise OutputError(folder, f"cannot be written ({exc.strerror})") from exc
    os.close(handle)
    Path(name).unlink()


def _entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name != MARKER)


def _refusal(
    out: Path, kind: str, *, overwrite: bool, names: Collection[str]
) -> OutputError | None:
    """Why a ``kind`` run writing ``names`` must not replace the folder ``out``; None when it
    may (``overwrite`` allows everything)."""
    entries = _entries(out)
    if not entries or overwrite:
        return None
    marker = read_marker(out)
    if marker is None or marker["kind"] != kind:
        return OutputError(
            out,
            f"not empty and not the output of an earlier `hepablate {kind}`; choose another "
            "folder or pass --overwrite (files hepablate did not write are kept)",
        )
    clash = sorted((set(entries) - set(marker["files"])) & set(names))
    if clash:
        return OutputError(
            out / clash[0],
            f"not written by `hepablate {kind}`, and the run would replace it; move it away "
            "or pass --overwrite",
        )
    inside = _foreign_inside(out, marker)
    if inside:
        return OutputError(
            out / inside[0],
            f"not written by `hepablate {kind}`, and the run replaces the folder it is in; "
            "move it away or pass --overwrite",
        )
    return None


def _written_paths(folder: Path, entries: Collection[str]) -> list[str]:
    """Every file (not folder) under ``entries`` of ``folder``, as relative POSIX paths."""
    paths = []
    for name in entries:
        top = folder / name
        if not top.is_dir() or top.is_symlink():
            paths.append(name)
            continue
        for root, folders, files in os.walk(top):
            here = Path(root).relative_to(folder)
            paths += [(here / f).as_posix() for f in files]
            paths += [(here / d).as_posix() for d in folders if (Path(root) / d).is_symlink()]
    return sorted(paths)


def _foreign_inside(out: Path, marker: dict[str, Any]) -> list[str]:
    """Files that someone put inside the folders an earlier run wrote (the marker's
    ``paths``): replacing those folders would delete them."""
    if not isinstance(marker.get("paths"), list):
        return []
    written = set(marker["paths"])
    owned = [n for n in marker["files"] if (out / n).is_dir() and not (out / n).is_symlink()]
    return [p for p in _written_paths(out, owned) if p not in written]


# --- staging and the swap ------------------------------------------------------------------


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _make_sibling(out: Path, role: str, *, folder: bool) -> Path:
    while True:
        path = out.parent / f".{out.name}.{role}-{_owner()}-{secrets.token_hex(4)}"
        if not folder:
            path = path.with_name(path.name + out.suffix)  # writers may go by the suffix
        try:
            if folder:
                path.mkdir()
            else:
                os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            continue
        return path


def _commit(
    stage: Path, out: Path, kind: str, *, overwrite: bool, names: Collection[str] | None
) -> None:
    written = _entries(stage)
    if names is not None:
        undeclared = sorted(set(written) - set(names))
        if undeclared:  # the caller's list is what check_output_dir protects: keep it true
            raise RuntimeError(f"{kind} wrote {undeclared}, which it did not declare")
    kept: list[str] = []
    paths = _written_paths(stage, written)
    exists = out.exists() or out.is_symlink()
    if exists:
        if not out.is_dir():
            raise OutputError(out, "is a file; the output is a folder")
        # checked again: the folder may have changed while the run worked
        refusal = _refusal(out, kind, overwrite=overwrite, names=written)
        if refusal is not None:
            raise refusal
        previous = read_marker(out)
        ours = set(previous["files"]) if previous and previous["kind"] == kind else set()
        for name in _entries(out):
            if name not in ours and name not in written:
                _link_tree(out / name, stage / name)
                kept.append(name)
        shutil.copymode(out, stage)
    marker = {
        "hepablate_output": 1,
        "kind": kind,
        "hepablate": _version(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": written,
        "kept": kept,
        "paths": paths,
    }
    (stage / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
    _fsync_tree(stage)
    if exists:
        replaced = _exchange(stage, out)
        _fsync(out.parent)
        shutil.rmtree(replaced, ignore_errors=True)
    else:
        stage.rename(out)
        _fsync(out.parent)


def _exchange(new: Path, out: Path) -> Path:
    """Put ``new`` at ``out``; return where the previous ``out`` now is (to be removed)."""
    if _exchange_names(new, out):
        return new  # the two names swapped: the previous folder is at ``new``
    # Between the two renames ``out`` is missing; the previous folder waits at ``aside``,
    # whose name says so, and ``_recover`` puts it back if this process dies there.
    aside = out.parent / f".{out.name}.{_OLD}-{_owner()}-{secrets.token_hex(4)}"
    out.rename(aside)
    try:
        new.rename(out)
    except BaseException:
        aside.rename(out)
        raise
    return aside


def _exchange_names(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the filesystem cannot."""
    if sys.platform != "linux":
        return False
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:  # a C library without the wrapper (glibc < 2.28)
        return False
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    function.argtypes += [ctypes.c_uint]
    function.restype = ctypes.c_int
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _link_tree(source: Path, target: Path) -> None:
    """``source`` recreated at ``target`` with hard links (copies where a link is refused)."""
    if source.is_dir() and not source.is_symlink():
        target.mkdir()
        for child in sorted(source.iterdir()):
            _link_tree(child, target / child.name)
        shutil.copystat(source, target)
        return
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    except OSError as exc:  # some filesystems cannot sync a folder; the data is synced
        if exc.errno not in (errno.EINVAL, errno.EBADF, errno.EISDIR):
            raise
    finally:
        os.close(handle)


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                _fsync(path)
        _fsync(Path(root))


def _version() -> str:
    try:
        return version("hepablate")
    except PackageNotFoundError:
        return "0+unknown"


# --- what killed runs leave ----------------------------------------------------------------


def _stale(out: Path, role: str) -> Iterator[Path]:
    """Siblings of ``out`` in ``role`` made on this host by processes that are gone."""
    prefix = f".{out.name}.{role}-"
    try:
        names = [path.name for path in out.parent.iterdir()]
    except OSError:
        return
    host = socket.gethostname()
    for name in names:
        if not name.startswith(prefix):
            continue
        made_by = name[len(prefix) :].rsplit("-", 2)
        if len(made_by) != 3 or made_by[0] != host or not made_by[1].isdigit():
            continue
        if not _alive(int(made_by[1])):
            yield out.parent / name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _recover(out: Path) -> None:
    """Put back a previous folder set aside by a run killed between its two renames, and
    remove the staging folders of killed runs."""
    if not out.parent.is_dir():
        return
    for aside in _stale(out, _OLD):
        if not (out.exists() or out.is_symlink()):
            aside.rename(out)
        else:
            shutil.rmtree(aside, ignore_errors=True)
    for partial in _stale(out, _PARTIAL):
        if partial.is_dir() and not partial.is_symlink():
            shutil.rmtree(partial, ignore_errors=True)
        else:
            with suppress(OSError):
                partial.unlink()


def _clean_stale_files(out: Path) -> None:
    for partial in _stale(out, _PARTIAL):
        with suppress(OSError):
            partial.unlink()
