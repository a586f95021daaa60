"""``android-adb``: latency (and optionally energy) of .tflite graphs on an Android phone over adb.

Latency uses TensorFlow Lite's native ``benchmark_model`` tool on the phone: each exported graph
is pushed to ``/data/local/tmp/restbench/`` and benchmarked ``repetitions`` times; one
repetition runs a night of windows back to back (``--num_runs=night_windows`` with
``--min_secs=0`` so the count is exact, ``--max_secs`` raised so a slow night is not cut at the
tool's 150 s default), after ``warmup`` untimed runs. The tool prints per-run statistics
(``count= ... avg= ... std=`` and, in recent versions, ``p5= median= p95=``), not each run's time,
so here per-window median/p90 are the median/p90 over repetitions of each run's median (its
average when the tool prints no percentiles), and a night is ``avg x windows_per_night``.

Energy (``energy=true``) follows the paper's battery-drain protocol (docs/PROTOCOL.md): run the model
continuously while polling ``dumpsys battery``; from ``energy_start_level`` down to
``energy_stop_level`` (100 % -> 85 %: 15 one-percent intervals) count the inferences N_i done
per 1 % drop; 1 % of a 2,700 mAh, 3.85 V battery is 2.7 Ah x 3600 s x 3.85 V / 100 = 374 J, so
energy per night = 374 J / N_i x 1,080, averaged over the intervals. Intervals run between
observed drops (the position inside the first percent is unknown). The phone must really
discharge: connect adb over Wi-Fi (``adb tcpip``) and unplug the cable (a USB-powered phone
charges while it is measured, and ``dumpsys battery unplug`` only fakes the state).

Options (``--set android-adb.NAME=VALUE``): the latency options plus ``serial`` (adb device serial),
``benchmark_binary`` (path on the phone, default ``/data/local/tmp/benchmark_model``),
``benchmark_binary_local`` (host file to push there first: the ``android_aarch64``
``benchmark_model`` build from the TensorFlow Lite releases), ``use_xnnpack`` (true/false),
``energy``, ``energy_start_level``, ``energy_stop_level``, ``energy_batch_runs`` (inferences
per benchmark_model call between battery polls), ``battery_mah``, ``battery_v``,
``runtime_version`` (what to record as the tool's version; the tool does not print one),
``timeout_s`` (per adb command, default 10 h).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

from restbench.api import (
    LATENCY_OPTIONS,
    NOT_IN_PAPER,
    Artifact,
    LatencyOptions,
    LatencyReport,
    Option,
    PluginError,
    UsageError,
    busy_reasons,
    fill_options,
    hookimpl,
)

DEFAULT_BINARY = "/data/local/tmp/benchmark_model"
DEVICE_DIR = "/data/local/tmp/restbench"
OPTIONS = LATENCY_OPTIONS + (
    Option("serial", str, None, "adb device serial (null: the only connected device)", nullable=True, paper=NOT_IN_PAPER),
    Option("benchmark_binary", str, DEFAULT_BINARY, "TFLite benchmark_model binary on the device", paper=NOT_IN_PAPER),
    Option("benchmark_binary_local", str, None, "local benchmark_model binary to push first", nullable=True,
           paper=NOT_IN_PAPER),
    Option("use_xnnpack", bool, None, "force XNNPACK on or off (null: the binary's default)", nullable=True,
           paper=NOT_IN_PAPER),
    Option("energy", bool, False, "also measure energy from battery drain (takes hours)", paper=NOT_IN_PAPER),
    Option("energy_start_level", float, 100.0, "battery % at which energy timing starts", minimum=1, maximum=100),
    Option("energy_stop_level", float, 85.0, "battery % at which energy timing stops", minimum=0, maximum=99),
    Option("energy_batch_runs", int, 200, "benchmark runs per energy batch", minimum=1, paper=NOT_IN_PAPER),
    Option("battery_mah", float, 2700.0, "battery capacity in mAh (Pixel 2: 2,700)", minimum=1),
    Option("battery_v", float, 3.85, "battery voltage (Pixel 2: 3.85 V)", minimum=0.1),
    Option("runtime_version", str, "unknown", "TFLite version of the benchmark binary, for the record",
           paper=NOT_IN_PAPER),
    Option("timeout_s", float, 36000.0, "adb command timeout in seconds", minimum=1, paper=NOT_IN_PAPER),
)

# --------------------------------------------------------------------------- pure helpers


def adb_base(serial: str | None = None, adb: str = "adb") -> list[str]:
    """``adb`` (with ``-s SERIAL`` when a device is named)."""
    return [adb, "-s", serial] if serial else [adb]


def benchmark_command(
    graph: str,
    *,
    threads: int,
    num_runs: int,
    warmup_runs: int,
    binary: str = DEFAULT_BINARY,
    serial: str | None = None,
    use_xnnpack: bool | None = None,
    max_secs: float = 36000.0,
) -> list[str]:
    """The argv that benchmarks ``graph`` (a path on the phone) with ``benchmark_model``.

    ``--min_secs=0`` / ``--warmup_min_secs=0`` make the tool run exactly ``num_runs`` /
    ``warmup_runs`` times (its defaults keep running for 1 s / 0.5 s); ``--max_secs`` lifts
    its 150 s cut-off, which a night of a large model on an old phone exceeds.
    """
    flags = [
        f"--graph={graph}",
        f"--num_threads={int(threads)}",
        f"--num_runs={int(num_runs)}",
        f"--warmup_runs={int(warmup_runs)}",
        "--min_secs=0",
        "--warmup_min_secs=0",
        f"--max_secs={max_secs:g}",
    ]
    if use_xnnpack is not None:
        flags.append(f"--use_xnnpack={'true' if use_xnnpack else 'false'}")
    # adb shell joins its arguments into one remote command line: quote each part
    return [*adb_base(serial), "shell", " ".join(shlex.quote(p) for p in [binary, *flags])]


_STAT_LINE = re.compile(r"count=(\d+)(.*)")
_TIMINGS = re.compile(
    r"Inference timings in us:\s*Init:\s*([\d.eE+-]+),\s*First inference:\s*([\d.eE+-]+),"
    r"\s*Warmup \(avg\):\s*([\d.eE+-]+|nan|-nan),\s*Inference \(avg\):\s*([\d.eE+-]+)"
)


def _stat_fields(line: str) -> dict[str, float]:
    match = _STAT_LINE.search(line)
    if not match:
        return {}
    fields = {"count": float(match.group(1))}
    for key, value in re.findall(r"(\w+)=([\d.eE+-]+)", match.group(2)):
        fields[key] = float(value)
    if "(all same)" in line or ("avg" not in fields and "curr" in fields):
        # every run took the same time: the tool prints only curr
        for key in ("first", "min", "max", "avg", "p5", "median", "p95"):
            fields.setdefault(key, fields.get("curr", float("nan")))
        fields.setdefault("std", 0.0)
    return fields


def parse_benchmark_output(text: str) -> dict[str, Any]:
    """Parse ``benchmark_model`` output into microsecond statistics.

    Returns ``warmup`` and ``inference`` (the ``count= first= curr= min= max= avg= std=
    [p5= median= p95=]`` lines of the warm-up and the timed runs, as floats), ``init_us``,
    ``first_inference_us``, ``inference_avg_us`` (from "Inference timings in us") and
    ``total_runs`` (warm-up + timed, for the energy protocol). Raises :class:`PluginError`
    with the tool's last line when no timing is found (the tool failed).
    """
    stats = [f for f in (_stat_fields(line) for line in text.splitlines() if "count=" in line) if f]
    timings = _TIMINGS.search(text)
    if not stats and not timings:
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else "no output"
        raise PluginError(f"benchmark_model printed no timings (last line: {last!r})")
    inference = stats[-1] if stats else {}
    warmup = stats[-2] if len(stats) >= 2 else {}
    result: dict[str, Any] = {
        "warmup": warmup,
        "inference": inference,
        "total_runs": int(sum(s.get("count", 0) for s in stats[-2:])),
    }
    if timings:
        init, first, _warm, avg = timings.groups()
        result.update(init_us=float(init), first_inference_us=float(first), inference_avg_us=float(avg))
    else:
        result["inference_avg_us"] = inference.get("avg", float("nan"))
    return result


def parse_battery(text: str) -> dict[str, Any]:
    """Parse ``dumpsys battery``: ``level`` (percent of ``scale``), ``powered`` (any of AC / USB /
    wireless / dock powered), ``status`` code (2 charging, 3 discharging) and ``voltage_mv``."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip().lower()] = value.strip()
    if "level" not in values:
        raise PluginError("could not read the battery level from 'adb shell dumpsys battery'")
    scale = float(values.get("scale", "100") or 100)
    powered = any(
        values.get(k, "false").lower() == "true"
        for k in ("ac powered", "usb powered", "wireless powered", "dock powered")
    )
    return {
        "level": float(values["level"]) * 100.0 / scale,
        "powered": powered,
        "status": int(values["status"]) if values.get("status", "").isdigit() else None,
        "voltage_mv": float(values["voltage"]) if values.get("voltage", "").isdigit() else None,
    }


def joules_per_percent(battery_mah: float = 2700.0, battery_v: float = 3.85) -> float:
    """Energy of 1 % of the battery: mAh / 1000 x 3600 s x V / 100 (374.2 J for the Pixel 2)."""
    return battery_mah / 1000.0 * 3600.0 * battery_v / 100.0


def energy_per_night_j(
    inferences_per_percent: Sequence[int],
    windows_per_night: int = 1080,
    battery_mah: float = 2700.0,
    battery_v: float = 3.85,
) -> dict[str, Any]:
    """The paper's energy estimate from the inferences N_i counted per 1 % battery drop.

    Each interval gives joules_per_percent / N_i x windows_per_night; the result averages them
    (``energy_j_per_night``) and keeps each (``energy_j_per_night_intervals``).
    """
    import numpy as np

    counts = [int(n) for n in inferences_per_percent]
    if not counts or min(counts) <= 0:
        raise PluginError("energy protocol needs at least one 1 % interval with inferences counted")
    per_percent = joules_per_percent(battery_mah, battery_v)
    nights = [per_percent / n * windows_per_night for n in counts]
    return {
        "energy_j_per_night": float(np.mean(nights)),
        "energy_j_per_night_intervals": nights,
        "inferences_per_percent": counts,
        "joules_per_percent": per_percent,
        "battery_mah": battery_mah,
        "battery_v": battery_v,
    }


# --------------------------------------------------------------------------- adb


class Adb:
    """Runs adb commands for one device; failures become :class:`PluginError`."""

    def __init__(self, serial: str | None = None, timeout_s: float = 3600.0) -> None:
        self.serial = serial
        self.timeout_s = timeout_s

    def run(self, args: Sequence[str], *, raw: bool = False) -> str:
        """Run ``adb [-s serial] ARGS`` (or ``args`` as-is when ``raw``); return stdout+stderr."""
        argv = list(args) if raw else [*adb_base(self.serial), *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s)
        except FileNotFoundError:
            raise PluginError("adb not found on PATH: install Android platform-tools") from None
        except subprocess.TimeoutExpired:
            raise PluginError(f"adb command timed out after {self.timeout_s:g} s: {' '.join(argv[:6])}") from None
        output = (proc.stdout or "") + (proc.stderr or "")
        if proc.returncode != 0:
            last = output.strip().splitlines()[-1] if output.strip() else f"exit code {proc.returncode}"
            raise PluginError(f"adb command failed ({' '.join(argv[:5])} ...): {last}")
        return output

    def shell(self, command: str) -> str:
        return self.run(["shell", command])

    def devices(self) -> list[str]:
        """Serials of connected devices in the ``device`` state."""
        out = self.run(["adb", "devices"], raw=True)
        serials = []
        for line in out.splitlines()[1:]:
            parts = line.split()
            if len(parts) >= 2 and parts[1] == "device":
                serials.append(parts[0])
        return serials

    def describe(self) -> str:
        """Phone model, SoC and Android version in one line."""

        def prop(name: str) -> str:
            try:
                return self.shell(f"getprop {name}").strip()
            except PluginError:
                return ""

        model = prop("ro.product.model") or "Android device"
        soc = prop("ro.soc.model") or prop("ro.board.platform") or prop("ro.hardware")
        release = prop("ro.build.version.release")
        abi = prop("ro.product.cpu.abi")
        parts = [p for p in (soc, abi, f"Android {release}" if release else "") if p]
        return f"{model} ({', '.join(parts)})" if parts else model


# --------------------------------------------------------------------------- runner


class AndroidAdb:
    """Latency (and battery-drain energy) on an Android phone with TFLite's benchmark_model."""

    id = "android-adb"
    version = "1.1.0"
    description = "Latency and battery-drain energy of .tflite graphs on an Android phone over adb"
    citation = "Duggal et al. 2020, Sec. 5.4 (Pixel 2, TensorFlow Lite, battery drain 100 % -> 85 %)"
    options = OPTIONS

    def available(self) -> tuple[bool, str]:
        if shutil.which("adb") is None:
            return False, "adb not found on PATH: install Android platform-tools"
        try:
            serials = Adb(timeout_s=30.0).devices()
        except PluginError as exc:
            return False, str(exc)
        if not serials:
            return False, "no Android device connected ('adb devices' lists none): connect one with USB debugging on"
        return True, ""

    def _options(self, options: dict[str, Any], windows_per_night: int = 1080) -> tuple[LatencyOptions, dict[str, Any]]:
        opts = LatencyOptions.parse(options, self.id, windows_per_night, declared=OPTIONS)
        latency_keys = {o.name for o in LATENCY_OPTIONS}
        extra = {k: v for k, v in fill_options(OPTIONS, options, self.id).items() if k not in latency_keys}
        if not extra["energy_start_level"] > extra["energy_stop_level"]:
            raise UsageError(f"runner {self.id}: energy_start_level must be above energy_stop_level")
        return opts, extra

    def measure(self, artifact: Artifact, options: dict[str, Any]) -> list[LatencyReport]:
        from restbench_builtins.tflite_graphs import artifact_graphs

        opts, extra = self._options(options, artifact.windows_per_night)
        ok, reason = self.available()
        if not ok:
            raise PluginError(f"runner {self.id} unavailable: {reason}")
        graphs = artifact_graphs(artifact, opts.variants, self.id)
        adb = Adb(extra["serial"], timeout_s=extra["timeout_s"])
        serials = adb.devices()
        if extra["serial"] is None and len(serials) > 1:
            raise UsageError(
                f"runner {self.id}: {len(serials)} devices connected ({', '.join(serials)}): "
                "choose one with --set android-adb.serial=SERIAL"
            )
        if extra["serial"] is not None and extra["serial"] not in serials:
            raise PluginError(f"runner {self.id}: device {extra['serial']} is not connected")
        binary = extra["benchmark_binary"]
        if extra["benchmark_binary_local"]:
            local = Path(extra["benchmark_binary_local"])
            if not local.is_file():
                raise PluginError(f"runner {self.id}: benchmark_binary_local {local} does not exist")
            adb.run(["push", str(local), binary])
            adb.shell(f"chmod 755 {shlex.quote(binary)}")
        probe = adb.shell(f"ls {shlex.quote(binary)} 2>/dev/null || echo MISSING")
        if "MISSING" in probe or "No such file" in probe:
            raise PluginError(
                f"runner {self.id}: benchmark_model not found on the phone at {binary}: download the "
                "android_aarch64 benchmark_model build and pass benchmark_binary_local=PATH"
            )
        binary_md5 = adb.shell(f"md5sum {shlex.quote(binary)} 2>/dev/null || true").split(" ")[0].strip()
        device = adb.describe()
        adb.shell(f"mkdir -p {DEVICE_DIR}")
        reports = []
        for variant, path in graphs.items():
            remote = f"{DEVICE_DIR}/{Path(path).name}"
            adb.run(["push", str(path), remote])
            runs = []
            for _ in range(opts.repetitions):
                argv = benchmark_command(
                    remote,
                    threads=opts.threads,
                    num_runs=opts.timed_windows,
                    warmup_runs=opts.warmup,
                    binary=binary,
                    serial=extra["serial"],
                    use_xnnpack=extra["use_xnnpack"],
                )
                runs.append(parse_benchmark_output(adb.run(argv, raw=True)))
            report = self.report_from_runs(runs, variant, opts, device, extra, graph=remote)
            report.extra["benchmark_binary_md5"] = binary_md5
            if extra["energy"]:
                report.extra["energy"] = self.measure_energy(adb, remote, binary, opts, extra)
            reports.append(report)
        return reports

    def report_from_runs(
        self,
        runs: list[dict[str, Any]],
        variant: str,
        opts: LatencyOptions,
        device: str,
        extra: dict[str, Any],
        graph: str = "",
    ) -> LatencyReport:
        """Build the report from parsed ``benchmark_model`` runs (one run = one repetition)."""
        import numpy as np

        medians_us = [r["inference"].get("median", r["inference_avg_us"]) for r in runs]
        avgs_us = [r["inference_avg_us"] for r in runs]
        window_s = np.asarray(medians_us, dtype=float) * 1e-6
        night_s = np.asarray(avgs_us, dtype=float) * 1e-6 * opts.windows_per_night
        # the fastest single run the tool saw (its min), else the fastest run's median
        mins_us = [r["inference"].get("min", m) for r, m in zip(runs, medians_us)]
        window_min = float(np.min(mins_us)) * 1e-6
        window_p90 = float(np.percentile(window_s, 90))
        spread = (window_p90 - window_min) / window_min if window_min > 0 else None
        # the host's load says nothing about the phone: only the spread is judged here
        reasons = busy_reasons(spread, None, None, None, opts.threads, 1, opts)
        return LatencyReport(
            runner=self.id,
            variant=variant,
            latency_s_per_window_median=float(np.median(window_s)),
            latency_s_per_window_p90=window_p90,
            latency_s_per_night_median=float(np.median(night_s)),
            latency_s_per_night_p90=float(np.percentile(night_s, 90)),
            latency_s_per_window_min=window_min,
            latency_s_per_night_min=float(np.min(night_s)),
            latency_spread=spread,
            busy=bool(reasons),
            busy_reasons=reasons,
            repetitions=len(runs),
            windows_per_night=opts.windows_per_night,
            threads=opts.threads,
            runtime="tflite-benchmark_model",
            runtime_version=extra.get("runtime_version", "unknown"),
            device=device,
            extra={
                "graph": graph,
                "night_method": "benchmark_model avg per run x windows_per_night; one run = "
                f"{opts.timed_windows} consecutive windows",
                "per_window_statistic": "median/p90 over repetitions of each run's median "
                "(its avg when the tool prints no percentiles); min: the smallest run time the tool reported",
                "windows_timed_per_repetition": opts.timed_windows,
                "warmup_runs": opts.warmup,
                "use_xnnpack": extra.get("use_xnnpack"),
                "runs_us": [
                    {k: r["inference"].get(k) for k in ("count", "avg", "std", "min", "max", "median", "p95")}
                    for r in runs
                ],
                "init_us": [r.get("init_us") for r in runs],
            },
        )

    def measure_energy(
        self, adb: Adb, graph: str, binary: str, opts: LatencyOptions, extra: dict[str, Any]
    ) -> dict[str, Any]:
        """Battery-drain energy per night (docs/PROTOCOL.md). Runs until the battery reaches
        ``energy_stop_level``: hours on a real phone."""
        start, stop = extra["energy_start_level"], extra["energy_stop_level"]
        argv = benchmark_command(
            graph,
            threads=opts.threads,
            num_runs=extra["energy_batch_runs"],
            warmup_runs=0,
            binary=binary,
            serial=extra["serial"],
            use_xnnpack=extra["use_xnnpack"],
        )
        charging_error = PluginError(
            f"runner {self.id}: the phone is charging, so battery drain measures nothing: use adb "
            "over Wi-Fi (adb tcpip 5555; adb connect IP) and unplug the USB cable"
        )
        battery = parse_battery(adb.shell("dumpsys battery"))
        if battery["powered"] or battery["status"] == 2:
            raise charging_error
        if battery["level"] < start:
            raise PluginError(
                f"runner {self.id}: battery at {battery['level']:.0f} %, below energy_start_level "
                f"{start:.0f} %: charge the phone first"
            )
        # Where the battery sits inside its first percent is unknown, so intervals run between
        # observed drops: counting starts at the first drop once at or below start_level and
        # takes start - stop intervals (100 -> 85: the 15 percents after the 100 -> 99 drop).
        n_intervals = max(1, int(round(start - stop)))
        counts: list[int] = []
        level, counting, current = battery["level"], False, 0
        while len(counts) < n_intervals:
            done = parse_benchmark_output(adb.run(argv, raw=True))["total_runs"]
            battery = parse_battery(adb.shell("dumpsys battery"))
            if battery["powered"]:
                raise charging_error
            if counting:
                current += done
            if battery["level"] < level:
                if counting:
                    counts.append(current)
                counting = counting or battery["level"] <= start
                level, current = battery["level"], 0
        result = energy_per_night_j(counts, opts.windows_per_night, extra["battery_mah"], extra["battery_v"])
        result.update(start_level=start, stop_level=stop, batch_runs=extra["energy_batch_runs"])
        return result


@hookimpl
def register_runners(register):
    register(AndroidAdb())
