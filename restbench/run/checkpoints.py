"""Checkpoints as plain data: ``{model id, spec, state_dict, metadata}``.

They load with ``torch.load(weights_only=True)``: nothing in a checkpoint is executed, and the
network is rebuilt from its model plugin and spec, so a pruned model reloads at its pruned size.
A file that is not such a checkpoint (or is damaged), or one saved for another job than the one
it is loaded for, is refused with a one-line :class:`CheckpointError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restbench.deploy.export import check_summary
from restbench.plugins.contract import MethodContext, PluginError
from restbench.records.atomic import atomic_path


def save_checkpoint(path: Path, model_id: str, spec: dict, net: torch.nn.Module, **meta: Any) -> None:
    """Write atomically and durably (:func:`restbench.records.atomic.atomic_path`: a unique temp
    file, fsync, rename); ``meta`` values must be JSON-able."""
    checkpoint = {"model": model_id, "spec": spec, "state_dict": net.state_dict(), "meta": json.dumps(meta)}
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


class CheckpointError(PluginError):
    """A checkpoint file that cannot be trusted: not a restbench checkpoint, damaged, or saved
    for another job. A resume may catch it and retrain that job instead of stopping."""


def _one_line(exc: BaseException, limit: int = 160) -> str:
    """``exc`` as ``Type: first line`` (torch's messages run over many lines)."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    """The checkpoint dict and its parsed meta, or :class:`CheckpointError`.

    torch's own errors are not passed on: its unpickling error advises ``weights_only=False``,
    which would execute whatever the file holds.
    """
    import pickle

    not_ours = f"checkpoint {path} is not a restbench checkpoint or is corrupt"
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError:
        raise CheckpointError(f"{not_ours} (it does not read as plain tensors and data; nothing in it was run)") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zip errors, ... on damaged files
        reason = "unreadable" if "weights_only" in str(exc) else _one_line(exc)
        raise CheckpointError(f"{not_ours} ({reason})") from None
    if not isinstance(ckpt, dict) or not {"model", "spec", "state_dict"} <= set(ckpt):
        raise CheckpointError(f"{not_ours} (expected the keys model, spec and state_dict)")
    try:
        meta = json.loads(ckpt.get("meta", "{}"))
    except (TypeError, ValueError):
        meta = None
    if not isinstance(meta, dict) or not isinstance(ckpt["spec"], dict):
        raise CheckpointError(f"{not_ours} (its metadata is not a JSON object)")
    return ckpt, meta


def load_checkpoint(path: Path, registry=None, expected_key: str | None = None) -> tuple[torch.nn.Module, dict, dict]:
    """Rebuild ``(net, spec, meta)`` from a checkpoint through its model plugin.

    ``expected_key``: the job key the caller wants (the pipeline's training key); a checkpoint
    that records another key (``meta["key"]``), or none, is refused. Every problem with the
    file is a one-line :class:`CheckpointError` naming it.
    """
    from restbench.plugins.registry import get_registry

    registry = registry or get_registry()
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"checkpoint {path} not found; pass a .pt file from a run's artifacts/models/")
    ckpt, meta = _read_checkpoint(path)
    if expected_key is not None and meta.get("key") != expected_key:
        stored = meta.get("key")
        raise CheckpointError(
            f"checkpoint {path} was saved for job {stored if stored is not None else '(none recorded)'}, "
            f"not for job {expected_key} it is loaded for; it was replaced or copied from elsewhere"
        )
    try:
        model = registry.get("models", ckpt["model"])
        from restbench.training.pruning import build_from_spec

        net, spec = build_from_spec(model, ckpt["spec"])  # also networks pruned through derived groups
        net.load_state_dict(ckpt["state_dict"])
    except PluginError:  # e.g. its model plugin is not installed: not a fault of the file
        raise
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is not a restbench checkpoint or is corrupt "
                              f"(rebuilding its model failed: {_one_line(exc)})") from None
    net.eval()
    return net, spec, meta


def export_checkpoint(path: Path, out: Path, int8: bool = True, calibration_dataset: str | None = None,
                      cache_dir: Path | None = None, data_dir: Path | None = None,
                      exporters: list[str] | None = None) -> dict:
    """Export a checkpoint's deployed pipeline (its method's test-time transforms included) through
    the registered exporters, each file checked against PyTorch on validation windows; returns the
    report ``{"checkpoint", "files": {variant: {"path", "size_kb", "check", "failed"}}}``.

    ``exporters``: exporter ids (None: those marked default). With one exporter its files go to
    ``out`` and are keyed by variant without the exporter's prefix (``tflite-int8`` -> ``int8``);
    with several, each writes to ``out/EXPORTER/`` and keys are the full variant names. Files are
    always written afresh (a file from an earlier export is replaced, never reused). ``int8=False``
    drops the int8 variant of exporters that declare a ``variants`` option. A failed check or a
    variant that could not be written is a one-line :class:`PluginError` after every file is
    written."""
    from restbench.data.cache import default_cache_dir
    from restbench.deploy.transforms import deploy
    from restbench.plugins.contract import DatasetOptions
    from restbench.plugins.registry import get_registry
    from restbench.training.loop import subsample

    registry = get_registry()
    chosen, skipped = _chosen_exporters(registry, exporters, path)
    net, spec, meta = load_checkpoint(path, registry)
    transforms = []
    if meta.get("method") in registry.all("methods"):
        from restbench.plugins.options import fill_options, options_of

        method = registry.get("methods", meta["method"])
        options = fill_options(options_of(method), meta.get("method_options") or {}, method.id)
        recipe = method.recipe(MethodContext(meta.get("dataset", ""), meta.get("knobs", {}), options))
        transforms = recipe.test_transforms
    dataset_id = calibration_dataset or meta.get("dataset")
    if not dataset_id:
        raise PluginError(f"checkpoint {path} names no dataset; pass --calibration-dataset")
    dataset = registry.get("datasets", dataset_id, "--calibration-dataset")
    same_dataset = dataset_id == meta.get("dataset")
    if data_dir is None and same_dataset and meta.get("data_dir"):
        data_dir = Path(meta["data_dir"])
    data = dataset.prepare(DatasetOptions(data_dir=data_dir, cache_dir=cache_dir or default_cache_dir(),
                                          n_subjects=meta.get("knobs", {}).get("n_subjects") if same_dataset else None,
                                          extra=meta.get("dataset_options", {}) if same_dataset else {}))
    if data.n_times != spec.get("n_times", data.n_times):
        raise PluginError(f"--calibration-dataset: {dataset_id} has {data.n_times}-sample windows, the checkpoint expects {spec.get('n_times')}")
    deployed = deploy(net, transforms, data.sfreq)
    rng = np.random.default_rng(0)
    calib, _ = data.get(subsample(data.windows("train"), 64, rng))
    check, _ = data.get(subsample(data.windows("val"), 64, rng))
    files: dict[str, dict] = {}
    for exporter in chosen:
        folder = Path(out) if len(chosen) == 1 else Path(out) / exporter.id
        for variant in _export_fresh(exporter, deployed, calib, check, folder, path.stem, _export_options(exporter, int8)):
            key = variant.variant.removeprefix(f"{exporter.id}-") if len(chosen) == 1 else variant.variant
            written = not variant.failed
            files[key] = {"path": str(variant.path) if written else None,
                          "size_kb": float(variant.size_kb) if written else None,
                          "check": variant.check, "failed": variant.failed}
    failed = [f"{key}: {f['failed']}" if f["failed"] else f"{key}: {check_summary(f['check'])}"
              for key, f in files.items() if f["failed"] or (f["check"] and not f["check"].get("passed", True))]
    if failed:
        raise PluginError(f"export check failed for {path} ({'; '.join(failed)}); the files are in {out}")
    report: dict = {"checkpoint": str(path), "files": files}
    if skipped:
        report["skipped"] = skipped
    return report


def _chosen_exporters(registry, ids: list[str] | None, path: Path) -> tuple[list, list[str]]:
    """The exporters to run and why any default one is skipped. Named ones must all be available;
    of the defaults, the unavailable are skipped. None left is a one-line error."""
    from restbench.plugins.contract import UsageError

    objects = registry.defaults("exporters") if ids is None else registry.resolve("exporters", ids, "--exporters")
    if not objects:
        raise UsageError("--exporters: no exporter chosen (and none is marked default); name one, see "
                         "restbench list exporters")
    chosen, skipped = [], []
    for exporter in objects:
        ok, reason = exporter.available()
        if ok:
            chosen.append(exporter)
        else:
            skipped.append(f"exporter {exporter.id} unavailable: {reason}")
    if not chosen or (ids is not None and skipped):
        raise PluginError(f"cannot export {path}: {'; '.join(skipped)}")
    return chosen, skipped


def _export_options(exporter, int8: bool) -> dict:
    """The exporter's options for a checkpoint export: its defaults, without the int8 variant
    when ``int8`` is off and it declares a ``variants`` option."""
    from restbench.plugins.options import options_of

    declared = {option.name: option for option in options_of(exporter)}
    if int8 or "variants" not in declared:
        return {}
    return {"variants": [v for v in declared["variants"].default if v != "int8"]}


def _export_fresh(exporter, module, calibration, check_windows, folder: Path, stem: str, options: dict) -> list:
    """``exporter.export`` into a new folder beside ``folder``, then each written file moved into
    ``folder``: exporters reuse a file already there (a resumed run), a checkpoint export must not."""
    import shutil
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{stem}-", dir=folder))
    try:
        variants = exporter.export(module, calibration, check_windows, staging, stem, options)
        for variant in variants:
            written = Path(variant.path)
            if not variant.failed and written.is_file() and written.is_relative_to(staging):
                target = folder / written.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                written.replace(target)
                variant.path = target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return variants
