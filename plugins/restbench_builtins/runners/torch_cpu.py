"""``torch-cpu``: latency of the PyTorch module on this machine's CPU, for comparison with TFLite.

Same protocol as ``tflite-local`` (warm-up, night-long loops of batch-1 windows, median and
p90 over repetitions) with the artifact's module in eval mode under ``torch.inference_mode``
and ``torch.set_num_threads(threads)`` (restored afterwards).
Options (``--set torch-cpu.NAME=VALUE``): :data:`restbench.deploy.efficiency.LATENCY_OPTIONS` (``variants`` must be ``torch``).
"""

from __future__ import annotations

import copy
from typing import Any

from restbench.api import (
    LATENCY_OPTIONS,
    Artifact,
    LatencyOptions,
    LatencyReport,
    PluginError,
    UsageError,
    hookimpl,
    host_cpu,
    measure_latency,
)


class TorchCPU:
    """Latency of the artifact's PyTorch module on this CPU."""

    id = "torch-cpu"
    version = "1.1.0"
    description = "Per-window and per-night latency of the PyTorch module on the local CPU"
    citation = None
    default = True
    options = LATENCY_OPTIONS

    def available(self) -> tuple[bool, str]:
        try:
            import torch  # noqa: F401
        except ImportError as exc:  # pragma: no cover - torch is a hard dependency
            return False, f"torch is not importable: {exc}"
        return True, ""

    def measure(self, artifact: Artifact, options: dict[str, Any]) -> list[LatencyReport]:
        import torch

        from restbench_builtins.runners.common import synthetic_windows

        opts = LatencyOptions.parse(options, self.id, artifact.windows_per_night)
        if opts.variants is not None and tuple(opts.variants) != ("torch",):
            raise UsageError(f"runner {self.id}: the only variant is 'torch', got {', '.join(opts.variants)}")
        if artifact.module is None:
            raise PluginError(f"runner {self.id}: artifact {artifact.name} has no PyTorch module")
        model = copy.deepcopy(artifact.module).cpu().eval()
        shape = (1, *tuple(artifact.input_shape)[1:])
        inputs = [torch.from_numpy(w) for w in synthetic_windows(shape, opts.seed)]
        previous = torch.get_num_threads()
        torch.set_num_threads(opts.threads)
        try:
            with torch.inference_mode():
                timing = measure_latency(model, inputs, opts, windows_per_call=1)
        finally:
            torch.set_num_threads(previous)
        extra = dict(timing.pop("extra"))
        extra.update(input_shape=list(shape), timed_call="module(x) under torch.inference_mode, eval mode (FIR transforms by FFT, as eager "
                     "PyTorch runs them; the exported graphs filter by conv1d)")
        return [
            LatencyReport(
                runner=self.id,
                variant="torch",
                **timing,
                repetitions=opts.repetitions,
                windows_per_night=opts.windows_per_night,
                threads=opts.threads,
                runtime="torch",
                runtime_version=str(torch.__version__),
                device=host_cpu(),
                extra=extra,
            )
        ]


@hookimpl
def register_runners(register):
    register(TorchCPU())
