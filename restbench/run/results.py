"""The run directory: where a run's configuration, records, artifacts and summaries live.

Layout of ``runs/<name>/``::

    run.json        resolved config, seeds, split, provenance, status, deviations (atomic rewrite)
    results.jsonl   one typed record per line (append-only, validated, fsynced)
    artifacts/      checkpoints, .tflite files, predictions per subject
    summary.md/.csv the paper-shaped tables (restbench.report.summary)
    log.txt         the run's log

Every file is written so that a run killed at any moment leaves readable results: whole files
go through :mod:`restbench.run.atomic` (a temporary file in the same directory, fsync,
``os.replace``); records are appended as one complete line each, and a trailing half-written
line (a kill mid-write) is ignored with a warning when reading and cut off before the next
append. Records and run.json are checked against the JSON Schemas in ``restbench/schema/``
(draft 2020-12) before they are written, so a malformed number never reaches the leaderboard.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Iterable

from restbench.api import PluginError
from restbench.run.atomic import write_json_atomic as _write_json_atomic
from restbench.run.atomic import write_text_atomic

#: Version of the record and run.json layout. Minor bumps add optional fields only;
#: the schemas accept any ``1.x``.
SCHEMA_VERSION = "1.1"

RECORD_TYPES: tuple[str, ...] = ("robustness", "efficiency", "latency", "training")

RUN_STATUSES: tuple[str, ...] = ("running", "complete", "failed")

_CUSTOM_TYPE = re.compile(r"^x-[a-z0-9]+(?:-[a-z0-9]+)*$")

#: Packages whose versions a number may depend on (read from metadata, never imported).
KEY_PACKAGES: tuple[str, ...] = (
    "torch",
    "numpy",
    "scipy",
    "mne",
    "pluggy",
    "scikit-learn",
    "ai-edge-litert",
    "litert-torch",
    "jsonschema",
)

#: Environment variables that change which plugins load (their values are plugin names only).
_PLUGIN_ENV = ("RESTBENCH_STRICT_PLUGINS", "RESTBENCH_PLUGINS_ALLOW", "RESTBENCH_PLUGINS_BLOCK")


class PartialRecordWarning(UserWarning):
    """results.jsonl ended in a half-written line (the run was killed mid-write); it was skipped."""


# --------------------------------------------------------------------------- plain JSON


def utc_now() -> str:
    """The current UTC time as an ISO 8601 string with seconds (``2025-01-31T12:00:00+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` as plain JSON data: numpy/torch scalars and arrays become Python numbers
    and lists, tuples become lists, ``Path`` becomes a string. Strings are never parsed into
    numbers and unknown objects are left for ``json`` to reject."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)  # an IntEnum or a bool subclass would otherwise dump oddly
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    # numpy scalars/arrays and torch tensors, without importing either
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Replace the file at ``path`` with ``obj`` as indented JSON atomically; returns the path.

    numpy/torch numbers are converted first (:func:`to_jsonable`); NaN and infinity are refused
    (JSON has neither). The write itself is :func:`restbench.run.atomic.write_json_atomic`."""
    return _write_json_atomic(path, to_jsonable(obj))


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file is a :class:`PluginError` naming it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise PluginError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise PluginError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


# --------------------------------------------------------------------------- schemas


@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The JSON Schema ``restbench/schema/<name>.schema.json`` (``name``: "record" or "run")."""
    text = resources.files("restbench").joinpath("schema", f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator(name: str):
    from jsonschema import Draft202012Validator  # imported on first validation only

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _field_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe_error(error) -> str:
    """One line naming the field and what is wrong with it."""
    where = _field_path(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance and repr(p) in error.message]
        name = missing[0] if missing else error.message.split("'")[1]
        full = f"{where}.{name}" if where else name
        return f"missing field '{full}'"
    value = json.dumps(error.instance, default=str)
    if len(value) > 60:
        value = value[:57] + "..."
    if error.validator == "type":
        return f"field '{where}' is {value}, expected type {error.validator_value}"
    if error.validator == "const":
        return f"field '{where}' is {value}, expected {json.dumps(error.validator_value)}"
    if error.validator == "enum":
        return f"field '{where}' is {value}, expected one of {json.dumps(error.validator_value)}"
    if where:
        return f"field '{where}': {error.message}"
    return error.message


def _first_error(name: str, instance: Any) -> tuple[str, int] | None:
    from jsonschema.exceptions import best_match

    errors = list(_validator(name).iter_errors(instance))
    if not errors:
        return None
    return _describe_error(best_match(errors)), len(errors)


def _non_finite(obj: Any, path: tuple = ()) -> tuple | None:
    """Path of the first NaN/inf float in ``obj``, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = _non_finite(v, path + (k,))
            if found is not None:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found = _non_finite(v, path + (i,))
            if found is not None:
                return found
    return None


def _check(name: str, what: str, instance: Any) -> None:
    if not isinstance(instance, dict):
        raise PluginError(f"invalid {what}: expected a JSON object, got {type(instance).__name__}")
    bad = _non_finite(instance)
    if bad is not None:
        raise PluginError(
            f"invalid {what}: field '{_field_path(bad)}' is {instance_at(instance, bad)!r}; "
            "JSON has no NaN/inf: store a finite number or null"
        )
    found = _first_error(name, instance)
    if found is not None:
        message, count = found
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise PluginError(f"invalid {what}: {message}{more}")


def instance_at(obj: Any, path: tuple) -> Any:
    """The value at ``path`` (keys and indices) inside ``obj``."""
    for part in path:
        obj = obj[part]
    return obj


def validate_record(record: dict) -> dict:
    """Check one results record against ``record.schema.json`` plus the checks a schema cannot
    express (confusion rows sum to 1, counts add up to ``n_windows``).

    numpy/torch numbers and tuples are accepted (they are checked in their JSON form). Returns
    the record as plain JSON data (what :meth:`RunDir.append` writes); raises
    :class:`PluginError` with a one-line message naming the field.
    """
    record = to_jsonable(record)
    kind = record.get("record_type") if isinstance(record, dict) else None
    known = isinstance(kind, str) and (kind in RECORD_TYPES or _CUSTOM_TYPE.match(kind) is not None)
    what = f"{kind} record" if known else "record"
    if isinstance(record, dict) and "record_type" in record and not known:
        raise PluginError(
            f"invalid record: field 'record_type' is {json.dumps(kind, default=str)}, expected one of "
            f"{', '.join(RECORD_TYPES)} (or a custom type starting with 'x-')"
        )
    _check("record", what, record)
    if record["record_type"] == "robustness":
        for i, row in enumerate(record["confusion"]):
            total = sum(row)
            if abs(total - 1.0) > 1e-4 and total != 0:
                raise PluginError(
                    f"invalid {what}: field 'confusion[{i}]' sums to {total:.6g}; "
                    "rows must be normalised (sum 1, or 0 for a stage absent from the test set)"
                )
        counted = sum(sum(row) for row in record["confusion_counts"])
        if counted != record["n_windows"]:
            raise PluginError(
                f"invalid {what}: field 'confusion_counts' adds up to {counted} windows "
                f"but 'n_windows' is {record['n_windows']}"
            )
        ci = record["macro_f1_ci95"]
        if ci is not None and ci[0] > ci[1]:
            raise PluginError(f"invalid {what}: field 'macro_f1_ci95' has lower bound {ci[0]} above upper {ci[1]}")
    return record


def validate_run(run_info: dict) -> dict:
    """Check run.json content against ``run.schema.json``; returns it as plain JSON data or
    raises :class:`PluginError` naming the field."""
    run_info = to_jsonable(run_info)
    _check("run", "run.json", run_info)
    return run_info


def make_record(
    record_type: str,
    *,
    dataset: str,
    model: str,
    method: str,
    compressor: str | None,
    seed: int,
    profile: str,
    **fields: Any,
) -> dict:
    """A record dict with the common identity fields first and ``schema_version`` filled in
    (not validated here: :meth:`RunDir.append` validates)."""
    record = {
        "schema_version": SCHEMA_VERSION,
        "record_type": record_type,
        "dataset": dataset,
        "model": model,
        "method": method,
        "compressor": compressor,
        "seed": seed,
        "profile": profile,
    }
    record.update(fields)
    return to_jsonable(record)


#: The fields that name one result cell: a run holds at most one record per cell.
CELL_FIELDS = ("record_type", "dataset", "model", "method", "seed", "corruption", "severity", "variant", "runner", "phase")


def cell_of(record: dict) -> tuple:
    """The cell a record fills (see :data:`CELL_FIELDS`)."""
    return tuple(record.get(name) for name in CELL_FIELDS)


def duplicate_cells(records: Iterable[dict]) -> list[tuple]:
    """Cells filled more than once, in first-seen order (a run directory written twice)."""
    seen, dup = set(), []
    for record in records:
        cell = cell_of(record)
        if cell in seen and cell not in dup:
            dup.append(cell)
        seen.add(cell)
    return dup


# --------------------------------------------------------------------------- provenance


def _git_commit(package_dir: Path) -> tuple[str | None, bool | None]:
    """Commit and dirty flag of the checkout restbench runs from; (None, None) when it is not
    one (an installed wheel, or a package that merely sits inside somebody else's repository)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(package_dir), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != package_dir.parent.resolve():
        return None, None
    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None, None
    status = git("status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in KEY_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # not installed: absent rather than null
    return versions


def _scrub(obj: Any) -> Any:
    """Replace the home directory in strings (plugin error messages may quote file paths)."""
    home = str(Path.home())
    if isinstance(obj, str):
        return obj.replace(home, "~") if len(home) > 1 else obj
    if isinstance(obj, dict):
        return {k: _scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_scrub(v) for v in obj]
    return obj


def provenance(registry: Any = None) -> dict:
    """Everything a number may depend on besides the config: software versions, plugins, the
    restbench commit, and hardware. No hostname, user name or path is recorded.

    ``registry`` defaults to the process-wide plugin registry. Packages are looked up in their
    metadata, never imported; torch's thread count is read only if torch is already imported.
    """
    import restbench

    if registry is None:
        from restbench.plugins.registry import get_registry

        registry = get_registry()
    package_dir = Path(restbench.__file__).resolve().parent
    commit, dirty = _git_commit(package_dir)

    torch_threads = None
    accelerator = None
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch_threads = int(torch.get_num_threads())
            if torch.cuda.is_available():
                accelerator = torch.cuda.get_device_name(0)
        except Exception:  # a half-initialised torch must not break a run's bookkeeping
            pass
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable_cores = None

    return {
        "restbench_version": restbench.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": _package_versions(),
        "plugins": [_scrub(status.to_dict()) for status in registry.plugins],
        "plugin_env": {k: os.environ[k] for k in _PLUGIN_ENV if k in os.environ},
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "platform": platform.platform(),
        },
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_count_usable": usable_cores,
        "torch_threads": torch_threads,
        "accelerator": accelerator,
        "timestamp_utc": utc_now(),
    }


def machine_of(prov: dict) -> dict:
    """The machine part of a provenance record (:func:`provenance`): CPU, cores, threads,
    accelerator and platform string; no host or user name."""
    return {
        "cpu_model": prov.get("cpu_model"),
        "cpu_count": prov.get("cpu_count"),
        "cpu_count_usable": prov.get("cpu_count_usable"),
        "torch_threads": prov.get("torch_threads"),
        "accelerator": prov.get("accelerator"),
        "platform": (prov.get("platform") or {}).get("platform"),
    }


def new_run_info(
    name: str,
    *,
    config: dict,
    seeds: list[int],
    methods: list[str],
    corruptions: list[str],
    dataset: dict,
    deviations: list[str] | None = None,
    notes: list[str] | None = None,
    registry: Any = None,
    status: str = "running",
    **fields: Any,
) -> dict:
    """A run.json dict with schema version, creation time and provenance filled in; ``fields``
    adds the rest a run records (method recipes, resolved plugin options, runners, ...)."""
    return to_jsonable(
        {
            "schema_version": SCHEMA_VERSION,
            "name": name,
            "created": utc_now(),
            "finished": None,
            "status": status,
            "config": config,
            "seeds": list(seeds),
            "methods": list(methods),
            "corruptions": list(corruptions),
            "dataset": dataset,
            "deviations": list(deviations or []),
            "notes": list(notes or []),
            "provenance": provenance(registry),
            **fields,
        }
    )


# --------------------------------------------------------------------------- run directory


def _parse_tail(tail: bytes) -> dict | None:
    """A final line without its newline: a complete record when it parses, else None."""
    try:
        obj = json.loads(tail.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


class RunDir:
    """One run's directory (``runs/<name>/``): create it, write run.json and records, read them back.

    ``create=False`` opens an existing run and raises :class:`PluginError` when there is none.
    A run has one writer at a time (the pipeline); readers may look at any moment.
    """

    RUN_JSON = "run.json"
    RESULTS = "results.jsonl"
    SUMMARY_MD = "summary.md"
    SUMMARY_CSV = "summary.csv"
    LOG = "log.txt"

    def __init__(self, path: str | os.PathLike, create: bool = True) -> None:
        self.path = Path(path)
        if create:
            try:
                (self.path / "artifacts").mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise PluginError(f"cannot create run directory {self.path}: {exc.strerror}") from None
        elif not self.path.is_dir():
            raise PluginError(f"{self.path}: no such run directory")

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def artifacts(self) -> Path:
        """Folder for checkpoints, exported models and per-subject predictions."""
        return self.path / "artifacts"

    @property
    def run_json(self) -> Path:
        return self.path / self.RUN_JSON

    @property
    def results_jsonl(self) -> Path:
        return self.path / self.RESULTS

    @property
    def log_path(self) -> Path:
        return self.path / self.LOG

    # ---------------------------------------------------------------- run.json

    def write_run(self, run_info: dict) -> Path:
        """Validate and atomically (re)write run.json; returns its path."""
        return write_json_atomic(self.run_json, validate_run(run_info))

    def read_run(self) -> dict:
        """run.json as a dict (PluginError when missing or malformed)."""
        return load_json(self.run_json)

    # ---------------------------------------------------------------- records

    def append(self, record: dict) -> dict:
        """Validate ``record`` and append it to results.jsonl as one line, flushed and fsynced.

        numpy/torch numbers are converted to plain JSON first; returns the record as written.
        """
        record = validate_record(record)
        line = (json.dumps(record, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        self.results_jsonl.touch(exist_ok=True)
        with open(self.results_jsonl, "r+b") as fh:
            self._repair_tail(fh)
            fh.seek(0, os.SEEK_END)
            fh.write(line)  # one write of a whole line: a kill leaves at most a partial tail
            fh.flush()
            os.fsync(fh.fileno())
        return record

    def _repair_tail(self, fh) -> None:
        """Cut a half-written last line (left by a killed writer) so the next line starts clean;
        a complete record that only lacks its newline gets the newline instead."""
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return
        # Scan backwards in blocks for the previous newline.
        pos, block, start = size, 65536, 0
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                start = pos + idx + 1
                break
        fh.seek(start)
        tail = fh.read()
        if _parse_tail(tail) is not None:
            fh.seek(0, os.SEEK_END)
            fh.write(b"\n")
            return
        warnings.warn(
            f"{self.results_jsonl}: removed a half-written last line ({len(tail)} bytes) left by an interrupted run",
            PartialRecordWarning,
            stacklevel=3,
        )
        fh.truncate(start)

    def checked_records(self, refuse_duplicates: bool = True) -> list[dict]:
        """Every record, re-validated against the schema, with no cell recorded twice (unless the
        caller reports duplicates itself); anything else is a :class:`PluginError` naming the
        line or the cell. Readers that publish or summarise numbers use this, not :meth:`records`."""
        records = self.records()
        for number, record in enumerate(records, start=1):
            try:
                validate_record(record)
            except PluginError as exc:
                raise PluginError(f"{self.results_jsonl}: record {number}: {exc}") from None
        duplicates = duplicate_cells(records) if refuse_duplicates else []
        if duplicates:
            cell = ", ".join(f"{k}={v}" for k, v in zip(CELL_FIELDS, duplicates[0]) if v is not None)
            raise PluginError(f"{self.results_jsonl}: {len(duplicates)} result cell(s) recorded more than once "
                              f"(first: {cell}); two runs wrote into this directory or it was edited: check it "
                              "with restbench verify")
        return records

    def records(self, record_type: str | None = None) -> list[dict]:
        """All records in file order (only ``record_type`` ones when given).

        A half-written last line is skipped with a :class:`PartialRecordWarning`; a malformed
        line elsewhere is a :class:`PluginError` naming the line."""
        try:
            data = self.results_jsonl.read_bytes()
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        out: list[dict] = []
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise PluginError(f"{self.results_jsonl}:{number}: not a JSON record ({exc}); fix or delete the line") from None
            if not isinstance(record, dict):
                raise PluginError(f"{self.results_jsonl}:{number}: not a JSON object")
            out.append(record)
        if tail.strip():
            record = _parse_tail(tail)
            if record is None:
                warnings.warn(
                    f"{self.results_jsonl}: ignored a half-written last line ({len(tail)} bytes) left by an interrupted run",
                    PartialRecordWarning,
                    stacklevel=2,
                )
            else:
                out.append(record)
        if record_type is not None:
            out = [r for r in out if r.get("record_type") == record_type]
        return out

    # ---------------------------------------------------------------- other files

    def write_text_atomic(self, name: str, text: str) -> Path:
        """Atomically write ``text`` to ``<run>/<name>``; returns the path."""
        return write_text_atomic(self._inside(name), text)

    def write_json_atomic(self, name: str, obj: Any) -> Path:
        """Atomically write ``obj`` as JSON to ``<run>/<name>``; returns the path."""
        return write_json_atomic(self._inside(name), obj)

    def _inside(self, name: str) -> Path:
        target = (self.path / name).resolve()
        if not target.is_relative_to(self.path.resolve()):
            raise PluginError(f"{name!r}: file names must stay inside the run directory {self.path}")
        return target


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_run_name(name: str) -> str:
    """Return ``name`` when it is usable as a run directory name, else raise :class:`PluginError`."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name):
        raise PluginError(f"invalid run name {name!r}: use letters, digits, '.', '_' and '-' (e.g. 'paper-sleep-edf')")
    return name


__all__ = [
    "SCHEMA_VERSION",
    "RECORD_TYPES",
    "RUN_STATUSES",
    "PartialRecordWarning",
    "RunDir",
    "CELL_FIELDS",
    "cell_of",
    "check_run_name",
    "duplicate_cells",
    "load_json",
    "load_schema",
    "make_record",
    "new_run_info",
    "provenance",
    "to_jsonable",
    "utc_now",
    "validate_record",
    "validate_run",
    "write_json_atomic",
    "write_text_atomic",
]
