"""Atomic file writes: a reader sees a file's old content or its complete new content, never half.

Every whole-file write in restbench goes through :func:`atomic_path`: the writer fills a
temporary file in the target's own directory (same file system, so the rename is atomic),
which is then flushed to disk (``fsync``), renamed over the target with ``os.replace`` and made
durable by an ``fsync`` of the directory. If the writer raises, or the process is killed, the
target is left exactly as it was; on an exception the temporary file is removed.

The temporary name is ``.<name>.<pid>-<random>.tmp<suffix>`` and is created exclusively
(``O_EXCL``) before the writer sees it, so two writers (processes or threads) never share a
temporary file, and it ends in the target's suffix for writers that add one when it is missing
(``np.savez_compressed`` appends ``.npz``). Files get the mode a plain ``open()`` would give
(0666 less the umask), not ``mkstemp``'s 0600.

- :func:`atomic_path`: a context manager yielding the temporary path, for writers that take a
  path (``torch.save``, ``np.savez_compressed``, a converter's ``export``);
- :func:`write_bytes_atomic`, :func:`write_text_atomic`, :func:`write_json_atomic`: whole
  contents at once.

This module uses the standard library only, so any layer (data, deploy, run) may import it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Iterator

__all__ = [
    "atomic_path",
    "fsync_dir",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


def fsync_dir(directory: str | os.PathLike) -> None:
    """Make a rename in ``directory`` durable; not possible on every platform, so best effort."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    """Flush ``path``'s data to disk (whoever wrote it; fsync acts on the file, not the handle)."""
    fd = os.open(path, os.O_RDWR if os.name == "nt" else os.O_RDONLY)  # Windows needs write access
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _reserve_temp(path: Path) -> Path:
    """Create an empty, exclusively owned temporary file beside ``path`` and return its path."""
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{path.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, like open()
        except FileExistsError:  # practically never: 32 random bits per process
            continue
        os.close(fd)
        return tmp


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    The block writes the complete new content to the yielded path (it exists, empty; writers
    that open it with ``"wb"`` simply overwrite it). On success the file is fsynced, renamed
    over ``path`` and the directory fsynced. On an exception the temporary file is removed and
    ``path`` keeps its old content (or stays absent). The parent directory is created if needed.

    Example::

        with atomic_path(out / "predictions.npz") as tmp:
            np.savez_compressed(tmp, **arrays)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _reserve_temp(path)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Replace the file at ``path`` with ``data`` atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Replace the file at ``path`` with ``text`` atomically (no newline translation); returns the path."""
    return write_bytes_atomic(path, text.encode(encoding))


def write_json_atomic(path: str | os.PathLike, obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """Replace the file at ``path`` with ``obj`` as JSON (plus a final newline) atomically;
    returns the path.

    NaN and infinity are refused (JSON has neither). The JSON is streamed into the temporary
    file, so an object that fails to serialise half-way leaves the old file untouched.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            json.dump(obj, fh, indent=indent, sort_keys=sort_keys, allow_nan=False)
            fh.write("\n")
    return path
