"""A bundle folder's files on disk: only regular files directly in the folder, each read once,
with a bounded size; new files written without touching anything already there."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from hepablate.bundle._errors import BundleError

__all__ = ["MAX_FILE_BYTES", "list_entries", "read_file", "write_new"]

# Far above any model hepablate writes (a 300-tree forest on 1000 patients is ~30 MB); a bound
# so that a huge file is refused instead of filling the memory.
MAX_FILE_BYTES = 2 << 30
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0)
# A FIFO opened for reading blocks until a writer appears: open without waiting, then refuse.
_NO_WAIT = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _what(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def list_entries(folder: Path) -> list[str]:
    """The names in a bundle folder, each a regular file (not a link, folder, FIFO, device)."""
    try:
        info = folder.stat()
    except FileNotFoundError:
        raise BundleError(f"{folder}: no such folder") from None
    except OSError as exc:
        raise BundleError(f"{folder}: cannot be read ({exc.strerror})") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise BundleError(f"{folder}: not a folder; a bundle is the folder RUN_DIR/bundle")
    try:
        entries = sorted(folder.iterdir())
        modes = [entry.lstat().st_mode for entry in entries]
    except OSError as exc:
        raise BundleError(f"{folder}: cannot be read ({exc.strerror})") from exc
    for entry, mode in zip(entries, modes, strict=True):
        if not stat.S_ISREG(mode):
            raise BundleError(f"{entry}: {_what(mode)}; a bundle holds only regular files")
    return [entry.name for entry in entries]


def read_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, refused when it is anything else (checked on the open file,
    so a file swapped for a link or a device after the listing is caught) or over ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | _NO_FOLLOW | _NO_WAIT | _BINARY)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing") from None
    except OSError as exc:
        # ELOOP: the last component became a symbolic link (O_NOFOLLOW).
        what = "a symbolic link" if path.is_symlink() else f"cannot be read ({exc.strerror})"
        raise BundleError(f"{path}: {what}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise BundleError(f"{path}: {_what(info.st_mode)}; a bundle holds only regular files")
        if info.st_size > limit:
            raise BundleError(f"{path}: {info.st_size} bytes, more than the {limit} allowed")
        os.set_blocking(fd, True)
        chunks = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError as exc:
        raise BundleError(f"{path}: cannot be read ({exc.strerror})") from exc
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise BundleError(f"{path}: more than the {limit} bytes allowed (it grew while read)")
    return data


def write_new(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a file that must not exist yet (never replaces one), readable by all: 0644 less
    the user's umask, whatever the library that produced the bytes would have chosen."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NO_FOLLOW | _BINARY, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
