"""Latency timing every runner shares (:class:`LatencyOptions`, :func:`measure_latency` with its
busy-machine judgement :func:`busy_reasons`, :func:`host_cpu`), beside the counted cost of a
network (parameters, size, MACs, FLOPs), which lives in :mod:`restbench.evaluation.cost` and is
re-exported here for the efficiency records.
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence


from restbench.evaluation.cost import (  # noqa: F401  (the efficiency record's counted part)
    NOTE,
    WINDOWS_PER_NIGHT,
    count_flops,
    count_macs,
    count_params,
    efficiency_report,
    size_kb,
    stored_numel,
)


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
