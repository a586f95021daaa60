"""What a leaderboard records of each run: the SHA-256 of its files and a digest of its provenance.

Every number of a leaderboard comes from a run whose run.json, results.jsonl and artifacts
(checkpoints, exported files, predictions) are hashed here, and whose versions, commit, dataset,
hardware and runtime are summarised in its entry of leaderboard.json ``runs``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from restbench.records.provenance import machine_of
from restbench.records.rundir import RunDir
from restbench.records.verify import sha256_file
from restbench.report.runs import LoadedRun


def run_files(folder: Path) -> dict[str, str]:
    """SHA-256 of run.json, results.jsonl and every file under artifacts/, by relative path."""
    files = {name: sha256_file(folder / name) for name in (RunDir.RUN_JSON, RunDir.RESULTS)}
    artifacts = folder / "artifacts"
    if artifacts.is_dir():
        for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
            files[path.relative_to(folder).as_posix()] = sha256_file(path)
    return files


def config_hash(info: dict) -> str:
    """SHA-256 of a run's recorded config (canonical JSON)."""
    blob = json.dumps(info.get("config") or {}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def plugin_of(info: dict, method: str) -> dict | None:
    """The plugin the run's provenance names as registering ``method`` (None: none does)."""
    for plugin in (info.get("provenance") or {}).get("plugins") or []:
        if method in ((plugin.get("registered") or {}).get("methods") or []):
            return {k: plugin.get(k) for k in ("name", "distribution", "version", "module")}
    return None


def run_summary(run: LoadedRun, rel_path: str, files: dict[str, str], published: list[str], label: str,
                reproduction: dict | None = None) -> dict:
    """A run's entry in leaderboard.json ``runs``: where it is, what it ran, its provenance (versions,
    commit, dataset, hardware, runtime), the SHA-256 of its ``files``, the ones ``published`` in
    the folder, its ``label`` and, for a reproduced run, the ``reproduction`` record."""
    info, prov = run.info, run.info.get("provenance") or {}
    dataset = info.get("dataset") or {}
    config = info.get("config") or {}
    devices = sorted({r["device"] for r in run.records if r.get("record_type") == "latency" and r.get("device")})
    return {
        "name": run.name,
        "path": rel_path,
        "status": info["status"],
        "seeds": list(info["seeds"]),
        "methods": list(info["methods"]),
        "corruptions": list(info.get("corruptions", [])),
        "profile": config.get("profile"),
        "config_hash": config_hash(info),
        "restbench_version": prov.get("restbench_version"),
        "git_commit": prov.get("git_commit"),
        "git_dirty": prov.get("git_dirty"),
        "created": info.get("created"),
        "finished": info.get("finished"),
        "dataset": {"id": config.get("dataset") or dataset.get("name"), "fingerprint": dataset.get("fingerprint"),
                    "split": dataset.get("split") or {}},
        "hardware": {**machine_of(prov), "latency_devices": devices},
        "runtime": {
            "python_version": prov.get("python_version"),
            "python_implementation": prov.get("python_implementation"),
            "packages": prov.get("packages") or {},
            "plugin_env": prov.get("plugin_env") or {},
        },
        "plugins": [{k: p.get(k) for k in ("name", "distribution", "version", "status")}
                    for p in prov.get("plugins") or []],
        "files": files,
        "published_files": published,
        "label": label,
        **({"reproduction": reproduction} if reproduction is not None else {}),
        "deviations": list(info.get("deviations") or []),
    }


__all__ = ["config_hash", "plugin_of", "run_files", "run_summary"]
