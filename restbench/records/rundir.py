"""The run directory: where a run's configuration, records, artifacts and summaries live.

Layout of ``runs/<name>/``::

    run.json        resolved config, seeds, split, provenance, status, deviations (atomic rewrite)
    results.jsonl   one typed record per line (append-only, validated, fsynced)
    artifacts/      checkpoints, .tflite files, predictions per subject
    summary.md/.csv the paper-shaped tables (restbench.report.summary)
    log.txt         the run's log

Every file is written so that a run killed at any moment leaves readable results: whole files
go through :mod:`restbench.records.atomic` (a temporary file in the same directory, fsync,
``os.replace``); records are appended as one complete line each, and a trailing half-written
line (a kill mid-write) is ignored with a warning when reading and cut off before the next
append. Records and run.json are checked against the JSON Schemas in ``restbench/schema/``
(draft 2020-12) before they are written, so a malformed number never reaches the leaderboard.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from restbench.errors import PluginError
from restbench.records.atomic import write_text_atomic
from restbench.records.cells import CELL_FIELDS, duplicate_cells
from restbench.records.jsonio import load_json, to_jsonable, utc_now, write_json_atomic
from restbench.records.provenance import provenance
from restbench.records.schema import SCHEMA_VERSION, validate_record, validate_run


class PartialRecordWarning(UserWarning):
    """results.jsonl ended in a half-written line (the run was killed mid-write); it was skipped."""

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
    registry: Any,
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


