"""The run directory: schemas, atomic writes, append-only records, provenance."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

import restbench
from restbench import hookimpl
from restbench.api import PluginError
from restbench.plugins.registry import Registry
from restbench.records import atomic
from restbench.records.atomic import atomic_path, write_bytes_atomic
from restbench.records.atomic import write_text_atomic
from restbench.records.cells import make_record
from restbench.records.jsonio import load_json, write_json_atomic
from restbench.records.provenance import provenance
from restbench.records.rundir import PartialRecordWarning, RunDir, new_run_info
from restbench.records.schema import SCHEMA_VERSION, validate_record, validate_run

STAGE_NAMES = ["W", "N1", "N2", "N3", "REM"]
COMMON = ["schema_version", "record_type", "dataset", "model", "method", "compressor", "seed", "profile"]

# The fields the results issue requires per record type (kept here so a schema edit that drops
# one fails a test).
REQUIRED = {
    "robustness": ["corruption", "severity", "severity_name", "severity_value", "severity_unit", "suite",
                   "corruption_settings", "variant", "macro_f1", "accuracy", "kappa", "per_class_f1",
                   "confusion", "confusion_counts", "n_windows", "per_subject_macro_f1", "macro_f1_ci95"],
    # exported sizes come from exporter plugins (VARIANT_size_kb), so none is required by name
    "efficiency": ["params", "size_kb", "macs", "mflops", "macs_per_night", "mflops_per_night", "input_shape",
                   "export_check"],
    "latency": ["runner", "variant", "latency_s_per_window_median", "latency_s_per_window_p90",
                "latency_s_per_night_median", "latency_s_per_night_p90", "repetitions", "windows_per_night",
                "threads", "runtime", "runtime_version", "device"],
    "training": ["phase", "selected_epoch", "selection_criterion", "selection_score", "epochs", "history", "wall_s"],
}

IDENT = dict(dataset="sleep-synth", model="sors2018", method="rest-as", compressor="slimming", seed=1, profile="smoke")


def robustness(**changes):
    counts = np.diag([3, 1, 4, 2, 2]).astype(np.int64)
    counts[2, 1] = 1  # one N2 window called N1
    rows = counts / counts.sum(axis=1, keepdims=True)
    record = make_record(
        "robustness", **IDENT,
        corruption="pgd", severity=3, severity_name="high", severity_value=12.0, severity_unit="uV",
        suite="paper", corruption_settings={"steps": 10, "step_size_uv": 3.0, "restarts": 1},
        variant="torch", macro_f1=np.float32(0.61), accuracy=0.7, kappa=-0.05,
        per_class_f1={s: 0.6 for s in STAGE_NAMES}, confusion=rows, confusion_counts=counts,
        n_windows=np.int64(13), per_subject_macro_f1={"SC4001": 0.6, "SC4002": 0.62},
        macro_f1_ci95=(0.55, 0.66), selected_epoch=7,
    )
    record.update(changes)
    return record


def efficiency(**changes):
    record = make_record(
        "efficiency", **IDENT,
        params=452_000, size_kb=449.3, macs=47_000_000, mflops=94.1, macs_per_night=47_000_000 * 1080,
        mflops_per_night=94.1 * 1080, input_shape=(1, 1, 12000), tflite_fp32_size_kb=455.0,
        tflite_int8_size_kb=None, kept_channels={"conv1": [26, 128]}, export_check={"max_abs_diff": 1e-5},
    )
    record.update(changes)
    return record


def latency(**changes):
    record = make_record(
        "latency", **IDENT,
        runner="tflite-local", variant="int8", latency_s_per_window_median=0.004, latency_s_per_window_p90=0.005,
        latency_s_per_night_median=4.32, latency_s_per_night_p90=5.4, repetitions=5, windows_per_night=1080,
        threads=1, runtime="ai-edge-litert", runtime_version="2.3.0", device="x86_64 CPU",
    )
    record.update(changes)
    return record


def training(**changes):
    record = make_record(
        "training", **IDENT,
        phase="retrain", selected_epoch=4, selection_criterion="clean+adversarial", selection_score=0.58,
        epochs=5, history=[{"epoch": 1, "train_loss": 1.2, "val_macro_f1": 0.4, "val_adv_macro_f1": None}],
        wall_s=31.5,
    )
    record.update(changes)
    return record


MAKERS = {"robustness": robustness, "efficiency": efficiency, "latency": latency, "training": training}


def run_info(**changes):
    info = new_run_info(
        "smoke-run",
        config={"profile": "smoke", "epochs": 2},
        seeds=[0, 1],
        methods=["sors", "rest-as"],
        corruptions=["gaussian", "pgd"],
        dataset={"name": "sleep-synth", "split": {"train": ["s1"], "val": ["s2"], "test": ["s3"]},
                 "stats": {"mean": 0.1, "sigma": 20.0, "min": -200.0, "max": 210.0}, "fingerprint": "f00d"},
        deviations=["3 synthetic subjects instead of 40 Sleep-EDF nights"],
        registry=Registry(),
    )
    info.update(changes)
    return info


# --------------------------------------------------------------------------- schema


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_good_records_validate(kind):
    record = MAKERS[kind]()
    assert validate_record(record) == record
    assert record["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_every_listed_field_is_required(kind):
    for name in COMMON + REQUIRED[kind]:
        record = MAKERS[kind]()
        del record[name]
        with pytest.raises(PluginError, match=rf"missing field '{name}'"):
            validate_record(record)


@pytest.mark.parametrize(
    ("kind", "name", "value"),
    [
        ("robustness", "macro_f1", "0.61"),
        ("robustness", "n_windows", "13"),
        ("robustness", "seed", "1"),
        ("robustness", "severity_value", "12"),
        ("efficiency", "params", "452000"),
        ("efficiency", "size_kb", "449.3 KB"),
        ("latency", "latency_s_per_night_median", "4.32"),
        ("training", "wall_s", "31.5"),
    ],
)
def test_string_numbers_are_rejected(kind, name, value):
    with pytest.raises(PluginError, match=rf"field '{name}' is \"{re.escape(value)}\", expected type"):
        validate_record(MAKERS[kind](**{name: value}))


def test_nested_fields_are_named():
    record = robustness()
    record["confusion"][1][2] = "0.0"
    with pytest.raises(PluginError, match=r"field 'confusion\[1\]\[2\]'"):
        validate_record(record)
    record = robustness()
    del record["per_class_f1"]["N3"]
    with pytest.raises(PluginError, match=r"missing field 'per_class_f1.N3'"):
        validate_record(record)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"macro_f1": 1.5}, "macro_f1"),
        ({"kappa": -1.5}, "kappa"),
        ({"kappa": float("nan")}, "field 'kappa' is nan"),
        ({"macro_f1_ci95": [0.7, 0.6]}, "macro_f1_ci95"),
        ({"macro_f1_ci95": [0.5]}, "macro_f1_ci95"),
        ({"n_windows": 14}, "'n_windows' is 14"),
        ({"confusion": [[0.5] * 5] * 5}, r"confusion\[0\]' sums to 2.5"),
        ({"confusion": [[1, 0, 0, 0, 0]] * 4}, "confusion"),
        ({"severity": -1}, "severity"),
        ({"corruption": "clean"}, "clean"),  # clean must be severity 0 named 'clean'
        ({"seed": True}, "seed"),
        ({"record_type": "robustnes"}, "'record_type' is \"robustnes\""),
    ],
)
def test_bad_robustness_values_are_rejected(changes, message):
    with pytest.raises(PluginError, match=message):
        validate_record(robustness(**changes))


def test_bad_values_other_types():
    with pytest.raises(PluginError, match="phase"):
        validate_record(training(phase="finetune"))
    with pytest.raises(PluginError, match=r"history\[0\]"):
        validate_record(training(history=[{"epoch": 1, "loss": "1.2"}]))
    with pytest.raises(PluginError, match="repetitions"):
        validate_record(latency(repetitions=0))
    with pytest.raises(PluginError, match="tflite_int8_size_kb"):
        validate_record(efficiency(tflite_int8_size_kb=-1.0))
    with pytest.raises(PluginError, match="expected a JSON object"):
        validate_record(["not", "a", "record"])


def test_additional_fields_and_custom_types_are_allowed():
    assert validate_record(robustness(plugin_extra={"anything": [1, "two"]}))
    custom = make_record("x-energy", **IDENT, joules_per_night=53.0)
    assert validate_record(custom)
    clean = robustness(corruption="clean", severity=0, severity_name="clean", severity_value=None,
                       severity_unit=None, suite="clean", corruption_settings={}, macro_f1_ci95=None)
    assert validate_record(clean)
    # The schema lets a writer record an undefined metric as null (never NaN, which JSON cannot
    # hold); restbench's own metrics give a number instead: kappa is 0.0 where it is undefined and
    # a stage absent from truth and prediction has per-class F1 0.0 (restbench.evaluation.metrics).
    undefined = robustness(kappa=None, per_class_f1={"W": 0.5, "N1": None, "N2": 0.4, "N3": None, "REM": 0.1})
    assert validate_record(undefined)
    from restbench.evaluation.metrics import classification_metrics

    one_class = classification_metrics([2, 2, 2], [2, 2, 2])  # chance agreement is already 1
    assert one_class["kappa"] == 0.0 and one_class["per_class_f1"]["N1"] == 0.0
    assert classification_metrics([], [])["kappa"] == 0.0


def test_run_schema():
    info = run_info()
    assert validate_run(info) == info
    for name in ["schema_version", "name", "created", "config", "seeds", "methods", "corruptions", "dataset",
                 "provenance", "status", "deviations"]:
        bad = dict(info)
        del bad[name]
        with pytest.raises(PluginError, match=f"missing field '{name}'"):
            validate_run(bad)
    with pytest.raises(PluginError, match="status"):
        validate_run(run_info(status="done"))
    with pytest.raises(PluginError, match=r"seeds\[0\]"):
        validate_run(run_info(seeds=["0"]))
    with pytest.raises(PluginError, match="deviations"):
        validate_run(run_info(deviations="none"))
    # While running the split may not be known yet; a complete run must record it.
    running = run_info(dataset={"name": "sleep-synth"})
    assert validate_run(running)
    with pytest.raises(PluginError, match="missing field 'dataset.split'"):
        validate_run(run_info(dataset={"name": "sleep-synth"}, status="complete"))


def test_schema_files_are_valid_draft_2020_12():
    from jsonschema import Draft202012Validator

    for name in ("record", "run"):
        schema = json.loads((Path(restbench.__file__).parent / "schema" / f"{name}.schema.json").read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        Draft202012Validator.check_schema(schema)


# --------------------------------------------------------------------------- atomic writes


class Unserialisable:
    pass


def test_atomic_json_keeps_old_file_when_writer_dies(tmp_path):
    target = tmp_path / "run.json"
    write_json_atomic(target, {"version": 1})
    before = target.read_bytes()
    # json.dump streams: the big list is written to the temporary file before the failure.
    with pytest.raises(TypeError):
        write_json_atomic(target, {"version": 2, "big": list(range(50_000)), "z": Unserialisable()})
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temporary file left
    with pytest.raises(ValueError):
        write_json_atomic(target, {"version": 3, "bad": float("inf")})
    assert load_json(target) == {"version": 1}


def test_atomic_text_replaces_whole_file(tmp_path):
    target = tmp_path / "sub" / "summary.md"
    write_text_atomic(target, "old\n" * 1000)
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # like open(), not mkstemp's 0600


def test_killed_writer_leaves_a_complete_file(tmp_path):
    """SIGKILL a process that keeps rewriting a large JSON file: the file is always complete."""
    target = tmp_path / "run.json"
    script = textwrap.dedent(
        f"""
        from restbench.records.rundir import write_json_atomic
        i = 0
        while True:
            i += 1
            write_json_atomic({str(target)!r}, {{"i": i, "data": [i] * 300000}})
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if target.exists() and load_json(target)["i"] >= 3:
                break
            time.sleep(0.05)
        time.sleep(0.13)  # land somewhere inside a write
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    data = load_json(target)
    assert data["i"] >= 3 and set(data["data"]) == {data["i"]} and len(data["data"]) == 300000


def test_atomic_path_writers_get_their_own_temp_file(tmp_path):
    """Two writers of one target at once each fill a temporary file of their own; the last
    rename wins with its complete content and no temporary file is left behind."""
    target = tmp_path / "preds.npz"
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second and first.parent == second.parent == tmp_path
        assert first.name.startswith(f".preds.npz.{os.getpid()}-") and first.suffix == ".npz"
        np.savez_compressed(first, x=np.zeros(1000))  # would append .npz to a name without it
        np.savez_compressed(second, x=np.ones(1000))
        assert first.stat().st_size > 0 and second.stat().st_size > 0
    with np.load(target) as data:
        assert data["x"].tolist() == [0.0] * 1000  # the outer block renamed last
    assert [p.name for p in tmp_path.iterdir()] == ["preds.npz"]


def test_atomic_path_failure_removes_temp_and_keeps_old(tmp_path):
    target = tmp_path / "model.pt"
    write_bytes_atomic(target, b"old checkpoint")
    with pytest.raises(RuntimeError, match="writer died"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a new checkp")
            raise RuntimeError("writer died")
    assert target.read_bytes() == b"old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    # a writer that never creates its file (here: removes it) fails instead of publishing nothing
    with pytest.raises(FileNotFoundError):
        with atomic_path(target) as tmp:
            tmp.unlink()
    assert target.read_bytes() == b"old checkpoint" and len(list(tmp_path.iterdir())) == 1


def test_atomic_path_fsyncs_file_and_directory(tmp_path, monkeypatch):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the synced descriptors")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd)))
    write_text_atomic(tmp_path / "summary.md", "x\n")
    assert len(synced) == 2 and synced[1] == str(tmp_path)  # the temp file, then the directory
    assert Path(synced[0]).parent == tmp_path and Path(synced[0]).name.startswith(".summary.md.")


def test_concurrent_processes_never_clobber_each_other(tmp_path):
    """Two processes rewrite one file as fast as they can (a fixed temp name would mix their
    bytes): every read sees one writer's complete content."""
    target = tmp_path / "model.pt"
    size = 200_000
    script = textwrap.dedent(
        f"""
        import sys
        from restbench.records.atomic import atomic_path
        letter = sys.argv[1].encode()
        for _ in range(150):
            with atomic_path({str(target)!r}) as tmp:
                with open(tmp, "wb") as fh:
                    for _ in range(10):  # several writes, so a shared temp file would interleave
                        fh.write(letter * {size // 10})
        """
    )
    children = [subprocess.Popen([sys.executable, "-c", script, letter]) for letter in "AB"]
    seen = set()
    try:
        while any(c.poll() is None for c in children):
            try:
                data = target.read_bytes()
            except FileNotFoundError:
                continue
            assert len(data) == size and len(set(data)) == 1, "a reader saw a mixed or partial file"
            seen.add(data[:1])
    finally:
        for child in children:
            child.wait(timeout=60)
    assert [c.returncode for c in children] == [0, 0]
    assert len(set(target.read_bytes())) == 1 and seen
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_write_run_validates_and_keeps_old(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.artifacts.is_dir()
    run.write_run(run_info())
    before = run.run_json.read_bytes()
    with pytest.raises(PluginError, match="status"):
        run.write_run(run_info(status="finished"))
    assert run.run_json.read_bytes() == before
    finished = run_info(status="complete", finished="2025-01-31T12:00:00+00:00")
    run.write_run(finished)
    assert run.read_run() == validate_run(finished)


def test_missing_run_dir_and_bad_json(tmp_path):
    with pytest.raises(PluginError, match="no such run directory"):
        RunDir(tmp_path / "nope", create=False)
    (tmp_path / "broken.json").write_text('{"a": ')
    with pytest.raises(PluginError, match="not valid JSON"):
        load_json(tmp_path / "broken.json")
    with pytest.raises(PluginError, match="inside the run directory"):
        RunDir(tmp_path / "r").write_text_atomic("../escape.txt", "x")


# --------------------------------------------------------------------------- records


def test_append_and_read_records(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.records() == []
    written = [run.append(robustness()), run.append(efficiency()), run.append(robustness(seed=2))]
    lines = run.results_jsonl.read_text().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert isinstance(first["n_windows"], int) and isinstance(first["macro_f1"], float)
    assert first["confusion_counts"][2][1] == 1 and first["macro_f1_ci95"] == [0.55, 0.66]
    assert run.records() == written
    assert [r["seed"] for r in run.records("robustness")] == [1, 2]
    assert len(run.records("efficiency")) == 1 and run.records("latency") == []


def test_invalid_record_is_not_written(tmp_path):
    run = RunDir(tmp_path / "r")
    run.append(latency())
    with pytest.raises(PluginError, match="latency_s_per_night_median"):
        run.append(latency(latency_s_per_night_median="4.3"))
    assert len(run.records()) == 1


def test_partial_trailing_line_is_ignored_then_repaired(tmp_path):
    run = RunDir(tmp_path / "r")
    run.append(robustness(seed=0))
    run.append(robustness(seed=1))
    line = json.dumps(robustness(seed=2))
    with open(run.results_jsonl, "ab") as fh:  # a writer killed half-way through its line
        fh.write(line[: len(line) // 2].encode())
    with pytest.warns(PartialRecordWarning, match="half-written"):
        assert [r["seed"] for r in run.records()] == [0, 1]
    with pytest.warns(PartialRecordWarning, match="removed"):
        run.append(robustness(seed=3))
    assert [r["seed"] for r in run.records()] == [0, 1, 3]
    assert run.results_jsonl.read_bytes().endswith(b"\n")


def test_complete_last_line_without_newline_is_kept(tmp_path):
    run = RunDir(tmp_path / "r")
    run.append(training())
    with open(run.results_jsonl, "ab") as fh:
        fh.write(json.dumps(training(seed=4)).encode())
    assert [r["seed"] for r in run.records()] == [1, 4]
    run.append(training(seed=5))
    assert [r["seed"] for r in run.records()] == [1, 4, 5]


def test_corrupt_middle_line_names_the_line(tmp_path):
    run = RunDir(tmp_path / "r")
    run.append(training())
    with open(run.results_jsonl, "ab") as fh:
        fh.write(b"{not json\n")
    run.append(training(seed=2))
    with pytest.raises(PluginError, match=r"results.jsonl:2"):
        run.records()


def test_artifacts(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.artifacts == tmp_path / "r" / "artifacts"
    path = run.write_json_atomic("artifacts/predictions.json", {"SC4001": [0, 1, 2]})
    assert load_json(path) == {"SC4001": [0, 1, 2]}


# --------------------------------------------------------------------------- provenance


def test_provenance_fields():
    registry = Registry()
    plugin = types.ModuleType("tiny_plugin")

    class Noop:
        id = "noop"
        version = "0.0.1"
        description = "does nothing"
        citation = None
        severities = ()
        needs_model = False
        suite = "artifact"

        def apply(self, x, severity, stats, rng, **kw):
            return x

        def settings(self, severity, options=None):
            return {}

    @hookimpl
    def register_corruptions(register):
        register(Noop())

    plugin.register_corruptions = register_corruptions
    registry.add_plugin(plugin)

    prov = provenance(registry)
    for key in ["restbench_version", "git_commit", "python_version", "packages", "plugins", "platform",
                "cpu_model", "cpu_count", "torch_threads", "timestamp_utc"]:
        assert key in prov, key
    assert prov["restbench_version"] == restbench.__version__
    assert prov["python_version"] == ".".join(map(str, sys.version_info[:3]))
    assert prov["packages"]["numpy"] == metadata.version("numpy")
    assert prov["packages"]["torch"] == metadata.version("torch")
    assert prov["torch_threads"] == torch.get_num_threads()
    assert prov["plugins"] == [{
        "name": "tiny_plugin", "distribution": None, "version": None, "module": "tiny_plugin",
        "hooks": ["register_corruptions"], "status": "ok", "error": None, "registered": {"corruptions": ["noop"]},
    }]
    stamp = datetime.fromisoformat(prov["timestamp_utc"])
    assert stamp.utcoffset() == timezone.utc.utcoffset(None)
    assert abs((datetime.now(timezone.utc) - stamp).total_seconds()) < 60
    package_dir = Path(restbench.__file__).resolve().parent
    if (package_dir.parent / ".git").exists():
        assert re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"])
    else:
        assert prov["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", prov["git_commit"])
    text = json.dumps(prov)
    host = socket.gethostname()
    if len(host) >= 4:
        assert host not in text
    json.loads(text)  # plain JSON


def test_new_run_info_round_trip(tmp_path):
    run = RunDir(tmp_path / "smoke-run")
    info = run_info()
    run.write_run(info)
    assert run.read_run() == info
    assert info["status"] == "running" and info["provenance"]["plugins"] == []


def test_records_built_from_restbench_metrics_validate():
    """The metrics module's output drops straight into a robustness record."""
    from restbench.evaluation.metrics import bootstrap_ci, classification_metrics, per_subject_macro_f1

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, size=300)  # no REM in truth: its F1 row is all zeros
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 4, size=300))
    subjects = np.repeat(["s1", "s2", "s3"], 100)
    record = robustness(
        **classification_metrics(y_true, y_pred),
        per_subject_macro_f1=per_subject_macro_f1(y_true, y_pred, subjects),
        macro_f1_ci95=bootstrap_ci(y_true, y_pred, subjects, n_boot=50),
    )
    assert validate_record(record)["n_windows"] == 300
