"""Eval-mode passes (prediction, PGD iterations at evaluation and model selection): what makes them cheaper.

Each candidate is timed against the plain eval-mode network in the same process, interleaved,
on the quick profile's network (Sors at width 1/8, 12,000-sample windows) with BatchNorm
statistics and affine parameters drawn at random (an untrained network's are 0/1, which would
make folding trivially exact):

- ``fold``: BatchNorm folded into the preceding convolution / linear layer
  (``torch.fx.experimental.optimization.fuse``, which any fx-traceable model gets);
- ``inplace``: every ReLU in place;
- ``fold+inplace``;
- ``channels_last``: the input in (n, time, channel) memory order (1-D convolutions have no
  channels-last format of their own; this is what oneDNN would see);
- ``jit_frozen``: ``torch.jit.optimize_for_inference(torch.jit.freeze(script))`` (folds BN too);
- ``compile``: ``torch.compile`` (inductor, CPU); its compile time is reported beside it.

Workloads: ``predict`` (a batch of 256 under inference_mode, the evaluation/selection batch) and
``pgd_iter`` (forward + gradient with respect to the input, parameters frozen, the model in eval
mode: one PGD iteration, batch 256 at evaluation, 64 in a training step). For every variant the
predictions on the same windows are compared with the plain network's (``pred_differ``) and
the largest logit difference is recorded: a variant that changes a prediction must not be used
for reported evaluation.

The variants are timed under the allocator setting runs use (restbench.run.allocator;
``--allocator default`` for glibc's own). The allocator test runs the PGD workload (batch 256)
in child processes, interleaved, under glibc's default, ``MALLOC_ARENA_MAX=2``, the mmap and
trim thresholds raised to 1 GiB (each alone and both, by environment), what restbench sets at run
time (``mallopt``, restbench.run.allocator), and jemalloc where a libjemalloc is installed
(LD_PRELOAD); minor page faults per iteration and peak RSS are reported.

    python benchmarks/bench_eval_pass.py            # ~4 minutes
    python benchmarks/bench_eval_pass.py --smoke    # seconds: small windows, no compile, 1 allocator round
"""

from __future__ import annotations

import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

#: Libraries tried for the jemalloc variant, first found wins.
JEMALLOC_PATHS = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
                  "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")
BIG = str(1 << 30)
#: Child environments; "default" is glibc untouched (RESTBENCH_MALLOC=default), "restbench" what runs set
#: (restbench.run.allocator.tune_allocator, at run time through mallopt).
ALLOCATORS: dict[str, dict[str, str]] = {
    "default": {"RESTBENCH_MALLOC": "default"},
    "arena_max_2": {"RESTBENCH_MALLOC": "default", "MALLOC_ARENA_MAX": "2"},
    "mmap_threshold_1g": {"RESTBENCH_MALLOC": "default", "MALLOC_MMAP_THRESHOLD_": BIG},
    "trim_threshold_1g": {"RESTBENCH_MALLOC": "default", "MALLOC_TRIM_THRESHOLD_": BIG},
    "mmap_trim_1g_env": {"RESTBENCH_MALLOC": "default", "MALLOC_MMAP_THRESHOLD_": BIG, "MALLOC_TRIM_THRESHOLD_": BIG},
    "restbench": {"RESTBENCH_MALLOC": "tuned"},
}
CLEARED = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "RESTBENCH_MALLOC", "LD_PRELOAD")


def build_net(width: float, n_times: int, seed: int = 0):
    import torch

    from restbench_builtins.models.sors2018 import Sors2018

    torch.manual_seed(seed)
    net, _ = Sors2018().build(n_times, 100.0, 5, width=width)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # trained-looking BatchNorms: uneven statistics and affine parameters
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 2 + 0.1)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.2)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return net.eval()


def windows(n: int, n_times: int, seed: int = 1):
    """Sleep-like windows in uV (stage sinusoids plus noise, restbench.plugins.testing)."""
    import torch

    from restbench.plugins.testing import make_sleep_data

    data = make_sleep_data(n_subjects=max(4, n // 20 + 4), epochs_per_subject=24, samples_per_epoch=n_times // 4,
                           sfreq=100.0, seed=seed)
    ends = data.window_end[:n]
    x, _ = data.get(ends)
    reps = -(-n // len(x))
    return torch.from_numpy(x).repeat(reps, 1, 1)[:n].contiguous()


def inplace(net):
    import torch

    out = copy.deepcopy(net)
    for m in out.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = True
    return out


def variants(net, smoke: bool, sample) -> tuple[dict, dict]:
    """``{name: callable module}`` and ``{name: seconds to build it}``."""
    import torch
    from torch.fx.experimental.optimization import fuse

    built, build_s = {"plain": net}, {}
    t0 = time.perf_counter()
    built["fold"] = fuse(copy.deepcopy(net))
    build_s["fold"] = time.perf_counter() - t0
    built["inplace"] = inplace(net)
    built["fold+inplace"] = inplace(built["fold"])
    t0 = time.perf_counter()
    with torch.no_grad():
        built["jit_frozen"] = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(copy.deepcopy(net))))
    build_s["jit_frozen"] = time.perf_counter() - t0
    if not smoke:
        t0 = time.perf_counter()
        compiled = torch.compile(copy.deepcopy(net))
        with torch.inference_mode():
            compiled(sample)
        build_s["compile"] = time.perf_counter() - t0
        built["compile"] = compiled
    return built, build_s


def predict_fn(module, x, channels_last=False):
    import torch

    if channels_last:
        x = x.transpose(1, 2).contiguous().transpose(1, 2)

    def run():
        with torch.inference_mode():
            return module(x)
    return run


def pgd_fn(module, x, y, channels_last=False):
    """One PGD iteration as restbench.training.attacks.pgd runs it (eval, parameters frozen)."""
    import torch
    import torch.nn.functional as F

    for p in module.parameters():
        p.requires_grad_(False)
    if channels_last:
        x = x.transpose(1, 2).contiguous().transpose(1, 2)

    def run():
        xa = x.detach().requires_grad_(True)
        loss = F.cross_entropy(module(xa), y, reduction="none")
        (grad,) = torch.autograd.grad(loss.sum(), xa)
        return grad
    return run


def compare(reference, candidate, x) -> dict:
    import torch

    with torch.inference_mode():
        a, b = reference(x), candidate(x)
    return {"pred_differ": int((a.argmax(1) != b.argmax(1)).sum()), "windows": int(len(x)),
            "max_abs_logit_diff": float((a - b).abs().max())}


# --------------------------------------------------------------------------- allocator children


def child(width: float, n_times: int, batch: int, iterations: int) -> dict:
    """Time ``iterations`` PGD iterations in this process (its environment is the variant)."""
    from restbench.run.allocator import tune_allocator

    applied = tune_allocator()
    import torch

    torch.set_num_threads(int(os.environ.get("_BENCH_THREADS", "1")))
    net = build_net(width, n_times)
    x = windows(batch, n_times)
    y = torch.zeros(batch, dtype=torch.long)
    run = pgd_fn(net, x, y)
    run()
    run()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM, not ru_maxrss: a child's ru_maxrss keeps the forking parent's peak across exec
    hwm = next((int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:")), 0) if Path("/proc/self/status").exists() else 0
    return {"median_s": statistics.median(times), "minor_faults_per_iter": (usage.ru_minflt - faults0) / iterations,
            "peak_rss_mb": hwm / 1024.0, "tune_allocator": applied}


def allocator_test(args, rounds: int, iterations: int, batch: int, width: float, n_times: int) -> dict:
    envs = dict(ALLOCATORS)
    jemalloc = next((p for p in JEMALLOC_PATHS if Path(p).is_file()), None)
    if jemalloc:
        envs["jemalloc"] = {"LD_PRELOAD": jemalloc}  # tune_allocator leaves a preloaded allocator alone
    samples: dict[str, list[dict]] = {k: [] for k in envs}
    cmd = [sys.executable, __file__, "--child", f"{width},{n_times},{batch},{iterations}"]
    for r in range(rounds):
        order = list(envs) if r % 2 == 0 else list(envs)[::-1]
        for name in order:
            env = {k: v for k, v in os.environ.items() if k not in CLEARED}
            env.update(_BENCH_THREADS=str(args.threads), **envs[name])
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            samples[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    base = [s["median_s"] for s in samples["default"]]
    report = {"jemalloc": jemalloc or "not installed (apt-get install libjemalloc2 to include it)", "variants": {}}
    for name, rows in samples.items():
        t = [s["median_s"] for s in rows]
        report["variants"][name] = {
            "median_s": statistics.median(t),
            "ratio_to_default": _common.paired_ratio(t, base),
            "minor_faults_per_iter": statistics.median(s["minor_faults_per_iter"] for s in rows),
            "peak_rss_mb": statistics.median(s["peak_rss_mb"] for s in rows),
            "tune_allocator": rows[0]["tune_allocator"],
        }
    return report


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__, default_repetitions=15)
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--child", help=__import__("argparse").SUPPRESS)
    p.add_argument("--no-compile", action="store_true", help="leave torch.compile out (it compiles for minutes)")
    p.add_argument("--allocator", choices=("restbench", "default"), default="restbench",
                   help="allocator of the variant timings: what runs set (restbench.run.allocator) or glibc's default")
    args = p.parse_args(argv)
    if args.child:
        w, n, b, it = args.child.split(",")
        print(json.dumps(child(float(w), int(n), int(b), int(it))))
        return 0

    from restbench.run.allocator import tune_allocator

    allocator = tune_allocator({"RESTBENCH_MALLOC": "default"} if args.allocator == "default" else None)
    import torch

    torch.set_num_threads(args.threads)
    smoke = args.smoke
    n_times = 1200 if smoke else 12000
    reps = 3 if smoke else args.repetitions
    net = build_net(args.width, n_times)
    x_eval = windows(256 if not smoke else 32, n_times)
    x_train = x_eval[: 64 if not smoke else 16]
    y_eval = torch.randint(0, 5, (len(x_eval),), generator=torch.Generator().manual_seed(2))
    built, build_s = variants(net, smoke or args.no_compile, x_eval[:8])
    x_check = windows(512 if not smoke else 64, n_times, seed=3)

    identity = {name: compare(net, m, x_check) for name, m in built.items() if name != "plain"}
    identity["channels_last"] = compare(net, lambda x: net(x.transpose(1, 2).contiguous().transpose(1, 2)), x_check)

    ratios, timings = {}, {}
    workloads = [("predict_b%d" % len(x_eval), x_eval, None), ("pgd_iter_b%d" % len(x_eval), x_eval, y_eval),
                 ("pgd_iter_b%d" % len(x_train), x_train, y_eval[: len(x_train)])]
    for work, x, y in workloads:
        def make(module, channels_last=False):
            if y is None:
                return predict_fn(module, x, channels_last)
            return pgd_fn(copy.deepcopy(module), x, y, channels_last)  # pgd_fn freezes the copy's parameters

        fns = {name: make(module) for name, module in built.items() if y is None or name not in ("jit_frozen", "compile")}
        fns["channels_last"] = make(net, True)
        if "compile" in built and y is not None:  # compiled again: the PGD pass needs its own backward graph
            t0 = time.perf_counter()
            fns["compile"] = pgd_fn(torch.compile(copy.deepcopy(net)), x, y)
            fns["compile"]()
            build_s[f"compile_{work}"] = time.perf_counter() - t0
        samples = _common.interleaved(fns, reps, warmup=1)
        timings[work] = {name: _common.summary(s) for name, s in samples.items()}
        for name, s in samples.items():
            if name != "plain":
                ratios[f"{work}.{name}"] = _common.paired_ratio(s, samples["plain"])
        print(f"  {work}: " + ", ".join(f"{k.split('.', 1)[1]} {v:.2f}" for k, v in ratios.items() if k.startswith(work)),
              file=sys.stderr)

    alloc = allocator_test(args, 1 if smoke else 3, 2 if smoke else 6, 16 if smoke else 256, args.width, n_times)
    for name, row in alloc["variants"].items():
        if name != "default":
            ratios[f"allocator.{name}"] = row["ratio_to_default"]

    # the bar for keeping a change: more than 10 % faster (the README says what was kept and why)
    shown = [k for k in ratios if k.endswith((".fold+inplace", ".compile")) or k == "allocator.restbench"]
    targets = [_common.target(f"{key} (time / plain)", ratios[key], 0.9,
                              "the bar for keeping it; kept or not: benchmarks/README.md") for key in shown]
    record = _common.result(
        "eval_pass", smoke,
        {"width": args.width, "n_times": n_times, "repetitions": reps, "threads": args.threads,
         "eval_batch": len(x_eval), "train_batch": len(x_train), "allocator": allocator},
        ratios, targets, threads=args.threads, timings=timings, build_s=build_s, identity=identity, allocator=alloc,
    )
    _common.write(record, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
