"""A content-addressed store of finished jobs, shared by runs and sweeps.

A job's output (a trained checkpoint, a set of exported files, one corruption's evaluation cells)
is stored under ``ROOT/KIND/KEY/`` where KEY hashes the job's canonical inputs (plugin ids and
versions, resolved options, the data's fingerprint, upstream job keys; key order never matters).
A second run that needs the same job takes it from here instead of computing it again.

Trust rules:
- An entry is written in a private temporary folder and renamed into place only when the job
  succeeded, so a failed or killed job never appears as a success.
- ``manifest.json`` records the inputs in full and the SHA-256 of every file. An entry is used
  only when its inputs equal the ones asked for and every file hashes as recorded; otherwise it
  is moved aside (``.rejected-*``) and the job runs again.
- Writers of one entry take its ``flock``; two runs needing the same job compute it once (the
  second waits, then reads it). Independent runs share the store safely.

Nothing in an entry is executed: checkpoints load with ``weights_only=True``, the rest is JSON
and ``.npz`` arrays read without pickle.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from restbench.records.verify import sha256_file

MANIFEST = "manifest.json"
STORE_ENV = "RESTBENCH_STORE"


def default_store_dir(cache_dir: Path) -> Path:
    """``RESTBENCH_STORE``, else ``CACHE_DIR/store``."""
    return Path(os.environ.get(STORE_ENV) or Path(cache_dir) / "store")


def open_store(root: Path | None, cache_dir: Path, shared: bool = True) -> "Store":
    """The shared store at ``root`` (None: :func:`default_store_dir`), or with ``shared`` False a
    private one in a temporary folder, removed when the store object is dropped."""
    if shared:
        return Store(root or default_store_dir(cache_dir))
    private = tempfile.TemporaryDirectory(prefix="restbench-store-")
    store = Store(private.name)
    store.private = private  # keeps the folder alive exactly as long as the store
    return store


def canonical(inputs: object) -> str:
    """The JSON text two equal inputs share, whatever their key order."""
    return json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))


class StoreError(Exception):
    """A store entry that cannot be written or read back (disk full, permissions)."""


class Store:
    """``ROOT/KIND/KEY/`` entries: :meth:`get` a checked entry, :meth:`put` a new one."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def path(self, kind: str, key: str) -> Path:
        if not key or "/" in key or key.startswith("."):
            raise ValueError(f"bad store key {key!r}")
        return self.root / kind / key

    # ------------------------------------------------------------------ reading

    def get(self, kind: str, key: str, inputs: object) -> Path | None:
        """The entry's folder when it exists and is sound for ``inputs``; else None (a damaged
        or mismatched entry is moved aside so the job is redone)."""
        folder = self.path(kind, key)
        if not folder.is_dir():
            return None
        problem = self.check(folder, inputs)
        if problem is None:
            return folder
        self._reject(folder, problem)
        return None

    @staticmethod
    def check(folder: Path, inputs: object) -> str | None:
        """Why ``folder`` is not a sound entry for ``inputs`` (None when it is)."""
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return "no readable manifest"
        if not isinstance(manifest, dict) or canonical(manifest.get("inputs")) != canonical(inputs):
            return "it was stored for other inputs"
        files = manifest.get("files")
        if not isinstance(files, dict):
            return "its manifest lists no files"
        present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()} - {MANIFEST}
        if present != set(files):
            return f"its files differ from its manifest ({sorted(present ^ set(files))[:3]})"
        for name, digest in files.items():
            if sha256_file(folder / name) != digest:
                return f"{name} changed since it was stored"
        return None

    def manifest(self, folder: Path) -> dict:
        return json.loads((folder / MANIFEST).read_text())

    def _reject(self, folder: Path, problem: str) -> None:
        aside = folder.with_name(f".rejected-{folder.name}-{uuid.uuid4().hex[:8]}")
        try:
            folder.rename(aside)
            (aside / "REJECTED").write_text(problem + "\n")
        except OSError:
            pass  # another process moved it first

    # ------------------------------------------------------------------ writing

    @contextmanager
    def lock(self, kind: str, key: str) -> Iterator[None]:
        """Held while one process computes ``kind/key``; others wait for it."""
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / f".{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextmanager
    def staging(self, kind: str) -> Iterator[Path]:
        """A private folder to build an entry in; removed afterwards unless :meth:`publish` took it."""
        (self.root / kind).mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=f".tmp-{socket.gethostname()}-{os.getpid()}-", dir=self.root / kind))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def remove_stale(self) -> int:
        """Remove staging folders of processes on this host that died mid-job (killed: nothing
        cleaned up); returns how many. Folders of live processes and other hosts are left."""
        removed, host = 0, socket.gethostname()
        for folder in self.root.glob("*/.tmp-*"):
            rest = folder.name[len(".tmp-"):]
            owner, _, tail = rest.rpartition("-")  # HOST-PID, then mkdtemp's random part
            owner_host, _, pid = owner.rpartition("-")
            if owner_host != host or not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # alive, someone else's
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        return removed

    def publish(self, staged: Path, kind: str, key: str, inputs: object, about: dict | None = None) -> Path:
        """Seal ``staged`` (hash its files, write the manifest) and rename it into place. An entry
        that appeared meanwhile (another writer) wins; ours is dropped."""
        files = {p.relative_to(staged).as_posix(): sha256_file(p) for p in sorted(staged.rglob("*")) if p.is_file()}
        manifest = {"kind": kind, "key": key, "inputs": json.loads(canonical(inputs)), "files": files,
                    **(about or {})}
        with open(staged / MANIFEST, "w") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        for path in staged.rglob("*"):
            if path.is_file() and path.name != MANIFEST:
                with open(path, "rb") as fh:
                    os.fsync(fh.fileno())
        return self._place(staged, kind, key)

    def _place(self, staged: Path, kind: str, key: str) -> Path:
        """Rename a sealed entry into place; an entry another writer placed first wins."""
        final = self.path(kind, key)
        try:
            staged.rename(final)
        except OSError:
            if not final.is_dir():
                raise StoreError(f"cannot store {kind} {key} in {self.root}") from None
        return final

    # ------------------------------------------------------------------ moving entries between machines

    @staticmethod
    def pack(folder: Path) -> bytes:
        """An entry as bytes (an uncompressed tar), to travel through Ray's object store."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
        return buffer.getvalue()

    def unpack(self, packed: bytes, kind: str, key: str, inputs: object) -> Path:
        """Store a packed entry (from another machine) unless a sound one is here; returns it."""
        found = self.get(kind, key, inputs)
        if found is not None:
            return found
        with self.staging(kind) as staged:
            with tarfile.open(fileobj=io.BytesIO(packed), mode="r") as tar:
                tar.extractall(staged, filter="data")  # plain files only, nothing outside staged
            problem = self.check(staged, inputs)
            if problem is not None:
                raise StoreError(f"{kind} {key} arrived damaged: {problem}")
            return self._place(staged, kind, key)
