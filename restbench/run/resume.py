"""Continuing a run directory: which directories a run may write into, whether a resumed run is
the same experiment, and which of its files can still be trusted."""

from __future__ import annotations

import json
from pathlib import Path

from restbench.plugins.contract import PluginError, UsageError
from restbench.records.verify import verify

RESUME_EXTENDABLE = ("methods", "corruptions", "seeds", "exporters", "runners")


def resume_differences(old: dict, new: dict, allow_extend: bool) -> list[str]:
    """Why a run directory written with ``old`` (its run.json) cannot be continued with ``new``:
    any difference in the resolved configuration, plugin options or versions, or the data.
    With ``allow_extend``, methods, corruptions, seeds, exporters and runners may be added."""
    out = []
    old_config = {k: v for k, v in (old.get("config") or {}).items() if k != "seeds"}
    new_config = {k: v for k, v in new["config"].items() if k != "seeds"}
    for key in sorted(set(old_config) | set(new_config)):
        if old_config.get(key) != new_config.get(key):
            out.append(f"{key}: {json.dumps(old_config.get(key))} -> {json.dumps(new_config.get(key))}")
    for section in ("options", "plugin_versions"):
        before, after = old.get(section) or {}, new.get(section) or {}
        if section == "options":  # an option at null is "not set", like one a plugin did not have yet
            before, after = _set_options(before), _set_options(after)
        for oid in sorted(set(before) | set(after)):
            if oid in before and oid in after and before[oid] != after[oid]:
                out.append(f"{section} of {oid}: {json.dumps(before[oid])} -> {json.dumps(after[oid])}")
            elif oid in before and oid not in after and not allow_extend:
                out.append(f"{oid} is no longer part of the run")
    if (old.get("dataset") or {}).get("fingerprint") != new["dataset"].get("fingerprint"):
        out.append("the dataset's fingerprint changed (other files or preparation)")
    for name in RESUME_EXTENDABLE:
        before, after = list(old.get(name) or []), list(new.get(name) or [])
        if before == after:
            continue
        if allow_extend and set(before) <= set(after):
            continue
        out.append(f"{name}: {json.dumps(before)} -> {json.dumps(after)}"
                   + ("" if allow_extend else " (--allow-extend may add, never change)"))
    return out + _eval_set_differences(old.get("eval_sets") or [], new.get("eval_sets") or [], allow_extend)


#: What must stay equal for an evaluation set's recorded cells to stand (its files may move).
_EVAL_SET_IDENTITY = ("dataset", "version", "protocol", "n_subjects", "split", "options")


def _eval_set_differences(before: list[dict], after: list[dict], allow_extend: bool) -> list[str]:
    """Evaluation sets (--eval-dataset) are compared by name: a kept one must be the same data
    and options; with ``allow_extend`` new ones may be added, none removed."""
    old, new = {s["name"]: s for s in before}, {s["name"]: s for s in after}
    out = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            out.append(f"evaluation set {name} is no longer part of the run (give its --eval-dataset again)")
        elif name not in old:
            if not allow_extend:
                out.append(f"evaluation set {name} is new (--allow-extend may add it)")
        else:
            for key in _EVAL_SET_IDENTITY:
                if old[name].get(key) != new[name].get(key):
                    out.append(f"evaluation set {name} {key}: {json.dumps(old[name].get(key))} -> "
                               f"{json.dumps(new[name].get(key))}")
            if (old[name].get("data") or {}).get("fingerprint") != (new[name].get("data") or {}).get("fingerprint"):
                out.append(f"evaluation set {name}: its data's fingerprint changed (other files or preparation)")
    return out


def _set_options(options: dict) -> dict:
    return {oid: {k: v for k, v in values.items() if v is not None} if isinstance(values, dict) else values
            for oid, values in options.items()}


def check_integrity(run_dir: Path, old_info: dict | None) -> set[str]:
    """Before a resume trusts anything: results edited since the run recorded them are
    refused; artifacts that differ from the record are returned (their jobs are redone)."""
    if not old_info or not old_info.get("integrity"):
        return set()  # an interrupted run has no record yet; checkpoints are still key-checked
    report = verify(run_dir)
    if report.results_changed or report.invalid_records or report.duplicate_cells:
        raise PluginError(f"--resume: {run_dir}/results.jsonl differs from what the run recorded "
                          f"({'; '.join(report.differences()[:3])}); run restbench verify {run_dir}")
    return set(report.modified) | set(report.missing)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A run writes only into a new or empty directory, or (with --resume) into a run directory."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--run-dir: {run_dir} is a file; choose a directory")
    if not run_dir.exists() or not any(p.name != ".lock" for p in run_dir.iterdir()):
        return
    if not (run_dir / "run.json").exists():
        raise UsageError(f"--run-dir: {run_dir} is not empty and is not a restbench run directory; choose another")
    if (run_dir / "results.jsonl").exists() and not resume:
        raise UsageError(f"--run-dir: {run_dir} already holds results; pass --resume to continue it or choose another --name")
