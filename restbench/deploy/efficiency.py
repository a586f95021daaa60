"""Model efficiency: parameter count, stored size, multiply-adds and FLOPs per window and night,
plus the latency-timing helpers every runner shares (:class:`LatencyOptions`,
:func:`measure_latency` with its busy-machine judgement :func:`busy_reasons`, :func:`host_cpu`).

What is counted (the ``note`` of :func:`efficiency_report` repeats it with every result):

- ``params``: every parameter, BatchNorm affine weights included (docs/PROTOCOL.md's 2,264,485 for
  Sors on Sleep-EDF).
- ``size_kb``: float32 bytes of what a deployment stores, divided by 1024: all parameters plus
  the floating-point buffers a forward pass in eval mode reads (BatchNorm running mean and
  variance). Integer bookkeeping buffers (``num_batches_tracked``) are left out: inference never
  reads them. No container overhead (file headers, pickling, alignment) is included.
- ``macs``: multiply-adds of the convolution and linear layers, from their shapes (forward
  hooks record each layer's output size). Bias additions, BatchNorm (folded into the preceding
  convolution at deployment) and ReLU are not counted.
- ``mflops``: :class:`torch.utils.flop_counter.FlopCounterMode` FLOPs / 1e6, which counts a
  multiply-add as 2 FLOPs for convolutions and matrix products and nothing for element-wise
  operations, so ``mflops == 2 * macs / 1e6`` for a conv/linear network.

The paper's Table 5 (1,451 MFLOPs for Sors on Sleep-EDF) is 2 x 722.7 M MACs = 1,445 M plus
about 6 M element-wise operations (bias, BatchNorm, ReLU: roughly four per activation over the
1.56 M activations of the twelve conv blocks); our ``mflops`` is therefore 0.4 % below it.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

if TYPE_CHECKING:
    from torch import nn

#: One night of scoring: 9 h of 30-s windows (docs/PROTOCOL.md).
WINDOWS_PER_NIGHT = 1080

NOTE = (
    "params: all parameters (BatchNorm affine included); size_kb: float32 bytes of parameters "
    "plus BatchNorm running mean/var (num_batches_tracked excluded, no file overhead) / 1024; "
    "macs: conv/linear multiply-adds per window from layer shapes (bias, BatchNorm, ReLU not "
    "counted); mflops: torch FlopCounterMode FLOPs / 1e6 = 2 x MACs; per_night: x "
    "windows_per_night"
)


def count_params(module: "nn.Module") -> int:
    """Number of parameters of ``module`` (trainable or not), BatchNorm affine included."""
    return int(sum(p.numel() for p in module.parameters()))


def stored_numel(module: "nn.Module") -> int:
    """Number of float values a deployment stores: parameters plus floating-point buffers.

    Floating-point buffers are the BatchNorm running statistics (and any fixed filter taps a
    test-time transform keeps as a buffer); integer buffers such as ``num_batches_tracked`` are
    training bookkeeping and are not counted.
    """
    n = count_params(module)
    n += sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return int(n)


def size_kb(module: "nn.Module") -> float:
    """Stored model size in KB (1 KB = 1024 bytes) at float32: 4 bytes per stored value.

    This is restbench's one definition of model size (the efficiency record's ``size_kb`` and
    the pruning report's ``size_kb_before``/``size_kb_after`` both call it). It counts the
    parameters *and* the floating-point buffers (BatchNorm running mean and variance), see
    :func:`stored_numel`, rather than the parameters alone, because that is the definition
    closest to the size the paper reports (Table 5: 8,896 KB for Sors on Sleep-EDF with
    2,264,485 parameters, defined as the "memory consumed (in KB) for storing the weights"):
    stored tensors give (2,264,485 + 4,808) x 4 / 1024 = 8,864.4 KB (0.4 % below), parameters
    alone 8,845.6 KB (0.6 % below). The paper does not say how it measured the size (it is not
    stated to be a file's); ``torch.save`` of the state_dict is 8,892.8 KB (torch 2.13), so the
    remaining ~32 KB is a file's container (per-tensor headers and alignment, the integer
    ``num_batches_tracked``), not weights (SHHS: 8,964 KB here vs the paper's 8,996 KB, the
    same gap). We report raw tensor bytes, which do not depend on the file format. The size of
    an actual exported file is a separate number (``tflite_fp32_size_kb``; BatchNorm folded
    into the convolutions, 8,850.0 KB for this model with litert-torch 0.10).
    """
    return stored_numel(module) * 4 / 1024


def _eval_forward(module: "nn.Module", input_shape: Sequence[int], fn) -> Any:
    """Run ``fn(module, x)`` on a zero input in eval mode without gradients; restore the mode.

    Eval mode keeps BatchNorm from updating its running statistics (and from needing batch > 1).
    """
    import torch

    try:
        ref = next(module.parameters())
        device, dtype = ref.device, ref.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    x = torch.zeros(tuple(int(s) for s in input_shape), device=device, dtype=dtype)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return fn(module, x)
    finally:
        module.train(was_training)


def count_macs(module: "nn.Module", input_shape: Sequence[int]) -> int:
    """Multiply-adds of one forward pass on an input of ``input_shape`` (batch dimension included).

    Convolutions (any dimensionality, groups respected): output elements x (in_channels /
    groups) x kernel size. Linear: output elements x in_features. Each layer is counted every
    time it is called. Bias, BatchNorm and activations are not counted.
    """
    from torch import nn

    total = [0]

    def conv_hook(layer, _inputs, output):
        per_output = (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
        total[0] += output.numel() * per_output

    def linear_hook(layer, _inputs, output):
        total[0] += output.numel() * layer.in_features

    def declared_hook(layer, inputs, _output):
        total[0] += int(inputs[0].shape[0]) * int(layer.macs_per_window(int(inputs[0].shape[-1])))

    handles = []
    for layer in module.modules():
        if callable(getattr(layer, "macs_per_window", None)) and not any(True for _ in layer.children()):
            # a leaf computing with functional ops (e.g. the FFT band-pass) states its own cost
            handles.append(layer.register_forward_hook(declared_hook))
        elif isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            handles.append(layer.register_forward_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_hook(linear_hook))
    try:
        _eval_forward(module, input_shape, lambda m, x: m(x))
    finally:
        for handle in handles:
            handle.remove()
    return int(total[0])


def count_flops(module: "nn.Module", input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass as :class:`torch.utils.flop_counter.FlopCounterMode` counts
    them: 2 per multiply-add of convolutions and matrix products, element-wise ops not counted."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    uncounted = [0]

    # Leaves that state their cost (macs_per_window) but compute with ops the counter does not
    # see (an FFT) are charged 2 x their stated MACs; when the counter did see them, nothing extra.
    def before(layer, _inputs):
        layer._restbench_flops_before = counter.get_total_flops()

    def after(layer, inputs, _output):
        if counter.get_total_flops() == layer._restbench_flops_before:
            uncounted[0] += 2 * int(inputs[0].shape[0]) * int(layer.macs_per_window(int(inputs[0].shape[-1])))

    handles = []
    for layer in module.modules():
        if callable(getattr(layer, "macs_per_window", None)) and not any(True for _ in layer.children()):
            handles += [layer.register_forward_pre_hook(before), layer.register_forward_hook(after)]

    def run(m, x):
        with counter:
            m(x)
        return counter.get_total_flops()

    try:
        return int(_eval_forward(module, input_shape, run)) + uncounted[0]
    finally:
        for handle in handles:
            handle.remove()


def efficiency_report(
    module: "nn.Module", input_shape: Sequence[int], windows_per_night: int = WINDOWS_PER_NIGHT
) -> dict:
    """Efficiency of ``module`` per window and per night, as typed numbers.

    ``input_shape`` is one window's shape, with or without a leading batch dimension
    (``(1, 12000)`` or ``(1, 1, 12000)``); counts are always for a single window (batch 1).
    Returns ``params``, ``size_kb``, ``macs``, ``mflops``, ``macs_per_night``,
    ``mflops_per_night``, ``windows_per_night``, ``input_shape`` and ``note`` (what is counted).
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:  # (channels, times): add the batch dimension
        shape = (1, *shape)
    shape = (1, *shape[1:])
    macs = count_macs(module, shape)
    flops = count_flops(module, shape)
    return {
        "params": count_params(module),
        "size_kb": size_kb(module),
        "macs": macs,
        "mflops": flops / 1e6,
        "macs_per_night": macs * int(windows_per_night),
        "mflops_per_night": flops * int(windows_per_night) / 1e6,
        "windows_per_night": int(windows_per_night),
        "input_shape": list(shape),
        "note": NOTE,
    }


# --------------------------------------------------------------------------- latency


def _latency_option_declarations():
    from restbench.plugins.options import NOT_IN_PAPER, Option

    return (
        Option("repetitions", int, 10, "timed nights; the night's min, median and p90 are taken over them",
               minimum=1, paper=NOT_IN_PAPER, profiles={"smoke": 3}),
        Option("threads", int, 1, "CPU threads the runtime may use", minimum=1, paper=NOT_IN_PAPER),
        Option("night_windows", int, None, "windows timed per repetition (null: a whole night); fewer scale up "
               "to a night", nullable=True, minimum=1, paper=NOT_IN_PAPER, profiles={"quick": 108, "smoke": 4}),
        Option("warmup", int, 20, "untimed calls before timing (caches, allocator, lazy initialisation)",
               minimum=0, paper=NOT_IN_PAPER, profiles={"smoke": 2}),
        Option("variants", list, None, "deployed variants to time (null: every one the artifact has and the runner "
               "knows)", item=str, nullable=True, paper=NOT_IN_PAPER),
        Option("seed", int, 0, "seed of the synthetic timing windows", minimum=0, paper=NOT_IN_PAPER),
        Option("busy_spread", float, 0.5, "warn when the per-window (p90 - min) / min exceeds this",
               minimum=0.0, paper=NOT_IN_PAPER),
        Option("busy_others_cpu", float, 0.5, "warn when other processes used more than this share of the "
               "machine's CPU time while timing (/proc/stat)", minimum=0.0, maximum=1.0, paper=NOT_IN_PAPER),
        Option("busy_load", float, 1.0, "warn when the 1-minute load average, less the timing's own threads, "
               "exceeds this many runnable tasks per usable CPU", minimum=0.0, paper=NOT_IN_PAPER),
    )


#: The options every latency runner declares (``--set RUNNER.NAME=VALUE``).
LATENCY_OPTIONS = _latency_option_declarations()


@dataclass(frozen=True)
class LatencyOptions:
    """Resolved latency options (see :data:`LATENCY_OPTIONS`), plus the artifact's
    ``windows_per_night`` (1,080 = 9 h unless the run says otherwise).

    ``night_windows`` fewer than ``windows_per_night`` scales the night's time up (recorded in
    the report's ``extra``). Latency does not depend on the values for these dense networks,
    so random microvolt-scale windows (``seed``) stand in for data. ``busy_*`` are the
    thresholds of :func:`busy_reasons`.
    """

    repetitions: int = 10
    threads: int = 1
    windows_per_night: int = WINDOWS_PER_NIGHT
    night_windows: int | None = None
    warmup: int = 20
    variants: tuple[str, ...] | None = None
    seed: int = 0
    busy_spread: float = 0.5
    busy_others_cpu: float = 0.5
    busy_load: float = 1.0

    @classmethod
    def parse(cls, options: dict | None, runner: str, windows_per_night: int = WINDOWS_PER_NIGHT,
              declared: Sequence[Any] = LATENCY_OPTIONS) -> "LatencyOptions":
        """Check ``options`` against ``declared`` (unknown keys and bad values raise UsageError);
        keys of ``declared`` that are not latency options are left to the runner."""
        from restbench.plugins.options import fill_options

        values = fill_options(declared, options, runner)
        mine = {o.name for o in LATENCY_OPTIONS}
        values = {k: v for k, v in values.items() if k in mine}
        if values["variants"] is not None:
            values["variants"] = tuple(values["variants"])
        return cls(windows_per_night=int(windows_per_night), **values)

    @property
    def timed_windows(self) -> int:
        """Windows timed per repetition."""
        return self.night_windows or self.windows_per_night


@dataclass(frozen=True)
class MachineSample:
    """What the machine was doing at one moment: the 1-minute load average and CPU time
    counters (``None`` where the platform does not expose them)."""

    wall_s: float
    load_avg_1min: float | None
    busy_ticks: int | None  # all CPUs' non-idle time since boot, in clock ticks (/proc/stat)
    total_ticks: int | None  # all CPUs' time since boot, in clock ticks
    own_cpu_s: float  # this process's user + system CPU time, every thread


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask; the CPU count where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class MachineProbe:
    """Reads the load average (``os.getloadavg``) and the CPU counters of ``/proc/stat``.

    :func:`measure_latency` samples it before and after timing; tests hand it a stand-in that
    replays recorded samples. ``/proc/stat`` counts every CPU of the host: in a container
    limited by a CPU quota the others' share it gives is a share of the host.
    """

    def __init__(self, stat_path: str = "/proc/stat") -> None:
        self.stat_path = stat_path

    def sample(self) -> MachineSample:
        try:
            load = float(os.getloadavg()[0])
        except (AttributeError, OSError):
            load = None
        busy = total = None
        try:
            with open(self.stat_path, encoding="ascii") as fh:
                fields = [int(v) for v in fh.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
            total = sum(fields)
            busy = total - fields[3] - (fields[4] if len(fields) > 4 else 0)
        except (OSError, ValueError, IndexError):
            pass
        times = os.times()
        return MachineSample(time.perf_counter(), load, busy, total, times.user + times.system)

    @staticmethod
    def clock_ticks() -> int:
        try:
            return int(os.sysconf("SC_CLK_TCK"))
        except (AttributeError, ValueError, OSError):
            return 100


def others_cpu_share(before: MachineSample, after: MachineSample, ticks_per_s: int) -> float | None:
    """Share (0..1) of all CPUs' time between two samples that other processes used: the
    non-idle ticks less this process's own CPU time, over all ticks. ``None`` when the counters
    are missing or the interval is under 20 ticks (too short to say)."""
    if None in (before.busy_ticks, after.busy_ticks, before.total_ticks, after.total_ticks):
        return None
    total = after.total_ticks - before.total_ticks
    if total < 20:
        return None
    others = (after.busy_ticks - before.busy_ticks) - (after.own_cpu_s - before.own_cpu_s) * ticks_per_s
    return min(1.0, max(0.0, others / total))


def busy_reasons(spread: float | None, others_cpu: float | None, load_before: float | None,
                 load_after: float | None, threads: int, cpus: int, options: LatencyOptions) -> list[str]:
    """Why a latency figure may measure the machine's load rather than the model (empty when
    nothing says so):

    - the per-window spread ``(p90 - min) / min`` exceeds ``options.busy_spread`` (a quiet
      machine repeats a dense network's call within a few per cent);
    - other processes used more than ``options.busy_others_cpu`` of all CPUs' time while timing;
    - the 1-minute load average before or after timing, less the timing's own ``threads``,
      exceeds ``options.busy_load`` runnable tasks per usable CPU (``cpus``).
    """
    reasons = []
    if spread is not None and spread > options.busy_spread:
        reasons.append(f"per-window spread (p90 - min) / min = {spread:.2f} > {options.busy_spread:g}")
    if others_cpu is not None and others_cpu > options.busy_others_cpu:
        reasons.append(f"other processes used {others_cpu:.0%} of the CPUs while timing "
                       f"(> {options.busy_others_cpu:.0%})")
    loads = [v for v in (load_before, load_after) if v is not None]
    if loads:
        others_load = max(loads) - threads
        if others_load > options.busy_load * cpus:
            reasons.append(f"1-minute load average {max(loads):.2f} with {threads} timing thread(s) on "
                           f"{cpus} usable CPU(s) (> {options.busy_load:g} other task(s) per CPU)")
    return reasons


def measure_latency(
    run: Callable[[Any], Any],
    inputs: Sequence[Any],
    options: LatencyOptions,
    windows_per_call: int = 1,
    *,
    clock: Callable[[], float] = time.perf_counter,
    probe: Any = None,
) -> dict:
    """Time ``run`` over a night of windows, ``options.repetitions`` times, and say whether the
    machine was quiet enough for the figure to be the model's.

    ``run(inputs[j % len(inputs)])`` scores ``windows_per_call`` windows (the graph's batch).
    After ``options.warmup`` untimed calls, each repetition is one realistic loop over
    ``options.timed_windows`` windows, one call after the other; every call is timed on its own
    (per-window latency = call time / windows_per_call, statistics pooled over all
    repetitions) and the whole loop is timed as the night (scaled by windows_per_night /
    windows timed when fewer are timed). ``probe`` (default :class:`MachineProbe`) is sampled
    before the warm-up and after the last repetition.

    Returns seconds: ``latency_s_per_window_{min,median,p90}``,
    ``latency_s_per_night_{min,median,p90}``; ``latency_spread`` (per-window (p90 - min) / min);
    ``load_avg_1min_before`` / ``_after``, ``others_cpu_share``, ``usable_cpus``; ``busy`` and
    ``busy_reasons`` (:func:`busy_reasons`); and ``extra`` (how the night was obtained, the raw
    nights).
    """
    import numpy as np

    if not inputs:
        raise ValueError("measure_latency needs at least one input")
    probe = probe or MachineProbe()
    before = probe.sample()
    for j in range(options.warmup):
        run(inputs[j % len(inputs)])
    n_calls = max(1, math.ceil(options.timed_windows / windows_per_call))
    windows_timed = n_calls * windows_per_call
    per_window: list[float] = []
    nights: list[float] = []
    for _ in range(options.repetitions):
        night_start = clock()
        for j in range(n_calls):
            start = clock()
            run(inputs[j % len(inputs)])
            per_window.append((clock() - start) / windows_per_call)
        nights.append((clock() - night_start) * options.windows_per_night / windows_timed)
    after = probe.sample()
    window_min = float(np.min(per_window))
    window_p90 = float(np.percentile(per_window, 90))
    spread = (window_p90 - window_min) / window_min if window_min > 0 else None
    others = others_cpu_share(before, after, probe.clock_ticks())
    cpus = usable_cpus()
    reasons = busy_reasons(spread, others, before.load_avg_1min, after.load_avg_1min, options.threads, cpus, options)
    return {
        "latency_s_per_window_min": window_min,
        "latency_s_per_window_median": float(np.median(per_window)),
        "latency_s_per_window_p90": window_p90,
        "latency_s_per_night_min": float(np.min(nights)),
        "latency_s_per_night_median": float(np.median(nights)),
        "latency_s_per_night_p90": float(np.percentile(nights, 90)),
        "latency_spread": spread,
        "load_avg_1min_before": before.load_avg_1min,
        "load_avg_1min_after": after.load_avg_1min,
        "others_cpu_share": others,
        "usable_cpus": cpus,
        "busy": bool(reasons),
        "busy_reasons": reasons,
        "extra": {
            "night_method": "timed loop over consecutive windows, one call each"
            + ("" if windows_timed == options.windows_per_night else ", scaled to windows_per_night"),
            "windows_timed_per_repetition": windows_timed,
            "windows_per_call": windows_per_call,
            "warmup_calls": options.warmup,
            "timed_calls": len(per_window),
            "timing_wall_s": after.wall_s - before.wall_s,
            "latency_s_per_night_all": [float(n) for n in nights],
            "per_window_statistic": "min/median/p90 over every timed call of all repetitions",
        },
    }


def host_cpu() -> str:
    """This machine's CPU as one line: model name, architecture and logical CPU count."""
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model", "cpu model") and value.strip():
                    name = value.strip()
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    return f"{name} ({platform.machine()}, {os.cpu_count()} logical CPUs, {platform.system()})"
