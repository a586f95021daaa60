"""Per-night latency of Sors vs a REST (A+S)-shaped pruned Sors, next to their FLOP ratio.

How close to the FLOP ratio does wall-clock latency get? The paper reports 1,451 vs 94 MFLOPs
(15.4x) and 302 s vs 31 s per night on a Pixel 2 (9.7x) for Sleep-EDF. This script builds the
Sors network (``sors2018`` model plugin) for 12,000-sample windows, makes a REST-shaped copy
by network slimming to sparsity 0.8 (``slimming`` compressor plugin) after giving the BN gammas
random magnitudes (an untrained network's gammas are all 1, which gives slimming nothing to
rank; trained REST models have uneven gammas, so random ones stand in), exports both to
fp32 and int8 .tflite, and times a night on ``tflite-local`` (fp32, int8) and ``torch-cpu``.

Weights are random: latency of these dense networks does not depend on the values.

    python benchmarks/bench_latency.py            # full nights (1,080 windows) x 5 repetitions
    python benchmarks/bench_latency.py --quick    # 54 windows per repetition, scaled to a night
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from restbench.api import Artifact, PluginError
from restbench.deploy.efficiency import efficiency_report, host_cpu
from restbench.deploy.export import export_tflite

N_TIMES, SFREQ, N_CLASSES = 12000, 100.0, 5


def build_models(seed: int) -> tuple[dict[str, torch.nn.Module], str]:
    """Sors and its slimmed copy (``{"sors": ..., "rest-shaped": ...}``) and how the copy was made."""
    try:
        from restbench_builtins.models.sors2018 import Sors2018
    except ImportError as exc:
        raise SystemExit(f"needs the sors2018 model plugin (restbench_builtins): {exc}") from None
    torch.manual_seed(seed)
    model = Sors2018()
    sors, spec = model.build(N_TIMES, SFREQ, N_CLASSES)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time 54 windows per repetition and scale to a night")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for TFLite and torch (default 1)")
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    from restbench_builtins.runners.tflite_local import TFLiteLocal
    from restbench_builtins.runners.torch_cpu import TorchCPU

    torch.set_num_threads(args.threads)
    models, how = build_models(args.seed)
    options = {"repetitions": args.repetitions, "threads": args.threads, "seed": args.seed}
    if args.quick:
        options.update(night_windows=54, warmup=5)
    rng = np.random.default_rng(args.seed)
    calibration = (rng.standard_normal((32 if args.quick else 128, 1, N_TIMES)) * 30.0).astype(np.float32)

    print(f"device: {host_cpu()}; threads {args.threads}; {args.repetitions} repetitions; "
          f"{'quick (54 windows scaled to 1,080)' if args.quick else 'full nights of 1,080 windows'}")
    print(f"pruned model: {how}")
    results: dict[str, dict] = {}
    tflite_ok, reason = TFLiteLocal().available()
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in models.items():
            eff = efficiency_report(module, (1, N_TIMES))
            row = {"params": eff["params"], "size_kb": eff["size_kb"], "mflops": eff["mflops"]}
            artifact = Artifact(name=name, module=module, input_shape=(1, 1, N_TIMES))
            if tflite_ok:
                started = time.perf_counter()
                sample = calibration[:1]
                try:
                    artifact.files["tflite-fp32"] = export_tflite(module, sample, Path(tmp) / f"{name}_fp32.tflite")
                    artifact.files["tflite-int8"] = export_tflite(
                        module, sample, Path(tmp) / f"{name}_int8.tflite", quantize="int8", calibration=calibration
                    )
                except PluginError as exc:
                    print(f"{name}: export failed: {exc}")
                row["export_s"] = time.perf_counter() - started
                if "tflite-fp32" in artifact.files:
                    for report in TFLiteLocal().measure(artifact, options):
                        row[f"tflite_{report.variant}_s_per_night"] = report.latency_s_per_night_median
                        row["tflite_runtime"] = f"{report.runtime} {report.runtime_version}"
            (torch_report,) = TorchCPU().measure(artifact, options)
            row["torch_s_per_night"] = torch_report.latency_s_per_night_median
            results[name] = row
            print(f"  measured {name}", file=sys.stderr)
    if not tflite_ok:
        print(f"tflite-local unavailable: {reason}")

    columns = [
        ("params", "params", "{:,.0f}"),
        ("size_kb", "size KB", "{:,.0f}"),
        ("mflops", "MFLOPs", "{:,.1f}"),
        ("tflite_fp32_s_per_night", "TFLite fp32 s/night", "{:.2f}"),
        ("tflite_int8_s_per_night", "TFLite int8 s/night", "{:.2f}"),
        ("torch_s_per_night", "torch s/night", "{:.2f}"),
    ]
    sors, pruned = results["sors"], results["rest-shaped"]
    ratio = {k: sors[k] / pruned[k] for k, _, _ in columns if k in sors and k in pruned and pruned[k]}
    widths = [max(len(label), 12) for _, label, _ in columns]
    print()
    print(f"{'':<14}" + "  ".join(f"{label:>{w}}" for (_, label, _), w in zip(columns, widths)))
    for name, row in (("sors", sors), ("rest-shaped", pruned)):
        cells = [fmt.format(row[k]) if k in row else "-" for k, _, fmt in columns]
        print(f"{name:<14}" + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    cells = [f"{ratio[k]:.1f}x" if k in ratio else "-" for k, _, _ in columns]
    print(f"{'sors / pruned':<14}" + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths)))
    print()
    flop_ratio = ratio["mflops"]
    for key, label in (("tflite_fp32_s_per_night", "TFLite fp32"), ("tflite_int8_s_per_night", "TFLite int8"),
                       ("torch_s_per_night", "torch")):
        if key in ratio:
            print(f"{label:<12} speed-up {ratio[key]:5.1f}x = {100 * ratio[key] / flop_ratio:3.0f} % of the "
                  f"{flop_ratio:.1f}x FLOP ratio")
    print("paper (Pixel 2, TFLite): 302 s vs 31 s per night = 9.7x for a 15.4x FLOP ratio (63 %)")
    if args.json:
        args.json.write_text(json.dumps({"device": host_cpu(), "options": options, "pruned": how,
                                         "results": results, "ratios": ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
