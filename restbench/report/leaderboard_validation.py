"""Checking a leaderboard folder: is every number in it what its runs give?

:func:`validate` reads leaderboard.json against its schema, checks each published run (present,
complete, compatible with the others, no cell recorded twice, the SHA-256 of every recorded file,
a ``reproduced`` label backed by its reproduction record) and recomputes the whole leaderboard
from the stored records, naming every stored number that differs. It never raises for a bad
leaderboard: the :class:`Validation` it returns lists what it found.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from restbench.evaluation.statistics import reproduction_within_tolerance
from restbench.plugins.contract import PluginError
from restbench.records.jsonio import load_json
from restbench.records.rundir import RunDir
from restbench.records.verify import sha256_file
from restbench.report.leaderboard import (
    INDEX_HTML,
    LEADERBOARD_CSV,
    LEADERBOARD_JSON,
    LEADERBOARD_MD,
    assemble,
    inside_folder,
)
from restbench.report.leaderboard_schema import schema_problems
from restbench.report.runs import LoadedRun, brief, check_compatible, check_complete, check_unique, load_run

#: Why a run is stale, from its name and run.json: one line per reason (none when current).
StaleCheck = Callable[[str, dict], list[str]]


@dataclass
class Validation:
    """What :func:`validate` found: ``problems`` make a leaderboard invalid; ``stale`` lines say
    it was made by another restbench version or profile definition; ``unchecked`` lists recorded
    artifact hashes whose files are not in the folder."""

    problems: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    checked_files: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"ok": self.ok, "problems": self.problems, "stale": self.stale, "unchecked": self.unchecked,
                "checked_files": self.checked_files}


def _compare(stored: Any, fresh: Any, where: str, out: list[str], limit: int = 50) -> None:
    """Append a line for every place where ``stored`` and ``fresh`` differ (numbers to 1e-9 relative)."""
    if len(out) >= limit:
        return
    if isinstance(stored, bool) or isinstance(fresh, bool) or stored is None or fresh is None:
        if stored != fresh:
            out.append(f"{where}: stored {brief(stored)}, recomputed {brief(fresh)}")
        return
    if isinstance(stored, (int, float)) and isinstance(fresh, (int, float)):
        if not math.isclose(stored, fresh, rel_tol=1e-9, abs_tol=1e-12):
            out.append(f"{where}: stored {stored!r}, recomputed {fresh!r}")
        return
    if isinstance(stored, dict) and isinstance(fresh, dict):
        for key in list(dict.fromkeys([*stored, *fresh])):
            if key not in fresh:
                out.append(f"{where}.{key}: stored but not recomputable from the runs")
            elif key not in stored:
                out.append(f"{where}.{key}: missing (the runs give {brief(fresh[key])})")
            else:
                _compare(stored[key], fresh[key], f"{where}.{key}", out, limit)
        return
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            out.append(f"{where}: stored {len(stored)} items, recomputed {len(fresh)}")
            return
        for i, (a, b) in enumerate(zip(stored, fresh)):
            _compare(a, b, f"{where}[{i}]", out, limit)
        return
    if stored != fresh:
        out.append(f"{where}: stored {brief(stored)}, recomputed {brief(fresh)}")


def validate(path: str | os.PathLike, stale: StaleCheck | None = None) -> Validation:
    """Check a leaderboard folder: schema; each run present, complete, compatible, without
    duplicate cells; SHA-256 of every recorded file present; every number recomputed from the
    stored records. ``stale`` names why a run is stale (its name and run.json -> lines);
    without one staleness is not judged (:func:`restbench.publish.validate_leaderboard` judges it
    against this installation). Never raises for a bad leaderboard: returns what it found."""
    folder = Path(path)
    report = Validation()
    try:
        data = load_json(folder / LEADERBOARD_JSON)
    except PluginError as exc:
        report.problems.append(str(exc))
        return report
    report.problems += schema_problems(data)
    if report.problems:
        return report
    runs = []
    for run in data["runs"]:
        run_folder = folder / run["path"]
        if not inside_folder(run_folder, folder):
            report.problems.append(f"runs[{run['name']}]: path {run['path']} leaves the leaderboard folder")
            continue
        for rel, digest in run["files"].items():
            file = run_folder / rel
            if not file.is_file():
                if rel in run.get("published_files", []) or rel in (RunDir.RUN_JSON, RunDir.RESULTS):
                    report.problems.append(f"runs[{run['name']}]: published file {rel} is missing")
                else:
                    report.unchecked.append(f"{run['name']}/{rel}")
                continue
            report.checked_files += 1
            actual = sha256_file(file)
            if actual != digest:
                report.problems.append(f"runs[{run['name']}]: {rel} was changed: SHA-256 {actual[:12]}…, "
                                       f"recorded {digest[:12]}…")
        try:
            loaded = load_run(run_folder)
        except PluginError as exc:
            report.problems.append(f"runs[{run['name']}]: {exc}")
            continue
        if loaded.name != run["name"]:
            report.problems.append(f"runs[{run['name']}]: its run.json names it {loaded.name}")
        report.problems += reproduction_problems(run, loaded)
        report.problems += check_complete(loaded)
        if stale is not None:
            report.stale += stale(loaded.name, loaded.info)
        runs.append(loaded)
    if len(runs) != len(data["runs"]):
        return report
    try:
        check_compatible(runs)
    except PluginError as exc:
        report.problems.append(str(exc))
        return report
    report.problems += check_unique(runs)
    try:
        fresh = assemble(runs, name=data["name"], baseline=data["baseline"]["method"],
                         baseline_source=data["baseline"]["source"], alpha=data["statistics"]["alpha"],
                         run_meta=data["runs"])
    except PluginError as exc:
        report.problems.append(f"cannot recompute the leaderboard from its runs: {exc}")
        return report
    found: list[str] = []
    keys = ["protocol", "baseline", "columns", "entries"]
    if data["schema_version"] == "1.0":  # written before the frontier, claims and per-subject cells existed
        for entry in fresh["entries"]:
            for cell in entry["cells"].values():
                cell.pop("per_subject", None)
        fresh["columns"] = [c for c in fresh["columns"] if not c["key"].startswith("ratio:")]
        for entry in fresh["entries"]:
            entry["cells"] = {k: v for k, v in entry["cells"].items() if not k.startswith("ratio:")}
    else:
        keys += ["frontier", "claims"]
    if "eval_sets" in data or "eval_sets" in fresh:
        keys.append("eval_sets")
    for key in keys:
        _compare(data.get(key), fresh[key], key, found)
    # the same numbers under readable names: entries[sors].cells[gaussian/high].mean
    report.problems += [_readable(line, data) for line in found]
    for name in (LEADERBOARD_MD, LEADERBOARD_CSV, INDEX_HTML):
        if not (folder / name).exists():
            report.problems.append(f"{name} is missing (rebuild with 'restbench leaderboard build')")
    for plot in data.get("plots", []):
        if not (folder / plot).is_file():
            report.problems.append(f"plot {plot} is missing")
    return report


def reproduction_problems(run: dict, loaded: LoadedRun) -> list[str]:
    """Problems: a run labelled ``reproduced`` whose ``reproduction`` record is missing, failed,
    outside its own tolerance, of other files, or counts another number of cells than it holds."""
    if run["label"] != "reproduced":
        return []
    where = f"runs[{run['name']}]"
    record = run.get("reproduction")
    if not isinstance(record, dict):
        return [f"{where}: labelled reproduced without a reproduction record (publish it with --reproduce)"]
    problems = []
    if not reproduction_within_tolerance(record):
        problems.append(f"{where}: labelled reproduced but its reproduction record shows no successful reproduction "
                        "within its tolerance")
    for key, name in (("results_sha256", RunDir.RESULTS), ("run_json_sha256", RunDir.RUN_JSON)):
        if record.get(key) != run["files"].get(name):
            problems.append(f"{where}: its reproduction record vouches for another {name} (SHA-256 differs)")
    cells = sum(1 for r in loaded.records if r.get("record_type") == "robustness")
    if record.get("cells_compared") != cells:
        problems.append(f"{where}: its reproduction record compared {record.get('cells_compared')} cells, "
                        f"the run holds {cells} robustness records")
    return problems


def _readable(line: str, data: dict) -> str:
    """A problem's path with the entry's key for its index: ``entries[liu]`` for ``entries[1]``."""
    if line.startswith("entries["):
        index = int(line[len("entries["):line.index("]")])
        if index < len(data["entries"]):
            return f"entries[{data['entries'][index]['key']}]" + line[line.index("]") + 1:]
    return line


__all__ = ["StaleCheck", "Validation", "reproduction_problems", "validate"]
