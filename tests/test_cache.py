"""The content-addressed preprocessing cache (restbench.data.cache): keys, atomic builds, memmaps."""

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from restbench.data import cache
from restbench.data.cache import EpochStore, HashMemo, cache_key, file_digests, load_or_build, store_path
from restbench.data.sleep_data import training_stats

SPE = 30  # samples per epoch: tiny, the layout is what is tested


def _recording(seed: int, n: int):
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 20, (n, SPE)).astype(np.float32)
    labels = rng.integers(0, 5, n)
    contiguous = np.ones(n, dtype=bool)
    return signal, labels, contiguous


def _build_two(writer):
    sig, lab, con = _recording(1, 10)
    con[6] = False  # an excluded epoch before epoch 6
    writer.add("rec-a", "subj-1", sig, lab, con, info={"n": 10})
    writer.add("rec-b", "subj-2", *_recording(2, 7))
    return {"sfreq": 1.0, "note": "two recordings"}


def test_store_round_trip_is_memory_mapped(tmp_path):
    store, cached = load_or_build(tmp_path, "k1", SPE, _build_two)
    assert not cached
    again, cached = load_or_build(tmp_path, "k1", SPE, lambda w: pytest.fail("rebuilt a cached store"))
    assert cached
    assert isinstance(again.signal, np.memmap) and not again.signal.flags.writeable
    assert again.signal.shape == (17, SPE) and again.signal.dtype == np.float32
    np.testing.assert_array_equal(again.signal[:10], _recording(1, 10)[0])
    np.testing.assert_array_equal(again.signal[10:], _recording(2, 7)[0])
    assert again.recordings == ["rec-a", "rec-b"] and again.recording_subject == ["subj-1", "subj-2"]
    np.testing.assert_array_equal(again.recording, [0] * 10 + [1] * 7)
    # the first epoch of each recording never continues the one before
    assert not again.contiguous[0] and not again.contiguous[10] and not again.contiguous[6]
    assert again.meta["note"] == "two recordings" and again.meta["recording_info"][0] == {"n": 10}
    assert np.load(store_path(tmp_path, "k1") / "signal.npy", mmap_mode="r").shape == (17, SPE)


def test_windows_are_assembled_from_epochs_and_respect_gaps(tmp_path):
    store, _ = load_or_build(tmp_path, "k2", SPE, _build_two)
    data = store.to_sleep_data("toy", {"train": ["subj-1"], "val": [], "test": ["subj-2"]}, context=4)
    # rec-a: epochs 3,4,5 then a gap at 6 -> 9; rec-b (starts at 10): 13..16
    np.testing.assert_array_equal(data.window_end, [3, 4, 5, 9, 13, 14, 15, 16])
    x, y = data.get(np.array([9, 13]))
    assert x.shape == (2, 1, 4 * SPE)
    np.testing.assert_array_equal(x[0, 0], store.signal[6:10].ravel())
    np.testing.assert_array_equal(y, store.labels[[9, 13]])
    # statistics come from the epochs of training windows only (rec-a's 0..5 and 6..9)
    expected = training_stats(np.asarray(store.signal), np.arange(10))
    assert data.stats.mean == pytest.approx(expected.mean, rel=1e-6, abs=1e-9)
    assert data.stats.sigma == pytest.approx(expected.sigma, rel=1e-6)
    assert (data.stats.min, data.stats.max) == (expected.min, expected.max)


def test_chunked_training_stats_match_one_pass(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "_STATS_CHUNK_EPOCHS", 3)  # force several chunks
    store, _ = load_or_build(tmp_path, "k3", SPE, _build_two)
    epochs = np.array([0, 2, 3, 4, 8, 11, 12, 16])
    got = store.training_stats(epochs)
    want = training_stats(np.asarray(store.signal), epochs)
    assert got.mean == pytest.approx(want.mean, rel=1e-9, abs=1e-9)
    assert got.sigma == pytest.approx(want.sigma, rel=1e-9)
    assert (got.min, got.max) == (want.min, want.max)
    assert list((store.path / "derived").glob("stats-*.json")), "stats are memoised in the store"


def test_failed_build_leaves_nothing(tmp_path):
    def broken(writer):
        writer.add("rec-a", "s", *_recording(1, 5))
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        load_or_build(tmp_path, "k4", SPE, broken)
    assert not store_path(tmp_path, "k4").exists()
    assert not list((tmp_path / "epochs").iterdir()), "no temporary directory left behind"
    store, cached = load_or_build(tmp_path, "k4", SPE, _build_two)
    assert not cached and store.signal.shape == (17, SPE)


KILLED_BUILD = """
import sys, time, numpy as np
from pathlib import Path
from restbench.data.cache import load_or_build
def build(writer):
    writer.add("r", "s", np.zeros((4, 30), np.float32), np.zeros(4, int), np.ones(4, bool))
    Path(sys.argv[2]).write_text("half written")
    time.sleep(60)
    return {"sfreq": 1.0}
load_or_build(Path(sys.argv[1]), "killed", 30, build)
"""


def test_killed_build_leaves_no_half_cache(tmp_path):
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(tmp_path / "c"), str(ready)])
    try:
        deadline = time.time() + 30
        while not ready.exists():
            assert time.time() < deadline and proc.poll() is None, "builder did not start"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not store_path(tmp_path / "c", "killed").exists()
    leftovers = list((tmp_path / "c" / "epochs").glob(".tmp-killed-*"))
    assert leftovers, "the killed builder's temp dir is there, but never under the final name"
    store, cached = load_or_build(tmp_path / "c", "killed", SPE, _build_two)
    assert not cached and store.signal.shape == (17, SPE)
    assert not list((tmp_path / "c" / "epochs").glob(".tmp-killed-*")), "a dead builder's temp dir is cleaned up"


def test_cache_key_depends_on_inputs_params_and_code_not_order():
    inputs = {"a.edf": "11", "b.edf": "22"}
    base = cache_key(inputs, {"sfreq": 100, "channel": "EEG"}, "v1")
    assert base == cache_key(dict(reversed(list(inputs.items()))), {"channel": "EEG", "sfreq": 100}, "v1")
    assert base != cache_key({"a.edf": "11", "b.edf": "23"}, {"sfreq": 100, "channel": "EEG"}, "v1")
    assert base != cache_key(inputs, {"sfreq": 125, "channel": "EEG"}, "v1")
    assert base != cache_key(inputs, {"sfreq": 100, "channel": "EEG"}, "v2")


def test_file_digests_are_sha256_and_memoised(tmp_path):
    f = tmp_path / "x.edf"
    f.write_bytes(b"first content")
    digests = file_digests({"x": f}, tmp_path / "cache")
    assert digests == {"x": hashlib.sha256(b"first content").hexdigest()}
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["file-hashes.json"]  # no temp file left
    # same size and mtime: the memo answers without reading the file
    st = f.stat()
    f.write_bytes(b"other content")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert file_digests({"x": f}, tmp_path / "cache")["x"] == hashlib.sha256(b"first content").hexdigest()
    # a changed mtime makes it hash again
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert file_digests({"x": f}, tmp_path / "cache")["x"] == hashlib.sha256(b"other content").hexdigest()


def test_corrupt_memo_is_ignored(tmp_path):
    memo_file = tmp_path / "memo.json"
    memo_file.write_text("{not json")
    f = tmp_path / "y"
    f.write_bytes(b"abc")
    memo = HashMemo(memo_file)
    assert memo.digest(f) == hashlib.sha256(b"abc").hexdigest()
    memo.save()
    assert str(f.resolve()) in HashMemo(memo_file).entries


def test_writer_rejects_mismatched_shapes(tmp_path):
    def bad(writer):
        writer.add("r", "s", np.zeros((3, SPE), np.float32), np.zeros(4, int), np.ones(4, bool))
        return {"sfreq": 1.0}

    with pytest.raises(ValueError, match="do not match"):
        load_or_build(tmp_path, "k5", SPE, bad)


def test_open_store_reads_back_what_was_written(tmp_path):
    store, _ = load_or_build(tmp_path, "k6", SPE, _build_two)
    reopened = EpochStore.open(store.path)
    assert reopened.key == "k6"
    np.testing.assert_array_equal(reopened.labels, store.labels)
