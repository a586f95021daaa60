"""Content-addressed preprocessing cache: preprocess once, then memory-map.

A dataset plugin reads its raw files once into an *epoch store*: one directory holding the
per-30-s-epoch signal as a float32 ``.npy`` (opened with ``np.load(mmap_mode="r")``), the labels,
the recording index, a contiguity flag per epoch and a small ``meta.json``. The store's name is a
key computed from the input files' byte hashes, the preprocessing parameters and a code version,
so any change to the inputs or the code gives a new store and a stale one is never served.

Stores are written into a temporary directory beside their final place and renamed when
complete, so a killed run leaves no half-written cache. Model input windows are never stored:
:meth:`EpochStore.to_sleep_data` builds a :class:`restbench.data.sleep_data.SleepData` whose windows are
assembled on the fly from the per-epoch signal.

Hashing multi-GB EDF files on every run is slow, so file digests are memoised in a small JSON
file keyed by ``(path, size, mtime_ns)``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from restbench.data.sleep_data import (
    SleepData,
    TrainingStats,
    compute_window_ends,
    fingerprint,
    training_stats,
)
from restbench.records.atomic import write_text_atomic
from restbench.settings import default_cache_dir  # noqa: F401  (re-exported: the cache's own default)

#: Bump when the on-disk layout of a store changes; it is part of every key.
CACHE_LAYOUT_VERSION = 1

_HASH_CHUNK_BYTES = 4 * 1024 * 1024
#: Training epochs per chunk when computing statistics (bounds memory on a full dataset).
_STATS_CHUNK_EPOCHS = 2048


# --------------------------------------------------------------------------- file digests


class HashMemo:
    """sha256 of files, remembered by ``(path, size, mtime_ns)`` in a JSON file.

    A file whose size or modification time changed is hashed again. The memo is advisory: a
    lost or corrupt memo file only costs re-hashing.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, list] = {}
        self.dirty = False
        if path is not None and path.is_file():
            try:
                self.entries = json.loads(path.read_text())
            except (OSError, ValueError):
                self.entries = {}

    def digest(self, file: Path) -> str:
        """Hex sha256 of ``file``'s bytes (from the memo when size and mtime match)."""
        file = Path(file).resolve()
        st = file.stat()
        entry = self.entries.get(str(file))
        if entry is not None and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return entry[2]
        sha = hashlib.sha256()
        with open(file, "rb") as f:
            while chunk := f.read(_HASH_CHUNK_BYTES):
                sha.update(chunk)
        digest = sha.hexdigest()
        self.entries[str(file)] = [st.st_size, st.st_mtime_ns, digest]
        self.dirty = True
        return digest

    def save(self) -> None:
        """Write the memo back (atomically) when something new was hashed."""
        if self.path is None or not self.dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps(self.entries, sort_keys=True))
        self.dirty = False


def file_digests(files: Mapping[str, Path], cache_dir: Path | None) -> dict[str, str]:
    """sha256 per named input file, memoised in ``cache_dir/file-hashes.json``."""
    memo = HashMemo(None if cache_dir is None else Path(cache_dir) / "file-hashes.json")
    out = {name: memo.digest(path) for name, path in sorted(files.items())}
    memo.save()
    return out


def cache_key(inputs: Mapping[str, str], params: Mapping[str, Any], code_version: str) -> str:
    """Key of a store: input names with their byte hashes, parameters and code version.

    Canonical JSON (sorted keys), so the order options were given in never changes the key.
    """
    blob = json.dumps(
        {"layout": CACHE_LAYOUT_VERSION, "code": code_version, "params": dict(params), "inputs": dict(inputs)},
        sort_keys=True,
        default=str,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


# --------------------------------------------------------------------------- atomic writes


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove_stale_temps(parent: Path, name: str) -> None:
    """Remove temp dirs of ``name`` left by killed processes on this machine."""
    for tmp in parent.glob(f".tmp-{name}-*"):
        try:
            pid = int(tmp.name.rsplit("-", 2)[-2])
        except (ValueError, IndexError):
            continue
        if not _pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield an empty temporary directory that becomes ``final`` when the block succeeds.

    On an exception the temporary directory is removed. When another process completed
    ``final`` first, its copy is kept and ours is discarded (same key, same content).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(final.parent, final.name)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --------------------------------------------------------------------------- epoch stores

_SIGNAL = "signal.npy"
_ARRAYS = ("labels", "recording", "contiguous")
_META = "meta.json"


class EpochStoreWriter:
    """Streams recordings into a store directory, one recording at a time.

    The signal goes straight to disk (a recording in memory at a time): the ``.npy`` header is
    written first with a placeholder shape and rewritten with the final one in :meth:`close`.
    """

    def __init__(self, directory: Path, samples_per_epoch: int) -> None:
        self.directory = Path(directory)
        self.samples_per_epoch = int(samples_per_epoch)
        self.recordings: list[str] = []
        self.recording_subject: list[str] = []
        self.recording_info: list[dict] = []
        self._labels: list[np.ndarray] = []
        self._contiguous: list[np.ndarray] = []
        self._n_epochs = 0
        self._file = open(self.directory / _SIGNAL, "wb")
        self._header_bytes = self._write_header(0)

    def _write_header(self, n_epochs: int) -> int:
        self._file.seek(0)
        header = {"descr": np.dtype("<f4").str, "fortran_order": False, "shape": (n_epochs, self.samples_per_epoch)}
        np.lib.format.write_array_header_1_0(self._file, header)
        return self._file.tell()

    @property
    def n_epochs(self) -> int:
        return self._n_epochs

    def add(self, recording: str, subject: str, signal: np.ndarray, labels: np.ndarray, contiguous: np.ndarray, info: dict | None = None) -> None:
        """Append one recording: ``signal`` ``(n, samples_per_epoch)``, ``labels`` and
        ``contiguous`` ``(n,)`` (``contiguous[i]``: epoch i directly follows epoch i-1 in time)."""
        signal = np.asarray(signal)
        n = len(labels)
        if signal.shape != (n, self.samples_per_epoch) or len(contiguous) != n:
            raise ValueError(
                f"recording {recording}: signal {signal.shape}, labels ({n},), contiguous ({len(contiguous)},) "
                f"do not match ({n}, {self.samples_per_epoch})"
            )
        self._file.write(np.ascontiguousarray(signal, dtype="<f4").tobytes())
        self._labels.append(np.asarray(labels, dtype=np.int64))
        contiguous = np.asarray(contiguous, dtype=bool).copy()
        if n:
            contiguous[0] = False  # a recording never continues the previous one
        self._contiguous.append(contiguous)
        self.recordings.append(recording)
        self.recording_subject.append(subject)
        self.recording_info.append(dict(info or {}))
        self._n_epochs += n

    def close(self, meta: dict) -> None:
        """Finish the signal file and write the index arrays and ``meta.json``."""
        if self._write_header(self._n_epochs) != self._header_bytes:
            raise RuntimeError("npy header size changed; cannot finish the store in place")
        self._file.close()
        index = np.concatenate([np.full(len(lab), i, dtype=np.int32) for i, lab in enumerate(self._labels)]) if self._labels else np.zeros(0, np.int32)
        np.save(self.directory / "labels.npy", np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64))
        np.save(self.directory / "recording.npy", index)
        np.save(self.directory / "contiguous.npy", np.concatenate(self._contiguous) if self._contiguous else np.zeros(0, bool))
        full = {
            **meta,
            "samples_per_epoch": self.samples_per_epoch,
            "n_epochs": self._n_epochs,
            "recordings": self.recordings,
            "recording_subject": self.recording_subject,
            "recording_info": self.recording_info,
        }
        (self.directory / _META).write_text(json.dumps(full, indent=1, sort_keys=True, default=str))

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()


@dataclass
class EpochStore:
    """A finished store: memory-mapped per-epoch signal plus its index arrays and metadata."""

    path: Path
    key: str
    signal: np.ndarray  # (n_epochs, samples_per_epoch) float32, memory-mapped, read-only
    labels: np.ndarray  # (n_epochs,) int64
    recording: np.ndarray  # (n_epochs,) int32
    contiguous: np.ndarray  # (n_epochs,) bool
    meta: dict

    @classmethod
    def open(cls, path: Path) -> "EpochStore":
        """Open a store directory written by :func:`load_or_build`."""
        path = Path(path)
        meta = json.loads((path / _META).read_text())
        arrays = {name: np.load(path / f"{name}.npy") for name in _ARRAYS}
        return cls(
            path=path,
            key=path.name,
            signal=np.load(path / _SIGNAL, mmap_mode="r"),
            meta=meta,
            **arrays,
        )

    @property
    def recordings(self) -> list[str]:
        return list(self.meta["recordings"])

    @property
    def recording_subject(self) -> list[str]:
        return list(self.meta["recording_subject"])

    def derived(self, name: str, compute: Callable[[], dict]) -> dict:
        """Memoise a small JSON result computed from this store (e.g. training statistics)."""
        folder = self.path / "derived"
        file = folder / f"{name}.json"
        if file.is_file():
            try:
                return json.loads(file.read_text())
            except ValueError:
                pass  # a corrupt memo is recomputed
        value = compute()
        folder.mkdir(exist_ok=True)
        write_text_atomic(file, json.dumps(value, sort_keys=True))
        return value

    def training_stats(self, epochs: np.ndarray) -> TrainingStats:
        """:func:`restbench.data.sleep_data.training_stats` over ``epochs``, streamed in chunks and memoised.

        Chunks bound memory on a full dataset; their means and variances are pooled exactly.
        """
        epochs = np.unique(np.asarray(epochs, dtype=np.int64))
        if len(epochs) == 0:
            raise ValueError("no training epochs: cannot compute training statistics")
        digest = hashlib.sha256(epochs.tobytes()).hexdigest()[:16]

        def compute() -> dict:
            n_total, mean_sum, sq_sum = 0, 0.0, 0.0
            lo, hi = np.inf, -np.inf
            for start in range(0, len(epochs), _STATS_CHUNK_EPOCHS):
                chunk = epochs[start : start + _STATS_CHUNK_EPOCHS]
                part = training_stats(self.signal, chunk)
                n = len(chunk) * self.signal.shape[1]
                n_total += n
                mean_sum += part.mean * n
                sq_sum += (part.sigma**2 + part.mean**2) * n
                lo, hi = min(lo, part.min), max(hi, part.max)
            mean = mean_sum / n_total
            return TrainingStats(mean=mean, sigma=float(np.sqrt(max(sq_sum / n_total - mean**2, 0.0))), min=lo, max=hi).to_dict()

        return TrainingStats(**self.derived(f"stats-{digest}", compute))

    def to_sleep_data(self, name: str, split: dict[str, list[str]], *, context: int = 4, info: dict | None = None) -> SleepData:
        """A :class:`SleepData` over this store with ``split`` (subject ids per split).

        Window ends come from :func:`restbench.data.sleep_data.compute_window_ends` (``context`` contiguous
        epochs within one recording); training statistics cover the epochs of training windows.
        """
        window_end = compute_window_ends(np.ones(len(self.labels), dtype=bool), self.recording, self.contiguous, context)
        data = SleepData(
            name=name,
            signal=self.signal,
            labels=self.labels,
            recording=self.recording,
            recordings=self.recordings,
            recording_subject=self.recording_subject,
            window_end=window_end,
            split=split,
            stats=TrainingStats(0.0, 0.0, 0.0, 0.0),
            sfreq=float(self.meta["sfreq"]),
            context=context,
            fingerprint=fingerprint(self.key, split, context),
            info=dict(info or {}),
            contiguous=self.contiguous,
        )
        train_ends = data.windows("train")
        covered = (train_ends[:, None] + np.arange(-context + 1, 1)[None, :]).ravel()
        data.stats = self.training_stats(covered)
        return data


def store_path(cache_dir: Path, key: str) -> Path:
    """Where the store of ``key`` lives under ``cache_dir``."""
    return Path(cache_dir) / "epochs" / key


def load_or_build(
    cache_dir: Path, key: str, samples_per_epoch: int, build: Callable[[EpochStoreWriter], dict]
) -> tuple[EpochStore, bool]:
    """Open the store of ``key``, building it first when absent. Returns ``(store, was_cached)``.

    ``build(writer)`` adds every recording and returns the store's metadata (it must include
    ``sfreq``). An exception in ``build`` leaves nothing behind.
    """
    final = store_path(cache_dir, key)
    if (final / _META).is_file():
        return EpochStore.open(final), True
    with atomic_directory(final) as tmp:
        writer = EpochStoreWriter(tmp, samples_per_epoch)
        try:
            meta = build(writer)
            if "sfreq" not in meta:
                raise ValueError("store metadata must include 'sfreq'")
            writer.close(meta)
        finally:
            writer.abort()
    return EpochStore.open(final), False
