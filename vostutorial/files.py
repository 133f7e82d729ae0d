"""Writing files without ever losing data: atomic writes, safe names, folders the kit owns.

Every file the kit writes goes through `atomic_write`: a crash, a kill or a full disk at any
moment leaves either the old file or the new one, never half of one (a kill may leave a
``*.tmp`` beside it, which the next write of that file replaces). Every name that becomes a
path, from data (videos and frames in ``meta.json``) or from a flag (``--split``, a held-out
split's name, a DAVIS resolution), passes `check_name` first, so nothing can make the kit write
outside the folder the user named. Folders the kit fills carry a marker of its own (the
generator's ``synth_config.json``, the predictions' ``.vostutorial-predictions.json``, the
report folder's `MANIFEST`), and the kit replaces only what it wrote itself.

This module imports nothing of the package: everything else may use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", fsync: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing and rename it over ``path`` when the
    block ends without an error; on any error the temporary file is removed and ``path`` is
    untouched. ``fsync`` also flushes the bytes to disk first (checkpoints: survive a power
    cut, not just a crash)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk says "No space left": say where
        tmp.unlink(missing_ok=True)
        if exc.filename is None or str(exc.filename).endswith(".tmp"):
            exc.filename = str(path)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (which checkpoint made predictions, which weights a trunk
    has)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_text(path: str | os.PathLike, text: str) -> None:
    """``Path.write_text``, atomically."""
    with atomic_write(path, "w") as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: object) -> None:
    """``obj`` as indented JSON, atomically."""
    write_text(path, json.dumps(obj, indent=1))


def check_name(name: str, what: str, where: str | os.PathLike) -> str:
    """Return ``name`` if it is safe as one path component, else raise a ValueError naming
    ``where`` (the file it came from). Refused: empty, ``.``/``..``, separators, NUL."""
    bad = (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or any(c in name for c in "/\\\0")
        or Path(name).is_absolute()
    )
    if bad:
        raise ValueError(
            f"{where}: {what} name {name!r} is not a plain file name (no '/', '\\', '..' or "
            "absolute paths): it names a folder or file inside the one given, not a path"
        )
    return name


@contextmanager
def interrupt_after() -> Iterator[None]:
    """Hold Ctrl-C until the block has ended, then raise it: for writers that cannot stop
    cleanly part-way (torch's zip writer, interrupted, raises its own error from inside)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    before = signal.signal(signal.SIGINT, lambda sig, frame: pressed.append(sig))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
    if pressed:
        raise KeyboardInterrupt


@contextmanager
def building(final: str | os.PathLike) -> Iterator[Path]:
    """A folder to build ``final`` in (its sibling ``.partial-<name>``), renamed to ``final``
    when the block ends without an error and removed on any error or interruption: a folder
    appears whole or not at all, and the same command can simply be run again."""
    final = Path(final)
    tmp = final.with_name(f".partial-{final.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


MANIFEST = ".vostutorial-files.json"  # the files the kit wrote into a folder of the user's


def claim_files(
    folder: str | os.PathLike, names: list[str], flag: str = "--out", record: bool = True
) -> None:
    """Make the files ``names`` of ``folder`` the kit's to (re)write, before any is written:
    refuse, naming the first, one that exists but that no earlier run recorded in the folder's
    `MANIFEST` (a user's file, never replaced); then, with ``record``, record them all there
    (without, only check: a command checks first and records when it is about to write)."""
    folder = Path(folder)
    owned = set(_read_list(folder / MANIFEST))
    for name in names:
        check_name(name, "file", folder)
        if (folder / name).exists() and name not in owned:
            raise ValueError(
                f"{folder / name}: exists and was not written by vostutorial; move it away or "
                f"choose another {flag}"
            )
    if record:
        write_json(folder / MANIFEST, sorted(owned | set(names)))


def _read_list(path: Path) -> list[str]:
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def is_empty_dir(folder: str | os.PathLike) -> bool:
    """True for a folder with nothing in it (or no folder at all)."""
    folder = Path(folder)
    return not folder.exists() or (folder.is_dir() and not any(folder.iterdir()))


def require_writable_dir(folder: str | os.PathLike, flag: str = "--out") -> Path:
    """Create ``folder`` if needed and check that files can be written there, or raise a
    ValueError naming it (a file in the way, a read-only place)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{folder}: {flag} is a file, not a folder; name a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{folder}: cannot create {flag} ({exc.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{folder}: {flag} is not writable; choose a folder you can write to")
    return folder
