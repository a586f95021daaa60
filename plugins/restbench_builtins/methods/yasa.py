"""``yasa``: YASA's pretrained sleep stager as a reference method, what users run today.

YASA (Vallat & Walker 2021) ships a LightGBM classifier trained on thousands of nights inside
the ``yasa`` package (``pip install 'restbench[yasa]'``; no download). It trains nothing here: its
recipe is a :attr:`restbench.api.Recipe.reference`, evaluated on exactly the test windows of the
run, under exactly the same corrupted arrays every other method sees (the harness corrupts once
per cell and hands the same batch to each), and timed by the runners that time a PyTorch module.

How a whole-night classifier is applied per window. YASA stages a night from per-epoch features
smoothed over neighbouring epochs and scaled per night. Here each test window is what YASA sees
of the night around its scored epoch:

- per-epoch features (YASA 0.8's own code path, :mod:`.yasa_stager`) for every 30-s epoch of the
  window, after YASA's 0.4-30 Hz band-pass applied to the window;
- YASA's past 2-min rolling mean (4 epochs) is exact with Sors' 4-epoch window; its centred
  7.5-min triangular mean is computed as YASA computes it on a night cut at the scored epoch
  (windows end at their scored epoch, so it sees no later epoch, only the window's);
- YASA's per-night robust scaling (median, 5-95 % range) is taken over the night's windows in the
  cell (every test window of that night; a subset when ``max_test_windows`` subsamples), so a
  corruption of the whole night moves the scaling as it would for a user's noisy night;
- the time-of-night features come from the scored epoch's position in its recording.

Departures, recorded in the recipe's config: the EEG-only classifier (no EOG/EMG, no age or
sex), per-window filtering edges, and the truncated centred smoothing. Models declaring one-epoch
windows give YASA one epoch of context: run YASA beside a 4-epoch model (Sors) for its intended
2-min past context. YASA needs at least 80 Hz. White-box attacks (PGD) need gradients and do not
apply to a tree ensemble: those cells are left out, with a note. Its efficiency record gives the
trees' nodes as ``params``, the shipped classifier file as ``size_kb`` and 0 multiply-accumulates.
"""

from __future__ import annotations

from typing import Any

from restbench.api import PluginError, Recipe, hookimpl

CITATION = "Vallat & Walker 2021, An open-source, high-performance tool for automated sleep staging, eLife 10:e70092"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("yasa")
    except PackageNotFoundError:
        return "not installed"


class YasaReference:
    """The pretrained predictor a :class:`Yasa` recipe deploys (see the module docstring)."""

    def __init__(self) -> None:
        self._classifier = None

    def config(self) -> dict[str, Any]:
        return {"reference": "yasa", "yasa_version": _version(), "classifier": "clf_eeg (EEG only, no demographics)",
                "per_window": "features of the window's epochs; centred 7.5-min mean truncated at the scored epoch; "
                              "past 2-min mean; robust scaling per night over the night's windows in the cell"}

    def available(self, sfreq: float) -> tuple[bool, str]:
        import importlib.util

        for name in ("yasa", "lightgbm", "antropy"):
            if importlib.util.find_spec(name) is None:
                return False, f"{name} is not installed: pip install 'restbench[yasa]'"
        if sfreq <= 80:
            return False, f"YASA needs a sampling rate above 80 Hz; the data has {sfreq:g} Hz"
        return True, ""

    @property
    def classifier(self):
        if self._classifier is None:
            from restbench_builtins.methods.yasa_stager import load_classifier

            self._classifier = load_classifier()
        return self._classifier

    def predict(self, x, windows: dict[str, Any]):
        """Stage indices (W, N1, N2, N3, REM) for float32 windows ``(n, 1, n_times)``."""
        from restbench_builtins.methods.yasa_stager import feature_table, stage_probabilities

        table = feature_table(x, windows["sfreq"], windows["context_epochs"], windows["night"], windows["epoch"],
                              windows["night_epochs"])
        return stage_probabilities(self.classifier, table).argmax(1)

    def module(self, sfreq: float, context_epochs: int):
        from restbench_builtins.methods.yasa_stager import make_module

        return make_module(self.classifier, sfreq, context_epochs)

    def efficiency(self) -> dict[str, Any]:
        from restbench_builtins.methods.yasa_stager import classifier_size

        size = classifier_size(self.classifier)
        return {"params": size["nodes"], "size_kb": size["size_kb"], "macs": 0, "mflops": 0.0, "macs_per_night": 0,
                "mflops_per_night": 0.0,
                "note": f"YASA {_version()}: {size['file']}, {size['trees']} LightGBM trees; params counts their "
                        f"{size['nodes']} nodes, size_kb is the shipped classifier file; no multiply-accumulates "
                        "(feature extraction and tree traversal)"}


class Yasa:
    """Method plugin: YASA's pretrained classifier, evaluated like every trained method."""

    id = "yasa"
    version = "1.0.0"
    description = "YASA's pretrained LightGBM sleep stager (EEG features): what users run today; no training"
    citation = CITATION
    in_all = False  # a reference, not a training configuration: name it (--methods all,yasa)

    def recipe(self, context) -> Recipe:
        import importlib.util

        if importlib.util.find_spec("yasa") is None:
            raise PluginError("method yasa: the yasa package is not installed: pip install 'restbench[yasa]'")
        return Recipe(reference=YasaReference(),
                      description="YASA pretrained classifier (reference: what users run today; no training)")


@hookimpl
def register_methods(register):
    register(Yasa())
