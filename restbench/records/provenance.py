"""Provenance: everything a number may depend on besides its config (software versions, plugins,
commit, hardware), with no host name, user name or path."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from restbench import __version__
from restbench.records.jsonio import utc_now

#: Packages whose versions a number may depend on (read from metadata, never imported); the
#: exporters and runners add the ones they declare (:func:`declared_packages`).
KEY_PACKAGES: tuple[str, ...] = (
    "torch",
    "numpy",
    "scipy",
    "mne",
    "pluggy",
    "scikit-learn",
    "jsonschema",
)

#: Environment variables that change which plugins load (their values are plugin names only).
_PLUGIN_ENV = ("RESTBENCH_STRICT_PLUGINS", "RESTBENCH_PLUGINS_ALLOW", "RESTBENCH_PLUGINS_BLOCK")

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


def declared_packages(registry: Any) -> tuple[str, ...]:
    """The distributions the registered exporters and runners say their numbers depend on (their
    optional ``packages`` attribute, e.g. a converter and its runtime), each once, in registration
    order."""
    names: list[str] = []
    for kind in ("exporters", "runners"):
        for obj in registry.all(kind).values():
            names += [name for name in getattr(obj, "packages", ()) or () if name not in names]
    return tuple(names)


def _package_versions(names: tuple[str, ...]) -> dict[str, str]:
    versions = {}
    for name in dict.fromkeys(names):  # once each, in order
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


def provenance(registry: Any) -> dict:
    """Everything a number may depend on besides the config: software versions, plugins, the
    restbench commit, and hardware. No hostname, user name or path is recorded.

    ``registry`` is the plugin registry the run loaded (its ``plugins`` statuses are recorded).
    Packages are looked up in their metadata, never imported; torch's thread count is read only if
    torch is already imported.
    """
    package_dir = Path(__file__).resolve().parents[1]  # the restbench package
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
        "restbench_version": __version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": _package_versions(KEY_PACKAGES + declared_packages(registry)),
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
