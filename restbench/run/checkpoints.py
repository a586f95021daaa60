"""Checkpoints as plain data: ``{model id, spec, state_dict, metadata}``.

They load with ``torch.load(weights_only=True)``: nothing in a checkpoint is executed, and the
network is rebuilt from its model plugin and spec, so a pruned model reloads at its pruned size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restbench.api import MethodContext, PluginError
from restbench.run.atomic import atomic_path


def save_checkpoint(path: Path, model_id: str, spec: dict, net: torch.nn.Module, **meta: Any) -> None:
    """Write atomically and durably (:func:`restbench.run.atomic.atomic_path`: a unique temp
    file, fsync, rename); ``meta`` values must be JSON-able."""
    checkpoint = {"model": model_id, "spec": spec, "state_dict": net.state_dict(), "meta": json.dumps(meta)}
    with atomic_path(path) as tmp:
        torch.save(checkpoint, tmp)


def load_checkpoint(path: Path, registry=None) -> tuple[torch.nn.Module, dict, dict]:
    """Rebuild ``(net, spec, meta)`` from a checkpoint through its model plugin."""
    from restbench.plugins.registry import get_registry

    registry = registry or get_registry()
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"checkpoint {path} not found; pass a .pt file from a run's artifacts/models/")
    try:
        ckpt = torch.load(path, weights_only=True, map_location="cpu")
        model = registry.get("models", ckpt["model"])
        net, spec = model.build(int(ckpt["spec"].get("n_times", 0)), 0.0, 5, spec=ckpt["spec"])
        net.load_state_dict(ckpt["state_dict"])
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"checkpoint {path} could not be loaded ({type(exc).__name__}: {exc}); is it a restbench checkpoint?") from None
    net.eval()
    return net, spec, json.loads(ckpt.get("meta", "{}"))


def export_checkpoint(path: Path, out: Path, int8: bool = True, calibration_dataset: str | None = None,
                      cache_dir: Path = Path(".restbench-cache"), data_dir: Path | None = None) -> dict:
    """Export a checkpoint's deployed pipeline (its method's test-time transforms included) to
    .tflite, checking each file against PyTorch on validation windows; returns the report."""
    from restbench.api import DatasetOptions
    from restbench.deploy.export import export_checked
    from restbench.plugins.registry import get_registry
    from restbench.training.loop import subsample
    from restbench.deploy.transforms import deploy

    registry = get_registry()
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
    data = dataset.prepare(DatasetOptions(data_dir=data_dir, cache_dir=cache_dir,
                                          n_subjects=meta.get("knobs", {}).get("n_subjects") if same_dataset else None,
                                          extra=meta.get("dataset_options", {}) if same_dataset else {}))
    if data.n_times != spec.get("n_times", data.n_times):
        raise PluginError(f"--calibration-dataset: {dataset_id} has {data.n_times}-sample windows, the checkpoint expects {spec.get('n_times')}")
    deployed = deploy(net, transforms, data.sfreq)
    rng = np.random.default_rng(0)
    calib, _ = data.get(subsample(data.windows("train"), 64, rng))
    check, _ = data.get(subsample(data.windows("val"), 64, rng))
    variants = ("fp32", "int8") if int8 else ("fp32",)
    files = export_checked(deployed, calib, check, Path(out), path.stem, variants)
    failed = [f"{name}: top-1 agreement {f['check']['top1_agreement']:.3f}, max abs diff {f['check']['max_abs_diff']:.3g}"
              for name, f in files.items() if not f["check"]["passed"]]
    if failed:
        raise PluginError(f"export check failed for {path} ({'; '.join(failed)}); the files are in {out}")
    report: dict = {"checkpoint": str(path), "files": files}
    return report
