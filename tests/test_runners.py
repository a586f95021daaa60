"""Latency runners: tflite-local and torch-cpu measured for real; android-adb's command
construction, output parsing and energy arithmetic, and its whole flow against a stand-in adb."""

import importlib.util
import os
import stat
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn

from restbench.api import Artifact, LatencyReport, PluginError, Runner, UsageError
from restbench_builtins.runners import android_adb, tflite_local, torch_cpu
from restbench_builtins.runners.android_adb import (
    AndroidAdb,
    benchmark_command,
    energy_per_night_j,
    joules_per_percent,
    parse_battery,
    parse_benchmark_output,
)

HAS_TFLITE = all(importlib.util.find_spec(m) is not None for m in ("litert_torch", "ai_edge_litert"))
N_TIMES = 200
FAST = {"repetitions": 5, "night_windows": 12, "warmup": 2}


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(1, 8, 7, stride=2, padding=3),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * (N_TIMES // 2), 5),
    ).eval()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    if not HAS_TFLITE:
        pytest.skip("needs litert-torch and ai-edge-litert")
    from restbench_builtins.tflite_graphs import export_tflite

    model = tiny_net()
    windows = np.random.default_rng(0).normal(0, 30, (32, 1, N_TIMES)).astype(np.float32)
    out = tmp_path_factory.mktemp("runners")
    return Artifact(
        name="tiny",
        module=model,
        files={"tflite-fp32": export_tflite(model, windows[:1], out / "tiny_fp32.tflite"),
               "tflite-int8": export_tflite(model, windows[:1], out / "tiny_int8.tflite", quantize="int8",
                                            calibration=windows)},
        input_shape=(1, 1, N_TIMES),
    )


def registered(module) -> list:
    objects = []
    module.register_runners(objects.append)
    return objects


def check_report(report: LatencyReport, runner: str, variant: str, threads: int = 1) -> None:
    assert isinstance(report, LatencyReport)
    assert (report.runner, report.variant, report.threads) == (runner, variant, threads)
    assert 0 < report.latency_s_per_window_median <= report.latency_s_per_window_p90 < 1.0
    assert 0 < report.latency_s_per_night_median <= report.latency_s_per_night_p90
    # a night is about 1,080 windows (loop overhead and jitter allowed)
    ratio = report.latency_s_per_night_median / (1080 * report.latency_s_per_window_median)
    assert 0.5 < ratio < 3.0
    assert report.repetitions == 5 and report.windows_per_night == 1080
    assert report.runtime and report.runtime_version and report.runtime_version != "unknown"
    assert "logical CPUs" in report.device
    assert report.extra["windows_timed_per_repetition"] == 12
    assert "scaled to windows_per_night" in report.extra["night_method"]
    # how far the figure can be trusted travels with it
    assert 0 < report.latency_s_per_window_min <= report.latency_s_per_window_median
    assert 0 < report.latency_s_per_night_min <= report.latency_s_per_night_median
    assert report.latency_spread == pytest.approx(
        (report.latency_s_per_window_p90 - report.latency_s_per_window_min) / report.latency_s_per_window_min)
    if hasattr(os, "getloadavg"):
        assert report.load_avg_1min_before >= 0 and report.load_avg_1min_after >= 0
    assert report.usable_cpus >= 1 and report.extra["timed_calls"] == 5 * 12
    assert report.busy is bool(report.busy_reasons)


def test_runners_register_and_satisfy_protocol():
    for module, rid in ((tflite_local, "tflite-local"), (torch_cpu, "torch-cpu"), (android_adb, "android-adb")):
        (runner,) = registered(module)
        assert isinstance(runner, Runner) and runner.id == rid


@pytest.mark.skipif(not HAS_TFLITE, reason="needs litert-torch and ai-edge-litert")
def test_tflite_local_measures_both_variants(artifact):
    runner = tflite_local.TFLiteLocal()
    assert runner.available() == (True, "")
    reports = runner.measure(artifact, FAST)
    assert [r.variant for r in reports] == ["fp32", "int8"]
    for report in reports:
        check_report(report, "tflite-local", report.variant)
        assert report.runtime == "ai-edge-litert"
        assert report.extra["graph_batch"] == 1
    (only,) = runner.measure(artifact, {**FAST, "variants": "int8", "threads": 2})
    check_report(only, "tflite-local", "int8", threads=2)


@pytest.mark.skipif(not HAS_TFLITE, reason="needs litert-torch and ai-edge-litert")
def test_tflite_local_errors(artifact):
    runner = tflite_local.TFLiteLocal()
    with pytest.raises(UsageError, match="unknown variant"):
        runner.measure(artifact, {"variants": "fp16"})
    with pytest.raises(UsageError, match="has no option"):
        runner.measure(artifact, {"repeats": 5})
    no_int8 = Artifact(name="a", module=artifact.module, files={"tflite-fp32": artifact.files["tflite-fp32"]})
    with pytest.raises(PluginError, match="no int8 .tflite graph"):
        runner.measure(no_int8, {"variants": ["int8"]})
    with pytest.raises(PluginError, match="no exported .tflite graph"):
        runner.measure(Artifact(name="bare", module=artifact.module), {})


def test_torch_cpu_measures_module_and_restores_threads():
    runner = torch_cpu.TorchCPU()
    assert runner.available()[0]
    before = torch.get_num_threads()
    art = Artifact(name="tiny", module=tiny_net(), input_shape=(1, 1, N_TIMES))
    (report,) = runner.measure(art, {**FAST, "threads": 2})
    check_report(report, "torch-cpu", "torch", threads=2)
    assert report.runtime == "torch" and report.runtime_version == torch.__version__
    assert torch.get_num_threads() == before
    with pytest.raises(PluginError, match="no PyTorch module"):
        runner.measure(Artifact(name="none"), {})
    with pytest.raises(UsageError, match="only variant"):
        runner.measure(art, {"variants": "fp32"})


# --------------------------------------------------------------------------- android-adb

# Captured output shapes of TFLite's benchmark_model: an older build (no percentiles) and a
# recent one (INFO: prefix, p5/median/p95 on the statistics lines).
OLD_OUTPUT = """\
STARTING!
Num runs: [1080]
Graph: [/data/local/tmp/restbench/sors_fp32.tflite]
Loaded model /data/local/tmp/restbench/sors_fp32.tflite
The input model file size (MB): 9.0553
Initialized session in 41.2ms.
Running benchmark for at least 10 iterations and at least 0 seconds but terminate if exceeding 36000 seconds.
count=10 first=301234 curr=279876 min=278012 max=301234 avg=282345 std=6512

Running benchmark for at least 1080 iterations and at least 0 seconds but terminate if exceeding 36000 seconds.
count=1080 first=280111 curr=279540 min=276998 max=290876 avg=279632 std=2103

Inference timings in us: Init: 41200, First inference: 301234, Warmup (avg): 282345, Inference (avg): 279632
Memory footprint delta from the start of the tool (MB): init=12.3 overall=25.6
"""

NEW_OUTPUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [1]
INFO: Graph: [/data/local/tmp/restbench/rest_int8.tflite]
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 0.121
INFO: Initialized session in 3.5ms.
INFO: Running benchmark for at least 10 iterations and at least 0 seconds but terminate if exceeding 36000 seconds.
INFO: count=10 first=30311 curr=28702 min=28650 max=30311 avg=28901.2 std=480 p5=28650 median=28712 p95=30311

INFO: Running benchmark for at least 1080 iterations and at least 0 seconds but terminate if exceeding 36000 seconds.
INFO: count=1080 first=28810 curr=28690 min=28499 max=31022 avg=28751.4 std=301 p5=28530 median=28698 p95=29310

INFO: Inference timings in us: Init: 3500, First inference: 30311, Warmup (avg): 28901.2, Inference (avg): 28751.4
INFO: Memory footprint delta from the start of the tool (MB): init=1.2 overall=2.5
"""

FAILED_OUTPUT = """\
INFO: STARTING!
ERROR: Could not open '/data/local/tmp/restbench/missing.tflite'.
ERROR: Failed to mmap model /data/local/tmp/restbench/missing.tflite
Benchmarking failed.
"""

BATTERY_USB = """\
Current Battery Service state:
  AC powered: false
  USB powered: true
  Wireless powered: false
  Max charging current: 500000
  status: 2
  health: 2
  present: true
  level: 87
  scale: 100
  voltage: 4123
  temperature: 280
  technology: Li-ion
"""


def test_benchmark_command_flags():
    argv = benchmark_command(
        "/data/local/tmp/restbench/m.tflite", threads=4, num_runs=1080, warmup_runs=10, serial="HT7A1"
    )
    assert argv[:4] == ["adb", "-s", "HT7A1", "shell"]
    remote = argv[4].split()
    assert remote[0] == "/data/local/tmp/benchmark_model"
    for flag in ("--graph=/data/local/tmp/restbench/m.tflite", "--num_threads=4", "--num_runs=1080",
                 "--warmup_runs=10", "--min_secs=0", "--warmup_min_secs=0", "--max_secs=36000"):
        assert flag in remote
    assert "--use_xnnpack=false" in benchmark_command("g", threads=1, num_runs=1, warmup_runs=0, use_xnnpack=False)[-1]
    assert benchmark_command("g", threads=1, num_runs=1, warmup_runs=0)[:2] == ["adb", "shell"]


def test_parse_benchmark_output_old_and_new():
    old = parse_benchmark_output(OLD_OUTPUT)
    assert old["inference_avg_us"] == 279632 and old["init_us"] == 41200
    assert old["inference"]["count"] == 1080 and old["inference"]["std"] == 2103
    assert "median" not in old["inference"]
    assert old["warmup"]["count"] == 10 and old["total_runs"] == 1090
    new = parse_benchmark_output(NEW_OUTPUT)
    assert new["inference"]["median"] == 28698 and new["inference"]["p95"] == 29310
    assert new["inference_avg_us"] == pytest.approx(28751.4)
    same = parse_benchmark_output("count=5 curr=1200(all same)\ncount=20 curr=1100(all same)\n")
    assert same["inference"]["avg"] == 1100 and same["total_runs"] == 25
    with pytest.raises(PluginError, match="Benchmarking failed"):
        parse_benchmark_output(FAILED_OUTPUT)


def test_report_from_runs_uses_medians_and_nights():
    runner = AndroidAdb()
    opts, extra = runner._options({"repetitions": 5})
    runs = [parse_benchmark_output(NEW_OUTPUT)] * 4 + [parse_benchmark_output(OLD_OUTPUT)]
    report = runner.report_from_runs(runs, "int8", opts, "Pixel 2 (msm8998)", extra)
    assert report.latency_s_per_window_median == pytest.approx(0.028698)
    assert report.latency_s_per_night_median == pytest.approx(28751.4e-6 * 1080)
    # the p90 over repetitions sees the slow (fp32-like) fifth run
    assert report.latency_s_per_window_p90 > 0.1
    assert report.repetitions == 5 and report.device.startswith("Pixel 2")
    # the minimum is the fastest run the tool saw; the slow fifth run makes the spread large
    assert report.latency_s_per_window_min == pytest.approx(0.028499)
    assert report.latency_s_per_night_min == pytest.approx(28751.4e-6 * 1080)
    assert report.latency_spread > 1 and report.busy and "spread" in report.busy_reasons[0]
    steady = runner.report_from_runs([parse_benchmark_output(NEW_OUTPUT)] * 5, "int8", opts, "Pixel 2", extra)
    assert steady.latency_spread == pytest.approx((0.028698 - 0.028499) / 0.028499) and not steady.busy
    assert steady.load_avg_1min_before is None  # the host's load says nothing about the phone


def test_battery_and_energy_protocol():
    battery = parse_battery(BATTERY_USB)
    assert battery == {"level": 87.0, "powered": True, "status": 2, "voltage_mv": 4123.0}
    assert joules_per_percent() == pytest.approx(374.22)  # 2.7 Ah x 3600 s x 3.85 V / 100
    # REST (A+S) on Sleep-EDF: 53 J per night <=> about 7,626 inferences per 1 % of battery
    energy = energy_per_night_j([7626] * 15)
    assert energy["energy_j_per_night"] == pytest.approx(53.0, abs=0.05)
    mixed = energy_per_night_j([1000, 2000])
    assert mixed["energy_j_per_night"] == pytest.approx((374.22 * 1.08 + 374.22 * 0.54) / 2)
    with pytest.raises(PluginError):
        energy_per_night_j([])


def test_android_unavailable_without_adb(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no adb
    runner = AndroidAdb()
    ok, reason = runner.available()
    assert not ok and "adb not found on PATH" in reason
    with pytest.raises(PluginError, match="android-adb unavailable: adb not found"):
        runner.measure(Artifact(name="x", files={"tflite-fp32": tmp_path / "m.tflite"}), {})
    with pytest.raises(UsageError, match="has no option"):
        runner.measure(Artifact(name="x"), {"serail": "abc"})


FAKE_ADB = '''\
#!{python}
"""Stand-in for adb: answers like one connected phone (or none) with canned outputs."""
import os, sys
args = sys.argv[1:]
if os.environ.get("FAKE_ADB_LOG"):
    with open(os.environ["FAKE_ADB_LOG"], "a") as fh:
        fh.write(" ".join(args) + "\\n")
if args == ["devices"]:
    print("List of devices attached")
    if os.environ.get("FAKE_ADB_DEVICE"):
        print("HT7A1\\tdevice")
    sys.exit(0)
if args[:2] == ["-s", "HT7A1"]:
    args = args[2:]
if args[0] == "push":
    print("1 file pushed")
elif args[0] == "shell":
    cmd = args[1]
    if "benchmark_model --graph" in cmd:
        with open(os.environ["FAKE_ADB_BENCH"]) as fh:
            sys.stdout.write(fh.read())
    elif cmd.startswith("getprop ro.product.model"):
        print("Pixel 2")
    elif cmd.startswith("getprop ro.board.platform"):
        print("msm8998")
    elif cmd.startswith("getprop ro.build.version.release"):
        print("11")
    elif cmd.startswith("md5sum"):
        print("0123abcd  /data/local/tmp/benchmark_model")
    elif cmd.startswith("ls"):
        print(cmd.split()[1])
    else:
        print("")
'''


def test_android_flow_against_stand_in_adb(monkeypatch, tmp_path):
    adb = tmp_path / "adb"
    adb.write_text(textwrap.dedent(FAKE_ADB).replace("{python}", sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    bench = tmp_path / "bench.txt"
    bench.write_text(NEW_OUTPUT)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_BENCH", str(bench))
    monkeypatch.setenv("FAKE_ADB_LOG", str(log))
    runner = AndroidAdb()
    ok, reason = runner.available()
    assert not ok and "no Android device connected" in reason
    monkeypatch.setenv("FAKE_ADB_DEVICE", "1")
    assert runner.available() == (True, "")
    graph = tmp_path / "rest_int8.tflite"
    graph.write_bytes(b"TFL3")
    (report,) = runner.measure(Artifact(name="rest", files={"tflite-int8": graph}), {"repetitions": 5, "threads": 1})
    assert report.runner == "android-adb" and report.variant == "int8"
    assert report.device.startswith("Pixel 2 (msm8998")
    assert report.latency_s_per_window_median == pytest.approx(0.028698)
    assert report.latency_s_per_night_median == pytest.approx(0.0287514 * 1080)
    assert report.extra["benchmark_binary_md5"] == "0123abcd"
    calls = log.read_text().splitlines()
    assert any(c.startswith("push ") and c.endswith("/data/local/tmp/restbench/rest_int8.tflite") for c in calls)
    bench_calls = [c for c in calls if "benchmark_model --graph" in c]
    assert len(bench_calls) == 5 and "--num_runs=1080" in bench_calls[0]
    # a failing tool run surfaces as a one-line PluginError
    bench.write_text(FAILED_OUTPUT)
    with pytest.raises(PluginError, match="benchmark_model printed no timings"):
        runner.measure(Artifact(name="rest", files={"tflite-int8": graph}), {"repetitions": 1})
