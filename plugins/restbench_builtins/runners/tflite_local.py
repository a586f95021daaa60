"""``tflite-local``: latency of exported .tflite graphs on this machine's CPU (LiteRT interpreter).

Times the fp32 and/or int8 graph of an artifact one window per call (batch 1 graphs; a graph
with a larger fixed batch is timed per call and divided by its batch), as a night-long loop
repeated ``repetitions`` times after a warm-up; see :func:`restbench.deploy.efficiency.measure_latency`.
Options (``--set tflite-local.NAME=VALUE``): :data:`restbench.deploy.efficiency.LATENCY_OPTIONS`.
"""

from __future__ import annotations

from typing import Any

from restbench.api import (
    LATENCY_OPTIONS,
    Artifact,
    LatencyOptions,
    LatencyReport,
    PluginError,
    hookimpl,
    host_cpu,
    measure_latency,
)
from restbench_builtins.runners.common import synthetic_windows


class TFLiteLocal:
    """Latency of the artifact's .tflite graphs through the TFLite interpreter on this CPU."""

    id = "tflite-local"
    version = "1.1.0"
    description = "Per-window and per-night latency of .tflite graphs with the local TFLite interpreter"
    citation = None
    default = True
    #: the interpreter its timings depend on, recorded in each run's provenance
    packages = ("ai-edge-litert",)
    options = LATENCY_OPTIONS

    def available(self) -> tuple[bool, str]:
        try:
            from restbench_builtins.tflite_graphs import interpreter_runtime

            interpreter_runtime()
        except PluginError as exc:
            return False, str(exc)
        return True, ""

    def measure(self, artifact: Artifact, options: dict[str, Any]) -> list[LatencyReport]:
        from restbench_builtins.tflite_graphs import TFLiteModel, artifact_graphs

        ok, reason = self.available()
        if not ok:
            raise PluginError(f"runner {self.id} unavailable: {reason}")
        opts = LatencyOptions.parse(options, self.id, artifact.windows_per_night)
        reports = []
        for variant, path in artifact_graphs(artifact, opts.variants, self.id).items():
            graph = TFLiteModel(path, threads=opts.threads)
            batch = graph.batch or 1
            windows = synthetic_windows((batch, *graph.input_shape[1:]), opts.seed)
            timing = measure_latency(graph, list(windows), opts, windows_per_call=batch)
            extra = dict(timing.pop("extra"))
            extra.update(
                graph=str(path),
                graph_batch=batch,
                graph_input_shape=list(graph.input_shape),
                timed_call="float window in, quantise (int8), invoke, dequantise, float logits out",
            )
            reports.append(
                LatencyReport(
                    runner=self.id,
                    variant=variant,
                    **timing,
                    repetitions=opts.repetitions,
                    windows_per_night=opts.windows_per_night,
                    threads=opts.threads,
                    runtime=graph.runtime,
                    runtime_version=graph.runtime_version,
                    device=host_cpu(),
                    extra=extra,
                )
            )
        return reports


@hookimpl
def register_runners(register):
    register(TFLiteLocal())
