"""Artifacts that are whole or absent: every file and folder is built beside its place, then renamed.

``os.replace`` is atomic within one file system, so a stage killed at any moment leaves the previous
complete file or the new complete one, never a partial one. A folder is built as ``<name>.tmp`` and
swapped in: the previous one is renamed to ``<name>.old``, the new one into place, the old removed; a
kill between those two renames leaves the artifact absent for a moment, never partial, and the next
write renames ``<name>.old`` back before anything else (recover_interrupted_swap). Leftover ``.tmp``
siblings of a killed run are removed by the next write (they are git-ignored meanwhile).

An OSError while writing (folder not writable, disk full, a file where a folder should be) becomes a
UserError naming the artifact, and the temporary sibling is removed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from globallocal.errors import UserError

TMP_SUFFIX = ".tmp"
OLD_SUFFIX = ".old"
#: Staging folders handed out by staging_dir and not yet swapped in (removed on a user error).
_unfinished: set[Path] = set()


def sibling(path: Path, suffix: str) -> Path:
    """``path`` with ``suffix`` appended to its name (``a/b.pt`` -> ``a/b.pt.tmp``)."""
    return path.with_name(path.name + suffix)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _write_error(path: Path, error: OSError) -> UserError:
    reason = error.strerror or str(error)
    if isinstance(error, (FileExistsError, NotADirectoryError)):
        reason = "a file stands where its folder should be"
    where = f" at {error.filename}" if error.filename and Path(error.filename) != path else ""
    return UserError(
        f"cannot write {path} ({reason}{where}); make sure its folder is writable and the disk has space"
    )


def _concerns(error: OSError, *paths: Path) -> bool:
    """Whether ``error`` is about writing one of ``paths`` (or their folders), not about some input."""
    if error.filename is None:
        return True
    failed = Path(os.path.abspath(error.filename))
    for path in paths:
        path = Path(os.path.abspath(path))
        if failed == path or path in failed.parents or failed in path.parents:
            return True
    return False


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it is renamed to ``path``.

    ``with atomic_path(out) as tmp: torch.save(obj, tmp)``. On any error the temporary file is removed
    and ``path`` keeps its previous content (or stays absent).
    """
    path = Path(path)
    tmp = sibling(path, TMP_SUFFIX)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as error:
        _remove(tmp)
        if _concerns(error, path, tmp):
            raise _write_error(path, error) from error
        raise
    except BaseException:
        _remove(tmp)
        raise


def check_writable(path: Path) -> None:
    """Raise the UserError a write of ``path`` would raise, now (before hours of training, not after).

    Writes and removes a probe file beside ``path``; ``path`` itself is not touched.
    """
    path = Path(path)
    probe = sibling(path, TMP_SUFFIX)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise _write_error(path, error) from error


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, whole or not at all."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: Path, value) -> None:
    """Write ``value`` as indented JSON with a trailing newline, whole or not at all."""
    write_text(path, json.dumps(value, indent=2) + "\n")


def recover_interrupted_swap(path: Path) -> bool:
    """Undo a swap killed between its two renames: ``path`` absent, ``<path>.old`` whole -> rename back.

    ``<path>.old`` only ever holds a complete previous artifact (it is made by one rename of the live
    one), so restoring it gives back what the last finished run wrote. Returns whether it did.
    """
    path = Path(path)
    old = sibling(path, OLD_SUFFIX)
    if path.exists() or path.is_symlink() or not old.exists():
        return False
    try:
        os.replace(old, path)
    except OSError as error:
        raise _write_error(path, error) from error
    return True


def replace_dir(new: Path, path: Path) -> None:
    """Swap the complete folder ``new`` into ``path`` (the previous ``path``, if any, is removed)."""
    path = Path(path)
    old = sibling(path, OLD_SUFFIX)
    try:
        _remove(old)
        if path.exists() or path.is_symlink():
            os.replace(path, old)
        os.replace(new, path)
    except OSError as error:
        raise _write_error(path, error) from error
    _unfinished.discard(Path(new))
    _remove(old)


def staging_dir(path: Path) -> Path:
    """A fresh, empty ``<path>.tmp`` to build a folder in; ``replace_dir(staging, path)`` swaps it in.

    For stage scripts that fill a folder over many steps. A killed run leaves the staging folder,
    which the next call removes.
    """
    path = Path(path)
    tmp = sibling(path, TMP_SUFFIX)
    try:
        recover_interrupted_swap(path)
        _remove(tmp)
        _remove(sibling(path, OLD_SUFFIX))
        tmp.mkdir(parents=True)
    except OSError as error:
        raise _write_error(path, error) from error
    _unfinished.add(tmp)
    return tmp


def discard_unfinished() -> None:
    """Remove the staging folders of a stage that stopped before swapping them in."""
    while _unfinished:
        _remove(_unfinished.pop())


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``path`` to fill; on success it replaces ``path`` as a whole.

    On any error the partial folder is removed and ``path`` keeps its previous content (or stays absent).
    """
    path = Path(path)
    tmp = sibling(path, TMP_SUFFIX)
    try:
        recover_interrupted_swap(path)
        _remove(tmp)
        _remove(sibling(path, OLD_SUFFIX))
        tmp.mkdir(parents=True)
        yield tmp
        replace_dir(tmp, path)
    except OSError as error:
        _remove(tmp)
        if _concerns(error, path, tmp):
            raise _write_error(path, error) from error
        raise
    except BaseException:
        _remove(tmp)
        raise
