"""Training precision: plain float32, or bfloat16 autocast where the hardware computes it natively.

bf16 autocast runs the convolutions of a training step (the PGD attack's too) in bfloat16 and
keeps weights, optimiser state, losses and every evaluation in float32. On CPUs with native
bf16 instructions (AVX512-BF16 or AMX) it measured 1.6x (PGD-2 step, width 1/8) to 1.9x (clean
step, widths 1/8 and 1/4) faster per Sors training step than float32 (benchmarks/README.md,
bench_precision.py); without them it is emulated and
slower, so ``auto`` only picks it where the CPU (or GPU) has it. Same seed, same machine: same
numbers in either precision; the resolved precision is recorded with the run and is part of
every trained model's key.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

PRECISIONS = ("fp32", "bf16", "auto")

#: /proc/cpuinfo flags of native bf16 arithmetic (x86: AVX512-BF16 on Cooper Lake/Zen 4, AMX on Sapphire Rapids)
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The first CPU's feature flags (empty where /proc/cpuinfo does not exist)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return set(line.split(":", 1)[1].split())
    return set()


def native_bf16(device_type: str) -> bool:
    """Whether ``device_type`` ("cpu", "cuda") computes bfloat16 natively."""
    if device_type == "cuda":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bool(NATIVE_BF16_FLAGS & cpu_flags())


def resolve_precision(name: str, device_type: str) -> str:
    """``fp32`` or ``bf16``: ``auto`` picks bf16 only where the device has it natively."""
    if name == "auto":
        return "bf16" if native_bf16(device_type) else "fp32"
    return name


def autocast(precision: str, device_type: str):
    """The context a training step runs in: bf16 autocast, or nothing for fp32."""
    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def full_precision(device_type: str):
    """Leave autocast for a computation that must stay float32 (regularisers on the weights)."""
    import torch

    return torch.autocast(device_type=device_type, enabled=False)
