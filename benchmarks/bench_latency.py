"""Per-night latency of Sors vs a REST (A+S)-shaped pruned Sors, next to their FLOP ratio.

How close to the FLOP ratio does wall-clock latency get? The paper reports 1,451 vs 94 MFLOPs
(15.4x) and 302 s vs 31 s per night on a Pixel 2 (9.7x) for Sleep-EDF. This script builds the
Sors network (``sors2018`` model plugin) for 12,000-sample windows, makes a REST-shaped copy
by network slimming to sparsity 0.8 (``slimming`` compressor plugin) after giving the BN gammas
random magnitudes (an untrained network's gammas are all 1, which gives slimming nothing to
rank; trained REST models have uneven gammas, so random ones stand in), exports both to
fp32 and int8 .tflite, and times a night on ``tflite-local`` (fp32, int8) and ``torch-cpu``.

Weights are random: latency of these dense networks does not depend on the values.

The runner's figure is compared with a bare interpreter loop on the same .tflite file, same
thread count and the same windows (set_tensor of an input already in the graph's dtype, invoke,
get_tensor; no per-call timing, no quantisation), interleaved round by round: the ratio
``tflite_{fp32,int8}_runner_vs_bare`` is what the runner's machinery (float window in, int8
quantise/dequantise, a clock per call) adds; target <= 1.05. Writes
benchmarks/results/latency.json (benchmarks/_common.py's shape).

    python benchmarks/bench_latency.py            # 108 windows per night-round, scaled to 1,080; 5 rounds
    python benchmarks/bench_latency.py --full     # whole nights (1,080 windows) per round
    python benchmarks/bench_latency.py --smoke    # a small network on short windows, fp32 only: seconds
"""

from __future__ import annotations

import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from restbench.api import Artifact, PluginError
from restbench.deploy.efficiency import efficiency_report, host_cpu
from restbench_builtins.tflite_graphs import export_tflite

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

N_TIMES, SFREQ, N_CLASSES = 12000, 100.0, 5
TARGET_RUNNER_OVERHEAD = 1.05


def build_models(seed: int, n_times: int = N_TIMES, width: float = 1.0) -> tuple[dict[str, torch.nn.Module], str]:
    """Sors and its slimmed copy (``{"sors": ..., "rest-shaped": ...}``) and how the copy was made."""
    try:
        from restbench_builtins.models.sors2018 import Sors2018
    except ImportError as exc:
        raise SystemExit(f"needs the sors2018 model plugin (restbench_builtins): {exc}") from None
    torch.manual_seed(seed)
    model = Sors2018()
    sors, spec = model.build(n_times, SFREQ, N_CLASSES, width=width)
    sors.eval()
    try:
        from restbench_builtins.compressors.slimming import Slimming
    except ImportError as exc:
        raise SystemExit(
            f"needs the slimming compressor plugin to build the pruned model ({exc}); without it "
            "there is no REST-shaped network to compare with"
        ) from None
    slim_input = copy.deepcopy(sors)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in slim_input.modules():
            if isinstance(layer, torch.nn.BatchNorm1d):
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) + 0.01)
    pruned, _spec, report = Slimming().compress(slim_input, spec, model, {"sparsity": 0.8})
    pruned.eval()
    how = (
        f"slimming, sparsity 0.8, random BN gammas (seed {seed}); "
        f"params {report.params_before:,} -> {report.params_after:,}"
    )
    return {"sors": sors, "rest-shaped": pruned}, how


def bare_night(path: Path, windows: list, threads: int, n_windows: int, windows_per_night: int) -> float:
    """Seconds per night of a bare interpreter loop over ``n_windows`` windows, scaled to a night."""
    from restbench_builtins.tflite_graphs import interpreter_runtime

    interpreter_cls, _, _ = interpreter_runtime()
    interpreter = interpreter_cls(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    if scale:  # the graph's own dtype, converted before timing
        import numpy as np

        info = np.iinfo(inp["dtype"])
        windows = [np.clip(np.round(w / scale + zero), info.min, info.max).astype(inp["dtype"]) for w in windows]
    for w in windows[:2]:
        interpreter.set_tensor(inp["index"], w)
        interpreter.invoke()
    start = time.perf_counter()
    for j in range(n_windows):
        interpreter.set_tensor(inp["index"], windows[j % len(windows)])
        interpreter.invoke()
        interpreter.get_tensor(out["index"])
    return (time.perf_counter() - start) * windows_per_night / n_windows


def main(argv: list[str] | None = None) -> int:
    parser = _common.parser(__doc__, default_repetitions=5)
    parser.add_argument("--full", action="store_true", help="time whole nights (1,080 windows) per round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from restbench_builtins.runners.common import synthetic_windows
    from restbench_builtins.runners.tflite_local import TFLiteLocal
    from restbench_builtins.runners.torch_cpu import TorchCPU

    _common.runtime(args.threads)
    smoke = args.smoke
    n_times, width = (1200, 0.25) if smoke else (N_TIMES, 1.0)
    night_windows = 8 if smoke else (1080 if args.full else 108)
    rounds = 2 if smoke else args.repetitions
    models, how = build_models(args.seed, n_times, width)
    if smoke:
        models = {"sors": models["sors"]}
    options = {"repetitions": 1, "threads": args.threads, "seed": args.seed, "night_windows": night_windows,
               "warmup": 2 if smoke else 5}
    rng = np.random.default_rng(args.seed)
    calibration = (rng.standard_normal((8 if smoke else 32, 1, n_times)) * 30.0).astype(np.float32)

    print(f"device: {host_cpu()}; threads {args.threads}; {rounds} rounds of {night_windows} windows scaled to a "
          f"night; pruned model: {how}", file=sys.stderr)
    results: dict[str, dict] = {}
    ratios: dict[str, float] = {}
    targets: list[dict] = []
    notes: list[str] = []
    tflite_ok, reason = TFLiteLocal().available()
    if not tflite_ok:  # the figure is the runner against a bare interpreter: nothing to compare without one
        _common.write(_common.result("latency", smoke, {}, {}, [], threads=args.threads,
                                     skipped=f"no TFLite interpreter: {reason}"), args.out)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in models.items():
            eff = efficiency_report(module, (1, n_times))
            row = {"params": eff["params"], "size_kb": eff["size_kb"], "mflops": eff["mflops"]}
            artifact = Artifact(name=name, module=module, input_shape=(1, 1, n_times))
            if tflite_ok:
                started = time.perf_counter()
                sample = calibration[:1]
                try:
                    artifact.files["tflite-fp32"] = export_tflite(module, sample, Path(tmp) / f"{name}_fp32.tflite")
                    if not smoke:  # int8 conversion calibrates: tens of seconds
                        artifact.files["tflite-int8"] = export_tflite(
                            module, sample, Path(tmp) / f"{name}_int8.tflite", quantize="int8", calibration=calibration
                        )
                except PluginError as exc:
                    notes.append(f"{name}: export failed: {exc}")
                row["export_s"] = time.perf_counter() - started
                windows = list(synthetic_windows((1, 1, n_times), args.seed))
                for variant in ("fp32", "int8"):
                    path = artifact.files.get(f"tflite-{variant}")
                    if path is None:
                        continue
                    runner, bare = [], []
                    for r in range(rounds):  # interleaved: runner then bare, then bare then runner
                        for side in (("runner", "bare") if r % 2 == 0 else ("bare", "runner")):
                            if side == "runner":
                                (report,) = TFLiteLocal().measure(artifact, {**options, "variants": [variant]})
                                runner.append(report.latency_s_per_night_median)
                                row["tflite_runtime"] = f"{report.runtime} {report.runtime_version}"
                            else:
                                bare.append(bare_night(path, windows, args.threads, night_windows, 1080))
                    row[f"tflite_{variant}_s_per_night"] = statistics.median(runner)
                    row[f"tflite_{variant}_bare_s_per_night"] = statistics.median(bare)
                    key = f"{name}_tflite_{variant}_runner_vs_bare"
                    ratios[key] = _common.paired_ratio(runner, bare)
                    targets.append(_common.target(f"{name} TFLite {variant}: runner / bare interpreter loop",
                                                  ratios[key], TARGET_RUNNER_OVERHEAD))
            (torch_report,) = TorchCPU().measure(artifact, {**options, "repetitions": rounds})
            row["torch_s_per_night"] = torch_report.latency_s_per_night_median
            results[name] = row
            print(f"  measured {name}", file=sys.stderr)

    if "rest-shaped" in results:
        sors, pruned = results["sors"], results["rest-shaped"]
        keys = ("mflops", "tflite_fp32_s_per_night", "tflite_int8_s_per_night", "torch_s_per_night")
        for k in keys:
            if k in sors and k in pruned and pruned[k]:
                ratios[f"speedup_{k}"] = sors[k] / pruned[k]
        flop_ratio = ratios["speedup_mflops"]
        for k in keys[1:]:
            if f"speedup_{k}" in ratios:
                ratios[f"speedup_{k}_share_of_flop_ratio"] = ratios[f"speedup_{k}"] / flop_ratio
        notes.append("paper (Pixel 2, TFLite): 302 s vs 31 s per night = 9.7x for a 15.4x FLOP ratio (63 %)")
    record = _common.result("latency", smoke, {"n_times": n_times, "width": width, "rounds": rounds,
                                               "night_windows": night_windows, "windows_per_night": 1080,
                                               "pruned": how, "seed": args.seed},
                            ratios, targets, threads=args.threads, results=results, notes=notes)
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
