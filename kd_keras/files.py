"""Every file and folder kd_keras writes goes to a temporary sibling first and is renamed
into place, so an interrupted run never leaves half a file, and runs sharing a folder
(a cache) never read one."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from typing import Callable, Iterator, List, Optional, Sequence, TypeVar

import numpy as np

from kd_keras.errors import DiskFull, UserError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

T = TypeVar("T")


def disk_full(path: str) -> DiskFull:
    """The error of a write to ``path`` that found its disk full."""
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):
        folder = os.path.dirname(folder)
    free = shutil.disk_usage(folder).free
    return DiskFull(f"no space left on the disk writing {path} ({free / 1e6:,.0f} MB free "
                    "there); nothing half-written was kept: free some space and run the "
                    "same command again (training resumes from its last complete backup).")


def _parent(path: str) -> str:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    return parent


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "w", **open_kwargs) -> Iterator:
    """Opens a temporary sibling of ``path`` for writing; renames it to ``path`` when the
    block ends without an exception, removes it otherwise.

    Args:
        path: the file to write.
        mode: ``"w"`` (text, UTF-8 unless given) or ``"wb"``.
        **open_kwargs: passed to open (``newline=""`` for csv writers).
    """
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    fd, partial = tempfile.mkstemp(dir=_parent(path), prefix=f".{os.path.basename(path)}.",
                                   suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
        os.replace(partial, path)
    except BaseException as error:
        if os.path.exists(partial):
            os.remove(partial)
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            raise disk_full(path) from error
        raise


def write_text(path: str, text: str) -> None:
    with atomic_file(path) as handle:
        handle.write(text)


def write_json(path: str, value, **dump_kwargs) -> None:
    """JSON, indented and with sorted keys unless told otherwise."""
    dump_kwargs.setdefault("indent", 2)
    dump_kwargs.setdefault("sort_keys", True)
    with atomic_file(path) as handle:
        json.dump(value, handle, **dump_kwargs)


def save_npz(path: str, **arrays: np.ndarray) -> None:
    with atomic_file(path, "wb") as handle:
        np.savez(handle, **arrays)


def load_cache(path: str, load: Callable[[str], T]) -> Optional[T]:
    """A cache file's (or folder's) contents, or None when it is missing or damaged.

    A damaged file (truncated, bytes flipped: whatever ``load`` raises, a CRC check of an
    .npz member or a checksum line included) is removed so that the caller rebuilds it:
    a cache is never trusted over computing it again.
    """
    if not os.path.exists(path):
        return None
    try:
        return load(path)
    except Exception as error:  # noqa: BLE001 (any failure to read means: rebuild)
        print(f"The cache file {path} is damaged ({type(error).__name__}: {error}); "
              "rebuilding it.")
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
        return None


def file_digest(path: str, digest=None, block: int = 1 << 20) -> str:
    """The SHA-256 of a file's bytes (or ``digest`` updated with them), read a block at a
    time: a file larger than memory is never held whole."""
    digest = digest or hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_record(path: str, parse: Callable[[str], T]) -> T:
    """A record kd_keras wrote and reads back (config.json, run_identity.json), parsed.

    Raises:
        UserError: the file is damaged (not UTF-8, not JSON, or ``parse`` refuses it);
            the message names the file.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            return parse(handle.read())
    except (UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise UserError(f"{path} is damaged ({type(error).__name__}: {error}); restore it, "
                        "or use another --model_dir.") from None


TEMPORARY_PREFIXES = (".tmp_",)  # atomic_folder's staging folders
TEMPORARY_SUFFIX = ".tmp"  # atomic_file's partial files
REPLACED_SUFFIX = ".replaced"  # a folder moved aside while its new version is renamed in


def _aside(target: str) -> str:
    """Where atomic_folder moves an existing ``target`` while replacing it."""
    head, name = os.path.split(os.path.abspath(target))
    return os.path.join(head, f".{name}{REPLACED_SUFFIX}")


@contextlib.contextmanager
def atomic_folder(target: str, replace: bool = True) -> Iterator[str]:
    """Yields an empty temporary sibling folder to fill; it becomes ``target`` when the
    block ends without an exception (an existing target is replaced when ``replace``),
    and is removed otherwise.

    A folder cannot be renamed over a non-empty one, so a replaced target is first moved
    aside (``.<name>.replaced``), the new one renamed in, then the old one removed: a
    process killed between the two renames leaves the old version aside, which
    ``recover`` puts back.
    """
    staging = tempfile.mkdtemp(dir=_parent(target),
                               prefix=f"{TEMPORARY_PREFIXES[0]}"
                                      f"{os.path.basename(os.path.abspath(target))}_")
    try:
        yield staging
        aside = _aside(target)
        if os.path.exists(target) and replace:
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(target, aside)
        os.replace(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError) and error.errno in NO_SPACE:
            raise disk_full(target) from error
        raise


def is_temporary(name: str) -> bool:
    """Whether a file or folder name is one the atomic writers leave only when killed."""
    return (name.startswith(TEMPORARY_PREFIXES)
            or (name.startswith(".") and name.endswith((TEMPORARY_SUFFIX, REPLACED_SUFFIX))))


def recover(root: str, skip: Sequence[str] = ()) -> List[str]:
    """Cleans up after a process killed inside a write under ``root``: partial files and
    staging folders are removed, and a folder left aside by atomic_folder goes back in
    place when its new version never arrived (removed when it did).

    Call it only while no other process writes under ``root`` (kd_keras holds the
    folder's lock); ``skip`` lists folders under it that others may share.

    Returns:
        What was removed or put back, as paths.
    """
    done = []
    skip = {os.path.abspath(path) for path in skip}
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = [name for name in subfolders
                         if os.path.abspath(os.path.join(folder, name)) not in skip]
        for name in [entry for entry in subfolders + names if is_temporary(entry)]:
            path = os.path.join(folder, name)
            target = os.path.join(folder, name[1:-len(REPLACED_SUFFIX)])
            if name.endswith(REPLACED_SUFFIX) and not os.path.exists(target):
                os.replace(path, target)
            elif os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
            done.append(path)
        subfolders[:] = [name for name in subfolders if not is_temporary(name)]
    return done
