"""Writing files without ever losing data: atomic writes, safe names, folders the kit owns.

Every file the kit writes goes through `atomic_write`: a crash, a kill or a full disk at any
moment leaves either the old file or the new one, never half of one, and no temporary file.
Names that come from data (videos and frames in ``meta.json``) pass `check_name` before they
become paths, so no video can make the kit write outside the folder the user named. Folders
the kit fills carry a marker file of its own (the generator's ``synth_config.json``, the
predictions' ``.vostutorial-predictions.json``), and the kit only replaces what carries it.

This module imports nothing of the package: everything else may use it.
"""

from __future__ import annotations

import hashlib
import json
import os
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
            "absolute paths); rename it"
        )
    return name


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
