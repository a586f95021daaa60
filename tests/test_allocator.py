"""restbench.run.allocator: large buffers are reused from the heap, and the user can opt out.

Each case runs in a fresh interpreter (the setting is per process and applied once): it mallocs a
64 MiB buffer, touches every page, frees it, and does the same again, counting the minor page
faults of the second round. glibc's default maps that buffer afresh (one fault per page);
with the thresholds raised the second buffer is the first one's memory, already mapped.
"""

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, json, resource, sys
from restbench.run.allocator import tune_allocator
applied = tune_allocator()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
n = 64 << 20
def round_trip():
    p = libc.malloc(n)
    ctypes.memset(p, 1, n)
    libc.free(p)
round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
round_trip()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": applied, "faults": faults, "again": tune_allocator() is applied}))
"""
CLEARED = ("RESTBENCH_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")


def probe(**env) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    done = subprocess.run([sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def test_tuned_by_default_and_buffers_are_reused():
    tuned = probe()
    assert tuned["applied"] == {"allocator": "glibc", "mmap_threshold": 1 << 30, "trim_threshold": 1 << 30}
    assert tuned["again"], "applied once per process"
    default = probe(RESTBENCH_MALLOC="default")
    assert default["applied"] == {"allocator": "unchanged", "reason": "RESTBENCH_MALLOC=default"}
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert default["faults"] > pages // 2, "glibc maps a 64 MiB buffer afresh"
    assert tuned["faults"] < pages // 20, "the tuned heap hands the same memory back"


def test_leaves_a_users_allocator_settings_alone():
    assert probe(MALLOC_MMAP_THRESHOLD_="262144")["applied"]["reason"] == "glibc thresholds set by the environment"
    assert probe(MALLOC_TRIM_THRESHOLD_="262144")["applied"]["allocator"] == "unchanged"
    from restbench.run.allocator import tune_allocator
    import restbench.run.allocator as allocator

    saved, allocator._applied = allocator._applied, None
    try:
        assert tune_allocator({"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"})["reason"].startswith("another allocator")
    finally:
        allocator._applied = saved
