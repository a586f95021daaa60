"""``tflite``: the deployed pipeline as TFLite graphs, fp32 and int8, each checked against PyTorch.

fp32 is a plain conversion; int8 is full-integer post-training quantisation calibrated on
training windows (:mod:`restbench_builtins.tflite_graphs`). Each file is checked on held-out
validation windows (logit difference, top-1 agreement); a failed check is recorded and fails the run at its end,
after every result is written. A graph the converter or the interpreter rejects (e.g. an int8 graph
XNNPACK fails to prepare) is returned as a failed variant with its reason: the run records it and
goes on with the other variant. The int8 graph is also evaluated under corruption (``int8_robustness``),
since a phone runs it, not the PyTorch model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restbench.api import NOT_IN_PAPER, ExportedVariant, Option, PluginError, fill_options, hookimpl

if TYPE_CHECKING:
    import numpy as np

VARIANTS = {"fp32": "tflite-fp32", "int8": "tflite-int8"}


class TFLite:
    """Exporter plugin: fp32 and int8 .tflite graphs through litert-torch."""

    id = "tflite"
    version = "1.1.0"
    description = "TFLite fp32 and int8 (PT2E full-integer) graphs via litert-torch, each checked against PyTorch"
    citation = "Duggal et al. 2020, Sec. 5.4 (TensorFlow Lite on a Pixel 2)"
    default = True
    #: distributions its graphs and checks depend on, recorded in each run's provenance
    packages = ("ai-edge-litert", "litert-torch")
    options = (
        Option("variants", list, ["fp32", "int8"], "graphs to write", item=str, paper=NOT_IN_PAPER),
        Option("calibration_windows", int, 128, "training windows that calibrate int8 quantisation", minimum=1,
               paper=NOT_IN_PAPER, profiles={"quick": 32, "smoke": 8}),
        Option("check_windows", int, 64, "validation windows each graph is checked on against PyTorch", minimum=1,
               paper=NOT_IN_PAPER, profiles={"quick": 32, "smoke": 8}),
        Option("int8_robustness", str, "all", "corruptions the int8 graph is also evaluated under: all, paper "
               "(the paper's suite) or none", choices=("all", "paper", "none"), paper=NOT_IN_PAPER,
               profiles={"quick": "paper", "smoke": "paper"}),
    )

    def available(self) -> tuple[bool, str]:
        try:
            found = importlib.util.find_spec("litert_torch") is not None
        except (ImportError, ValueError):  # blocked or broken installs count as missing
            found = False
        if not found:
            return False, "litert-torch is not installed (pip install 'restbench[tflite]')"
        try:
            from restbench_builtins.tflite_graphs import interpreter_runtime

            interpreter_runtime()
        except PluginError as exc:
            return False, str(exc)
        return True, ""

    def export(self, module, calibration: np.ndarray, check_windows: np.ndarray, folder: Path, stem: str,
               options: dict[str, Any]) -> list[ExportedVariant]:
        from restbench_builtins.tflite_graphs import export_checked_tflite

        opts = fill_options(self.options, options, self.id)
        unknown = [v for v in opts["variants"] if v not in VARIANTS]
        if unknown:
            raise PluginError(f"exporter {self.id}: unknown variant(s) {', '.join(unknown)}; valid: fp32, int8")
        files = export_checked_tflite(module, calibration[: opts["calibration_windows"]],
                                      check_windows[: opts["check_windows"]], folder, stem,
                                      variants=tuple(opts["variants"]), reuse=True)
        scope = None if opts["int8_robustness"] == "none" else opts["int8_robustness"]
        return [ExportedVariant(variant=VARIANTS[v], path=Path(f["path"] or Path(folder) / f"{stem}-{v}.tflite"),
                                size_kb=float(f["size_kb"] or 0.0), check=f["check"],
                                robustness=scope if v == "int8" else None, failed=f.get("failed"))
                for v, f in files.items()]

    def predict(self, variant: ExportedVariant, windows: np.ndarray) -> np.ndarray:
        from restbench_builtins.tflite_graphs import predict_tflite

        return predict_tflite(variant.path, windows)


@hookimpl
def register_exporters(register):
    register(TFLite())
