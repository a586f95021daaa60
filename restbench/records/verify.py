"""Tamper evidence for a run directory: digests recorded when a run completes, checked later.

When a run completes, the pipeline stores :func:`integrity` under the key ``integrity`` of
``run.json``::

    "integrity": {"artifacts": {"artifacts/models/sors-seed0-<key>.pt": "<sha256>", ...},
                  "results_sha256": "<sha256 of results.jsonl's bytes>"}

:func:`verify` (``restbench verify RUN_DIR``) recomputes both and lists exactly what differs:
artifact files modified, missing or unexpected, and results.jsonl changed. It also checks what
needs no recorded digest: run.json against its schema, every record against the record schema,
each robustness record's ``macro_f1`` against its own confusion counts, and duplicate cells
(two records for one record type, method, seed, corruption, severity, variant, runner and phase).

Digests show that files changed after the run, not who changed them: anyone who can edit the
files can also rewrite run.json. They catch edits, swaps, deletions and copies by mistake.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restbench.errors import PluginError, UsageError

#: The run.json key holding the digests.
INTEGRITY_KEY = "integrity"
#: Fields that name one result cell: two records with equal values here are duplicates.
CELL_FIELDS: tuple[str, ...] = ("record_type", "method", "seed", "corruption", "severity", "variant", "runner", "phase",
                                "eval_set")
#: Largest difference tolerated between a record's macro_f1 and the one its confusion counts give.
F1_TOLERANCE = 1e-9

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (one definition for run, store and leaderboard)."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            sha.update(block)
    return sha.hexdigest()


def artifact_digests(run_dir: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every file under ``run_dir/artifacts`` (checkpoints, exported models,
    predictions), keyed by its path relative to ``run_dir`` with ``/`` separators, sorted."""
    run_dir = Path(run_dir)
    root = run_dir / "artifacts"
    if not root.is_dir():
        return {}
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            out[path.relative_to(run_dir).as_posix()] = sha256_file(path)
    return out


def results_digest(run_dir: str | os.PathLike) -> str:
    """SHA-256 of ``run_dir/results.jsonl``'s bytes (of no bytes when the file does not exist)."""
    path = Path(run_dir) / "results.jsonl"
    return sha256_file(path) if path.is_file() else hashlib.sha256(b"").hexdigest()


def integrity(run_dir: str | os.PathLike) -> dict[str, Any]:
    """What run.json records under ``integrity`` when a run completes (call it after the last
    artifact and record are written, then write run.json)."""
    return {"artifacts": artifact_digests(run_dir), "results_sha256": results_digest(run_dir)}


@dataclass
class VerifyReport:
    """What :func:`verify` found; ``ok`` when nothing differs.

    ``modified``/``missing``/``unexpected``: artifact paths (relative to the run directory)
    whose content differs from, are absent from, or are not in the recorded digests.
    ``results_changed``: results.jsonl's digest differs. ``invalid_records``: one line per
    record that fails its schema or its own consistency checks. ``duplicate_cells``: one line
    per cell recorded more than once. ``problems``: anything else (no digests recorded,
    run.json malformed).
    """

    run_dir: Path
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    results_changed: bool = False
    invalid_records: list[str] = field(default_factory=list)
    duplicate_cells: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    n_artifacts: int = 0
    n_records: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences()

    def differences(self) -> list[str]:
        """One line per difference, in a fixed order."""
        out = list(self.problems)
        out += [f"modified: {p}" for p in self.modified]
        out += [f"missing: {p}" for p in self.missing]
        out += [f"unexpected: {p}" for p in self.unexpected]
        if self.results_changed:
            out.append("changed: results.jsonl (its SHA-256 differs from the one run.json records)")
        out += [f"invalid record: {line}" for line in self.invalid_records]
        out += [f"duplicate cell: {line}" for line in self.duplicate_cells]
        return out

    def summary(self) -> str:
        """The one line printed when nothing differs."""
        return (f"OK {self.run_dir}: {self.n_artifacts} artifact{'s' if self.n_artifacts != 1 else ''} and "
                f"{self.n_records} record{'s' if self.n_records != 1 else ''} match run.json")

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": str(self.run_dir), "ok": self.ok, "modified": self.modified, "missing": self.missing,
                "unexpected": self.unexpected, "results_changed": self.results_changed,
                "invalid_records": self.invalid_records, "duplicate_cells": self.duplicate_cells,
                "problems": self.problems}


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _check_digests(run_dir: Path, recorded: Any, report: VerifyReport) -> None:
    if recorded is None:
        report.problems.append(f"run.json records no '{INTEGRITY_KEY}' digests (the run did not complete, or an "
                               "older restbench wrote it): nothing to compare the files with")
        return
    artifacts = recorded.get("artifacts") if isinstance(recorded, dict) else None
    results = recorded.get("results_sha256") if isinstance(recorded, dict) else None
    if not isinstance(artifacts, dict) or not all(_is_sha256(v) for v in artifacts.values()) or not _is_sha256(results):
        report.problems.append(f"run.json: '{INTEGRITY_KEY}' is malformed (expected artifacts: {{path: sha256}} "
                               "and results_sha256)")
        return
    now = artifact_digests(run_dir)
    report.modified = sorted(p for p in artifacts if p in now and now[p] != artifacts[p])
    report.missing = sorted(p for p in artifacts if p not in now)
    report.unexpected = sorted(p for p in now if p not in artifacts)
    report.results_changed = results_digest(run_dir) != results


def _cell(record: dict) -> str:
    return ", ".join(f"{name}={json.dumps(record.get(name))}" for name in CELL_FIELDS if record.get(name) is not None)


def _check_records(run_dir: Path, report: VerifyReport) -> None:
    from restbench.records.confusion import macro_f1_from_confusion
    from restbench.records.schema import validate_record

    path = run_dir / "results.jsonl"
    if not path.is_file():
        report.problems.append("missing: results.jsonl")
        return
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        report.invalid_records.append(f"results.jsonl:{len(lines)}: last line has no newline (half-written?)")
    first_line: dict[tuple, int] = {}
    duplicates: dict[tuple, list[int]] = {}
    for number, raw in enumerate(lines, start=1):
        where = f"results.jsonl:{number}"
        if not raw.strip():
            report.invalid_records.append(f"{where}: empty line")
            continue
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            report.invalid_records.append(f"{where}: not a JSON record ({exc})")
            continue
        report.n_records += 1
        try:
            validate_record(record)
        except PluginError as exc:
            report.invalid_records.append(f"{where}: {exc}")
            continue
        if record.get("record_type") == "robustness":
            import numpy as np

            expected = float(macro_f1_from_confusion(np.asarray(record["confusion_counts"], dtype=float)))
            if not math.isclose(record["macro_f1"], expected, rel_tol=0, abs_tol=F1_TOLERANCE):
                report.invalid_records.append(
                    f"{where}: macro_f1 is {record['macro_f1']!r} but its confusion_counts give {expected!r} ({_cell(record)})")
        key = tuple(json.dumps(record.get(name), sort_keys=True) for name in CELL_FIELDS)
        if key in first_line:
            duplicates.setdefault(key, [first_line[key]]).append(number)
        else:
            first_line[key] = number
    for key, numbers in duplicates.items():
        fields = {name: json.loads(value) for name, value in zip(CELL_FIELDS, key)}
        report.duplicate_cells.append(f"{_cell(fields)} on results.jsonl lines {', '.join(map(str, numbers))}")


def verify(run_dir: str | os.PathLike) -> VerifyReport:
    """Recompute a finished run's digests and re-check its records; see the module docstring.

    Raises :class:`UsageError` (exit 2) when ``run_dir`` is not a run directory (no run.json).
    """
    from restbench.records.schema import validate_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"RUN_DIR: {run_dir} is not a directory; pass a directory written by 'restbench run'")
    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise UsageError(f"RUN_DIR: {run_dir} has no run.json; pass a directory written by 'restbench run'")
    report = VerifyReport(run_dir=run_dir)
    try:
        run_info = json.loads(run_json.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.problems.append(f"run.json: not valid JSON ({exc})")
        run_info = None
    if run_info is not None:
        if not isinstance(run_info, dict):
            report.problems.append("run.json: not a JSON object")
        else:
            try:
                validate_run(run_info)
            except PluginError as exc:
                report.problems.append(str(exc))
            _check_digests(run_dir, run_info.get(INTEGRITY_KEY), report)
    report.n_artifacts = len(artifact_digests(run_dir))
    _check_records(run_dir, report)
    return report


__all__ = ["CELL_FIELDS", "INTEGRITY_KEY", "VerifyReport", "artifact_digests", "integrity", "results_digest", "verify"]
