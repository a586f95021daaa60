"""Keep large tensor buffers in the C heap instead of mapping fresh pages for every pass.

glibc's malloc serves each request above its mmap threshold (128 KiB, adapting up to 32 MiB)
with a fresh ``mmap`` and returns it with ``munmap`` when freed; every page of it is then
faulted in again on the next pass. A Sors activation tensor at the quick profile's evaluation
batch (256 windows x 16 channels x 6,000 samples x 4 bytes = 98 MB) is above any threshold, so
every forward and backward pass maps, faults in and unmaps it: 416,000 minor page faults per
PGD iteration measured here (benchmarks/bench_eval_pass.py). With the mmap and trim thresholds
raised to 1 GiB the buffers are reused from the heap: no faults and 0.33x the time per PGD
iteration on the project's 2-core machine. The arithmetic is untouched, so every number a run
produces is identical; the cost is that freed memory stays with the process until it exits
(peak RSS of that workload 1.36 GB instead of 1.00 GB).

:func:`tune_allocator` applies this once per process (runs, reproductions, searches call it);
``RESTBENCH_MALLOC=default`` leaves the allocator alone, and so does a user who set glibc's
own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` or preloaded another allocator
(jemalloc, tcmalloc) with ``LD_PRELOAD``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Both thresholds, in bytes: above the largest activation of a quick-profile pass.
THRESHOLD_BYTES = 1 << 30

_applied: dict | None = None


def tune_allocator(environ: dict | None = None) -> dict:
    """Raise glibc's mmap and trim thresholds (once per process); returns what was done:
    ``{"allocator": "glibc", "mmap_threshold": ..., "trim_threshold": ...}`` or
    ``{"allocator": "unchanged", "reason": ...}``."""
    global _applied
    if _applied is not None:
        return _applied
    env = os.environ if environ is None else environ
    reason = None
    if env.get("RESTBENCH_MALLOC", "tuned") == "default":
        reason = "RESTBENCH_MALLOC=default"
    elif any(k in env for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        reason = "glibc thresholds set by the environment"
    elif any(name in env.get("LD_PRELOAD", "") for name in ("jemalloc", "tcmalloc", "mimalloc")):
        reason = f"another allocator preloaded ({env['LD_PRELOAD']})"
    elif not sys.platform.startswith("linux"):
        reason = f"not glibc ({sys.platform})"
    if reason is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            ok = bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(
                libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES))
        except (OSError, AttributeError) as exc:  # musl and others have no mallopt
            ok, reason = False, f"no mallopt ({exc})"
        if ok:
            _applied = {"allocator": "glibc", "mmap_threshold": THRESHOLD_BYTES, "trim_threshold": THRESHOLD_BYTES}
            return _applied
        reason = reason or "mallopt refused the thresholds"
    _applied = {"allocator": "unchanged", "reason": reason}
    return _applied
