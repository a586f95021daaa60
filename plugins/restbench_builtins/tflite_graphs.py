"""TFLite graphs: conversion with litert-torch, the interpreter, and inference through it.

Shared by the ``tflite`` exporter and the ``tflite-local`` runner (and the benchmarks that time
graphs):

- :func:`export_tflite` converts a PyTorch module with litert-torch: float32, or int8
  post-training quantisation (PT2E quantizer, static per-channel weights and per-tensor
  activations, calibrated on training windows). BatchNorm is folded into the convolutions and
  the model exported in eval mode. int8 graphs are exported with batch 1 and take and return
  int8 tensors (full-integer model, as a phone runs it); :class:`TFLiteModel` quantises inputs
  and dequantises outputs with the graph's own scales, so callers always see float logits.
- :func:`check_tflite` runs held-out windows through the interpreter and through PyTorch and
  compares logits (:func:`restbench.api.check_export`); :func:`export_checked_tflite` writes and
  checks each variant (:func:`restbench.api.export_checked`).
- :func:`predict_tflite` scores windows through the interpreter (to evaluate an exported model,
  e.g. int8, under the corruption suite).
- :func:`interpreter_runtime` finds a TFLite interpreter: ai-edge-litert, then tflite-runtime,
  then TensorFlow.
- :func:`artifact_graphs` picks the graphs of an artifact a runner times (tflite-local, android-adb).

litert-torch and the interpreter are imported lazily (they are heavy) and their console output
(progress bars, C++ logs) is captured; ``RESTBENCH_EXPORT_VERBOSE=1`` lets it through.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from restbench.api import (
    PluginError,
    UsageError,
    as_tensor,
    atomic_path,
    check_export,
    deployable,
    export_checked,
    first_line,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from restbench.api import Artifact

QUANTIZE_CHOICES = (None, "fp32", "int8")
#: The graphs an artifact may hold, as ``tflite-VARIANT`` files (what the tflite exporter writes).
VARIANTS = ("fp32", "int8")
INSTALL_HINT = "pip install 'restbench[tflite]'"


# --------------------------------------------------------------------------- plumbing


def _verbose() -> bool:
    return os.environ.get("RESTBENCH_EXPORT_VERBOSE", "") not in ("", "0", "false", "no")


@contextlib.contextmanager
def quiet_native_output() -> Iterator[None]:
    """Capture everything written to stdout/stderr inside the block, C++ logs included.

    The converter and the interpreter print progress bars, absl logs and delegate banners
    straight to file descriptors 1 and 2; redirecting the descriptors is the only way to keep a
    benchmark's output readable. The captured text is dropped unless
    ``RESTBENCH_EXPORT_VERBOSE=1`` (then nothing is captured at all).
    """
    if _verbose():
        yield
        return
    saved_env = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved_fds: list[tuple[int, int]] = []
    devnull = open(os.devnull, "w")
    sink = tempfile.TemporaryFile()
    try:
        for fd in (1, 2):
            with contextlib.suppress(OSError):
                saved = os.dup(fd)
                os.dup2(sink.fileno(), fd)
                saved_fds.append((fd, saved))
        with warnings.catch_warnings(), contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
            warnings.simplefilter("ignore")
            yield
    finally:
        for fd, saved in saved_fds:
            os.dup2(saved, fd)
            os.close(saved)
        sink.close()
        devnull.close()
        if saved_env is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = saved_env


def interpreter_runtime() -> tuple[type, str, str]:
    """Return ``(Interpreter class, runtime name, version)`` of the first TFLite interpreter
    found: ``ai_edge_litert.interpreter`` (LiteRT), then ``tflite_runtime.interpreter``, then
    ``tensorflow.lite``. Raises :class:`PluginError` when none is installed."""
    from importlib.metadata import PackageNotFoundError, version

    def dist_version(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "unknown"

    with quiet_native_output():
        try:
            from ai_edge_litert.interpreter import Interpreter

            return Interpreter, "ai-edge-litert", dist_version("ai-edge-litert")
        except ImportError:
            pass
        try:
            from tflite_runtime.interpreter import Interpreter

            return Interpreter, "tflite-runtime", dist_version("tflite-runtime")
        except ImportError:
            pass
        try:
            import tensorflow as tf

            return tf.lite.Interpreter, "tensorflow", str(tf.__version__)
        except ImportError:
            pass
    raise PluginError(f"no TFLite interpreter installed: pip install ai-edge-litert (or {INSTALL_HINT})")


# --------------------------------------------------------------------------- export


def export_tflite(
    module: "nn.Module",
    sample_input: "torch.Tensor | np.ndarray",
    path: str | Path,
    quantize: str | None = None,
    calibration: np.ndarray | None = None,
) -> Path:
    """Convert ``module`` to a ``.tflite`` file at ``path`` and return the path.

    ``sample_input`` fixes the input shape ``(batch, 1, n_times)``; use batch 1 for on-device
    latency (one window at a time). ``quantize``: ``None`` or ``"fp32"`` for a float32 graph;
    ``"int8"`` for full-integer post-training quantisation (weights per channel, activations
    per tensor, calibrated by running every window of ``calibration`` — float32 training
    windows ``(n, 1, n_times)`` in microvolts, a few hundred suffice — through the observed
    model). int8 graphs are always exported with batch 1: quantised graphs are fixed-batch.
    The module is copied and put in eval mode, so BatchNorm uses its running statistics and
    folds into the preceding convolution. The file is written atomically
    (:func:`restbench.api.atomic_path`), so a failed or killed export leaves no partial
    ``path`` for a resumed run to reuse. Raises :class:`UsageError` for bad arguments and
    :class:`PluginError` when conversion fails.
    """
    if quantize not in QUANTIZE_CHOICES:
        raise UsageError(f"quantize={quantize!r} is not supported: use one of None, 'fp32', 'int8'")
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = as_tensor(sample_input)
    if x.ndim < 2:
        raise UsageError(f"sample input must have a batch dimension, got shape {tuple(x.shape)}")
    model = deployable(module)
    if quantize == "int8":
        x = x[:1]
        if calibration is None or len(calibration) == 0:
            raise UsageError("int8 export needs calibration windows (training windows, shape (n, 1, n_times))")
        calib = np.asarray(calibration, dtype=np.float32)
        if calib.shape[1:] != tuple(x.shape[1:]):
            raise UsageError(
                f"calibration windows have shape {calib.shape[1:]} per window, the model input "
                f"is {tuple(x.shape[1:])}"
            )
    try:
        with quiet_native_output():
            import litert_torch

            if quantize == "int8":
                from litert_torch.quantize.pt2e_quantizer import (
                    PT2EQuantizer,
                    get_symmetric_quantization_config,
                )
                from litert_torch.quantize.quant_config import QuantConfig
                from torchao.quantization.pt2e.quantize_pt2e import (
                    convert_pt2e,
                    prepare_pt2e,
                )

                quantizer = PT2EQuantizer().set_global(
                    get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
                )
                graph = torch.export.export(model, (x,)).module()
                graph = prepare_pt2e(graph, quantizer)  # folds BatchNorm, inserts observers
                with torch.no_grad():
                    for window in calib:  # the exported graph is fixed at batch 1
                        graph(torch.from_numpy(window[None]))
                graph = convert_pt2e(graph, fold_quantize=False)
                edge = litert_torch.convert(graph, (x,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
            else:
                with torch.no_grad():
                    edge = litert_torch.convert(model, (x,))
            with atomic_path(path) as tmp:  # a killed export never leaves a half file to be reused
                edge.export(str(tmp))
    except ImportError as exc:
        raise PluginError(f"TFLite export needs litert-torch ({first_line(exc)}): {INSTALL_HINT}") from exc
    except Exception as exc:  # converter errors are long; keep the first line
        raise PluginError(
            f"TFLite export to {path.name} failed ({first_line(exc)}); "
            "rerun with RESTBENCH_EXPORT_VERBOSE=1 to see the converter output"
        ) from exc
    return path


# --------------------------------------------------------------------------- inference


class TFLiteModel:
    """A loaded ``.tflite`` graph that takes float32 windows and returns float32 logits.

    ``batch`` is the graph's fixed batch size (``None`` when the batch dimension is dynamic);
    ``quantized`` is true for a full-integer graph, whose int8 input/output are converted with
    the graph's scale and zero point. ``threads`` is passed to the interpreter.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise PluginError(f"TFLite model {path} does not exist: export it first (restbench export)")
        interpreter_cls, self.runtime, self.runtime_version = interpreter_runtime()
        self.path = path
        self.threads = threads
        with quiet_native_output():
            try:
                self.interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
                self.interpreter.allocate_tensors()
            except (ValueError, RuntimeError) as exc:
                raise PluginError(f"cannot load TFLite model {path}: {first_line(exc)}") from exc
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise PluginError(f"{path.name}: expected one input and one output tensor")
        self._in, self._out = inputs[0], outputs[0]
        signature = self._in.get("shape_signature", self._in["shape"])
        self.input_shape = tuple(int(s) for s in self._in["shape"])
        self.batch = None if int(signature[0]) < 0 else self.input_shape[0]
        self.input_dtype = np.dtype(self._in["dtype"])
        self.quantized = self.input_dtype in (np.dtype(np.int8), np.dtype(np.uint8))

    @property
    def variant(self) -> str:
        """``"int8"`` for a full-integer graph, else ``"fp32"``."""
        return "int8" if self.quantized else "fp32"

    def _quantize(self, x: np.ndarray) -> np.ndarray:
        scale, zero = self._in["quantization"]
        info = np.iinfo(self.input_dtype)
        q = np.round(x / scale + zero)
        return np.clip(q, info.min, info.max).astype(self.input_dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        scale, zero = self._out["quantization"]
        if scale == 0:  # float output
            return y.astype(np.float32)
        return ((y.astype(np.float32) - zero) * scale).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits for one graph batch ``x`` (exactly ``batch`` windows for a fixed-batch graph)."""
        x = np.asarray(x, dtype=np.float32)
        if self.batch is None and x.shape != self.input_shape:
            self.interpreter.resize_tensor_input(self._in["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self.input_shape = tuple(x.shape)
        if self.quantized:
            x = self._quantize(x)
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self._out["index"]))

    def predict(self, windows: np.ndarray, batch: int = 64) -> np.ndarray:
        """Logits ``(n, n_classes)`` for ``windows`` ``(n, 1, n_times)``, in graph-sized chunks.

        A fixed-batch graph runs in chunks of its own batch (the last chunk zero-padded);
        ``batch`` is used only when the graph's batch dimension is dynamic.
        """
        windows = np.asarray(windows, dtype=np.float32)
        if windows.shape[1:] != self.input_shape[1:]:
            raise UsageError(
                f"windows have shape {windows.shape[1:]} per window, {self.path.name} expects "
                f"{self.input_shape[1:]}"
            )
        step = self.batch or max(1, int(batch))
        out = []
        for start in range(0, len(windows), step):
            chunk = windows[start : start + step]
            n = len(chunk)
            if self.batch is not None and n < step:
                chunk = np.concatenate([chunk, np.zeros((step - n, *chunk.shape[1:]), np.float32)])
            out.append(self(chunk)[:n])
        if not out:
            return np.zeros((0, int(self._out["shape"][-1])), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


def predict_tflite(
    path: str | Path, windows: np.ndarray, batch: int = 64, threads: int | None = None
) -> np.ndarray:
    """Float32 logits ``(n, n_classes)`` of the ``.tflite`` graph at ``path`` for ``windows``
    ``(n, 1, n_times)`` in microvolts. int8 graphs (batch 1) run one window per call; inputs
    are quantised and outputs dequantised with the graph's own parameters."""
    return TFLiteModel(path, threads=threads).predict(windows, batch=batch)


def artifact_graphs(artifact: Artifact, wanted: tuple[str, ...] | None, runner: str) -> dict[str, Path]:
    """The artifact's exported graphs by variant, restricted to ``wanted`` (validated)."""
    graphs = {v: artifact.files.get(f"tflite-{v}") for v in VARIANTS}
    if wanted is not None:
        bad = [v for v in wanted if v not in VARIANTS]
        if bad:
            raise UsageError(f"runner {runner}: unknown variant(s) {', '.join(bad)}; use fp32, int8")
        missing = [v for v in wanted if graphs[v] is None]
        if missing:
            raise PluginError(
                f"runner {runner}: artifact {artifact.name} has no {'/'.join(missing)} .tflite "
                "graph: export it first (restbench export)"
            )
        graphs = {v: graphs[v] for v in wanted}
    graphs = {v: p for v, p in graphs.items() if p is not None}
    if not graphs:
        raise PluginError(
            f"runner {runner}: artifact {artifact.name} has no exported .tflite graph: "
            "export it first (restbench export)"
        )
    return graphs


# --------------------------------------------------------------------------- check


def check_tflite(
    module: "nn.Module",
    tflite_path: str | Path,
    windows: np.ndarray,
    *,
    max_rel_diff: float | None = None,
    min_top1_agreement: float | None = None,
    report_only: bool = False,
    threads: int | None = None,
) -> dict:
    """Compare the ``.tflite`` graph with ``module`` on held-out ``windows`` ``(n, 1, n_times)``
    (:func:`restbench.api.check_export`: thresholds per variant, read from the graph; a failing
    check raises a one-line :class:`PluginError` unless ``report_only``)."""
    return check_export(module, TFLiteModel(tflite_path, threads=threads), windows, name=Path(tflite_path).name,
                        max_rel_diff=max_rel_diff, min_top1_agreement=min_top1_agreement, report_only=report_only)


def _convert(module: "nn.Module", sample: "torch.Tensor", path: Path, variant: str,
             calibration: np.ndarray | None) -> None:
    export_tflite(module, sample, path, quantize="int8" if variant == "int8" else None, calibration=calibration)


def export_checked_tflite(
    module: "nn.Module", calibration: np.ndarray, check_windows: np.ndarray, folder: Path, stem: str,
    variants: tuple[str, ...] = ("fp32", "int8"), reuse: bool = False,
) -> dict[str, dict]:
    """``folder/stem-VARIANT.tflite`` for each variant, each checked against PyTorch on
    ``check_windows`` (:func:`restbench.api.export_checked`: a variant the converter or the
    interpreter rejects comes back ``failed`` and the others go on)."""
    return export_checked(module, calibration, check_windows, folder, stem, variants, reuse,
                          convert=_convert, load=TFLiteModel, suffix=".tflite")
