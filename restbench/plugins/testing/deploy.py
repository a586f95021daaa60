"""Conformance checks for runners and exporters."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from restbench.plugins.contract import (
    Artifact,
    LatencyReport,
    PluginError,
)
from restbench.plugins.testing.common import (
    N_CLASSES,
    N_TIMES,
    NIGHT_TOLERANCE,
    RUNNER_OPTIONS,
    CheckResult,
    _tiny_model,
    _toy_batch,
    plugin_options,
)


def check_runner(runner) -> CheckResult:
    """``available()`` returns ``(bool, reason)``; when available, ``measure`` a tiny real
    network with short timing options and check the LatencyReports: a non-empty list, this
    runner's id, finite positive seconds, p90 >= median, the windows_per_night asked for, and
    the per-night median equal to the per-window median x windows_per_night within a factor
    of 3 (timing on a busy machine is noisy: that part fails only when three measurements all
    miss it). A runner that is not available, or that raises a PluginError saying it needs
    exported files, is skipped with its reason."""
    from dataclasses import fields

    ok, reason = runner.available()
    if not isinstance(ok, bool) or not isinstance(reason, str):
        return CheckResult(["available() must return (bool, str)"])
    if not ok:
        if not reason.strip():
            return CheckResult(["available() must say why the runner is unavailable"])
        return CheckResult().skip(f"runner unavailable: {reason}")
    import torch

    torch.manual_seed(0)
    wanted_night = RUNNER_OPTIONS["windows_per_night"]
    extra = {"windows_per_night": wanted_night} if "windows_per_night" in {f.name for f in fields(Artifact)} else {}
    artifact = Artifact(name="conformance-tiny", module=_tiny_model(N_TIMES).eval(), input_shape=(1, 1, N_TIMES), **extra)
    options = plugin_options(runner, RUNNER_OPTIONS)
    wanted = wanted_night if extra or "windows_per_night" in (options or {}) else None
    for _attempt in range(3):
        try:
            reports = runner.measure(artifact, dict(options or {}))
        except PluginError as exc:
            if any(word in str(exc).lower() for word in ("export", "file")):
                return CheckResult().skip(f"measure needs exported files: {exc}")
            return CheckResult([f"measure raised PluginError: {exc}"])
        problems, timing = _check_reports(runner, reports, wanted)
        if problems or not timing:
            return CheckResult(problems + timing)
    return CheckResult([f"{p} (in 3 measurements)" for p in timing])


def _check_reports(runner, reports, wanted_night: int | None) -> tuple[list[str], list[str]]:
    """(problems, timing problems) of ``measure``'s answer; timing problems may be noise."""
    if not isinstance(reports, list) or not reports:
        return ["measure must return a non-empty list of LatencyReport"], []
    problems, timing = [], []
    for i, report in enumerate(reports):
        if not isinstance(report, LatencyReport):
            problems.append(f"report {i}: must be a restbench.api.LatencyReport, got {type(report).__name__}")
            continue
        where = f"report {i} ({report.variant})"
        if report.runner != runner.id:
            problems.append(f"{where}: runner is '{report.runner}', expected '{runner.id}'")
        if not isinstance(report.variant, str) or not report.variant:
            problems.append(f"{where}: variant must name what was timed")
        if not isinstance(report.repetitions, int) or report.repetitions < 1:
            problems.append(f"{where}: repetitions must be a positive integer")
        if not isinstance(report.threads, int) or report.threads < 1:
            problems.append(f"{where}: threads must be a positive integer")
        if not isinstance(report.runtime, str) or not report.runtime:
            problems.append(f"{where}: runtime must name the runtime used")
        seconds = {k: getattr(report, k) for k in ("latency_s_per_window_median", "latency_s_per_window_p90",
                                                    "latency_s_per_night_median", "latency_s_per_night_p90")}
        bad = [k for k, v in seconds.items() if isinstance(v, bool) or not isinstance(v, (int, float))
               or not np.isfinite(v) or v <= 0]
        if bad:
            problems.append(f"{where}: latencies must be finite positive seconds: {', '.join(bad)}")
            continue
        if seconds["latency_s_per_window_p90"] < seconds["latency_s_per_window_median"]:
            problems.append(f"{where}: per-window p90 is below the median")
        if seconds["latency_s_per_night_p90"] < seconds["latency_s_per_night_median"]:
            problems.append(f"{where}: per-night p90 is below the median")
        wpn = report.windows_per_night
        if isinstance(wpn, bool) or not isinstance(wpn, int) or wpn < 1:
            problems.append(f"{where}: windows_per_night must be a positive integer")
            continue
        if wanted_night is not None and wpn != wanted_night:
            problems.append(f"{where}: windows_per_night is {wpn}, the run asked for {wanted_night}")
        ratio = seconds["latency_s_per_night_median"] / (seconds["latency_s_per_window_median"] * wpn)
        if not 1 / NIGHT_TOLERANCE <= ratio <= NIGHT_TOLERANCE:
            timing.append(f"{where}: per-night median ({seconds['latency_s_per_night_median']:.3g} s) is not per-window "
                          f"median x windows_per_night ({seconds['latency_s_per_window_median']:.3g} s x {wpn})")
    return problems, timing


def check_exporter(exporter) -> CheckResult:
    """``available()`` returns ``(bool, reason)``; when available, ``export`` a tiny real network
    and check each ExportedVariant (a kebab-case variant name, a file that exists with its
    stated size, a robustness scope that is None or a string, a check that says whether it
    passed) and that ``predict`` gives finite ``(n, 5)`` logits that agree with PyTorch on most
    windows. An unavailable exporter is skipped with its reason."""
    import tempfile

    import torch

    from restbench.plugins.contract import ExportedVariant, validate_id

    ok, reason = exporter.available()
    if not isinstance(ok, bool) or not isinstance(reason, str):
        return CheckResult(["available() must return (bool, str)"])
    if not ok:
        return CheckResult().skip(f"exporter unavailable: {reason}") if reason.strip() else CheckResult(
            ["available() must say why the exporter is unavailable"])
    torch.manual_seed(0)
    module = _tiny_model(N_TIMES).eval()
    x, _, _ = _toy_batch(8)
    windows = x.numpy()
    with torch.no_grad():
        reference = module(x).argmax(1).numpy()
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        variants = exporter.export(module, windows, windows, Path(tmp), "conformance", dict(plugin_options(exporter) or {}))
        if not isinstance(variants, list) or not variants:
            return CheckResult(["export must return a non-empty list of ExportedVariant"])
        for v in variants:
            if not isinstance(v, ExportedVariant):
                problems.append(f"export returned {type(v).__name__}, not ExportedVariant")
                continue
            try:
                validate_id(v.variant)
            except PluginError:
                problems.append(f"variant name {v.variant!r} is not kebab-case")
            if not Path(v.path).is_file():
                problems.append(f"{v.variant}: file {v.path} does not exist")
                continue
            if abs(Path(v.path).stat().st_size / 1024 - v.size_kb) > 1e-6 * max(1.0, v.size_kb):
                problems.append(f"{v.variant}: size_kb {v.size_kb} is not the file's size")
            if v.robustness is not None and not isinstance(v.robustness, str):
                problems.append(f"{v.variant}: robustness must be None or a scope name")
            if v.check is not None and not isinstance(v.check.get("passed"), bool):
                problems.append(f"{v.variant}: check must say whether it passed (a bool 'passed')")
            logits = np.asarray(exporter.predict(v, windows))
            if logits.shape != (len(windows), N_CLASSES) or not np.isfinite(logits).all():
                problems.append(f"{v.variant}: predict gave shape {logits.shape} (finite: {np.isfinite(logits).all()}), "
                                f"expected finite ({len(windows)}, {N_CLASSES})")
            elif (logits.argmax(1) == reference).mean() < 0.5:
                problems.append(f"{v.variant}: predictions agree with PyTorch on fewer than half the windows")
    return CheckResult(problems)
