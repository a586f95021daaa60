"""Scale-out: the content-addressed job store, the process pool (--jobs N) and the Ray executor
give the sequential run's numbers cell by cell; a repeated run trains nothing; a killed pool
worker is retried; two runs share one store safely."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from restbench import hookimpl
from restbench.api import Phase, Recipe
from restbench.plugins.options import Option
from restbench.run import steps
from restbench.run.store import Store

pytestmark = pytest.mark.slow

GRID = ["run", "--profile", "smoke", "--methods", "sors,liu,blanco", "--corruptions", "gaussian,pgd", "--runners", "",
        "--no-figures", "-q"]


def restbench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "restbench.cli", *args], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def cells(run_dir: Path) -> dict:
    """Every training and robustness number of a run, by cell (histories included)."""
    out = {}
    for line in (run_dir / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["record_type"] == "robustness":
            out[(r["method"], r["seed"], r["corruption"], r["severity"], r["variant"])] = (
                r["macro_f1"], r["macro_f1_ci95"], r["confusion_counts"])
        elif r["record_type"] == "training":
            out[(r["method"], r["seed"], r["phase"])] = (r["selected_epoch"], r["history"])
    return out


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    root = tmp_path_factory.mktemp("scaleout")
    restbench(*GRID, "--run-dir", str(root / "sequential"), "--store", str(root / "store"))
    return root, cells(root / "sequential")


def test_a_process_pool_gives_the_sequential_numbers_and_a_repeat_trains_nothing(sequential, tmp_path):
    root, expected = sequential
    assert any(k[4] == "tflite-int8" for k in expected if len(k) == 5), "exported variants are part of the grid"
    pool = restbench(*GRID, "--jobs", "2", "--run-dir", str(tmp_path / "pool"), "--store", str(tmp_path / "store"))
    assert cells(tmp_path / "pool") == expected
    assert "jobs: 14 computed (2 trained), 0 taken from the store" in pool.stdout
    log = (tmp_path / "pool" / "log.txt").read_text()
    assert "jobs to compute on a pool of 2 worker processes" in log and "[train liu seed 0] start liu retrain" in log

    again = restbench(*GRID, "--jobs", "2", "--run-dir", str(tmp_path / "again"), "--store", str(tmp_path / "store"))
    assert cells(tmp_path / "again") == expected
    assert "jobs: 0 computed (0 trained), 14 taken from the store" in again.stdout and "nothing trained" in again.stdout
    log = (tmp_path / "again" / "log.txt").read_text()
    assert "start sors train" not in log and "reusing trained model" in log
    info = json.loads((tmp_path / "again" / "run.json").read_text())
    assert info["jobs"]["train"] == {"computed": 0, "from_store": 2}
    # the run directory is whole on its own: checkpoints and exported files copied out of the store
    assert len(list((tmp_path / "again" / "artifacts" / "models").glob("*.pt"))) == 2
    assert list((tmp_path / "again" / "artifacts").glob("*/*.tflite"))
    verify = restbench("verify", str(tmp_path / "again"))
    assert "ok" in verify.stdout.lower()


def test_a_local_ray_cluster_gives_the_sequential_numbers(sequential, tmp_path):
    pytest.importorskip("ray")
    root, expected = sequential
    ray = restbench(*GRID, "--executor", "ray", "--jobs", "2", "--run-dir", str(tmp_path / "ray"),
                    "--store", str(tmp_path / "store"))
    assert cells(tmp_path / "ray") == expected
    assert "jobs: 14 computed (2 trained)" in ray.stdout
    assert "a local Ray cluster of 2 CPU(s)" in (tmp_path / "ray" / "log.txt").read_text()


def _workers(parent: int) -> list[int]:
    """Pool worker processes (spawned children) of ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and "spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _pooled_run_while_training(run_dir: Path, store: Path) -> tuple[subprocess.Popen, list[int]]:
    """The smoke grid started with ``--jobs 2``, returned once a train job is running, with the
    pool's worker processes."""
    proc = subprocess.Popen([sys.executable, "-m", "restbench.cli", *GRID, "--jobs", "2", "--run-dir", str(run_dir),
                             "--store", str(store)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (list((store / "train").glob(".tmp-*")) if (store / "train").is_dir() else []):  # a train job running
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "no train job started"
        time.sleep(0.02)
    workers = _workers(proc.pid)
    assert workers, "no pool worker found"
    return proc, workers


def test_a_sigkilled_pool_worker_is_retried_and_the_numbers_hold(sequential, tmp_path):
    root, expected = sequential
    store = tmp_path / "store"
    proc, victims = _pooled_run_while_training(tmp_path / "run", store)
    os.kill(victims[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    assert "its worker process died; running the job again" in (tmp_path / "run" / "log.txt").read_text()
    assert cells(tmp_path / "run") == expected
    assert not list(store.glob("*/.tmp-*")), "a killed job's half-written entry is never stored"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has stopped; it only waits for its parent to reap it


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds workers through /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_stopped_driver_leaves_no_pool_worker_computing(stop, tmp_path):
    """kill, a scheduler's cancel (SIGTERM) or SIGKILL of the driver mid-run: its workers stop too
    (within seconds, not after their jobs); SIGTERM is handled as Ctrl-C (exit 130, one line);
    nothing half-computed is stored."""
    store = tmp_path / "store"
    proc, workers = _pooled_run_while_training(tmp_path / "run", store)
    os.kill(proc.pid, stop)
    out, err = proc.communicate(timeout=60)
    if stop == signal.SIGTERM:
        assert proc.returncode == 130 and "interrupted: finished results are kept" in err, err[-2000:]
        assert "Traceback" not in err
    deadline = time.monotonic() + 15
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "a pool worker outlived its driver"
    entries = [p for p in (store / "train").iterdir() if not p.name.startswith(".")]
    assert all((p / "manifest.json").is_file() for p in entries), "only finished entries are stored"


def test_two_runs_sharing_a_store_compute_each_job_once(tmp_path):
    grid = ["run", "--profile", "smoke", "--methods", "sors,liu", "--corruptions", "gaussian", "--runners", "",
            "--exporters", "", "--no-figures", "-q"]
    procs = [subprocess.Popen([sys.executable, "-m", "restbench.cli", *grid, "--run-dir", str(tmp_path / f"run{i}"),
                               "--store", str(tmp_path / "store")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    assert cells(tmp_path / "run0") == cells(tmp_path / "run1")
    trained = [json.loads((tmp_path / f"run{i}" / "run.json").read_text())["jobs"]["train"]["computed"] for i in range(2)]
    assert sum(trained) == 2, trained  # each of the two models trained by exactly one of the runs
    assert len([p for p in (tmp_path / "store" / "train").iterdir() if not p.name.startswith(".")]) == 2


# --------------------------------------------------------------------------- keys and the store itself


def _key_inputs(**change):
    class Model:  # what a key reads of a model plugin
        id, version = "sors", "1"

    args = dict(data_fingerprint="abc", model=Model(), model_options={"width": 0.125, "batch_norm": True},
                method_id="rest-a", method_options={"train_eps": 2.0, "train_steps": 2}, recipe=Recipe(train=Phase()),
                compressor_options=None, knobs={"epochs": 3, "lr": 0.1, "threads": 1, "max_test_windows": 10},
                seed=0, method_version="1")
    args.update(change)
    return args


def test_job_keys_ignore_option_order_and_follow_every_training_option():
    base = steps.train_key(**_key_inputs())
    reordered = _key_inputs(model_options={"batch_norm": True, "width": 0.125},
                            method_options={"train_steps": 2, "train_eps": 2.0},
                            knobs={"max_test_windows": 10, "threads": 1, "lr": 0.1, "epochs": 3})
    assert steps.train_key(**reordered) == base
    for change in ({"method_options": {"train_eps": 4.0, "train_steps": 2}}, {"model_options": {"width": 0.25}},
                   {"knobs": {"epochs": 4, "lr": 0.1, "threads": 1, "max_test_windows": 10}},
                   {"knobs": {"epochs": 3, "lr": 0.1, "threads": 2, "max_test_windows": 10}},
                   {"method_version": "2"}, {"seed": 1}, {"data_fingerprint": "abd"}):
        assert steps.train_key(**_key_inputs(**change)) != base, change
    evaluation_only = {"epochs": 3, "lr": 0.1, "threads": 1, "max_test_windows": 99}
    assert steps.train_key(**_key_inputs(knobs=evaluation_only)) == base


def _entry(store: Store, inputs: dict, text: str = "weights") -> Path:
    with store.staging("train") as staged:
        (staged / "model.pt").write_text(text)
        return store.publish(staged, "train", "k1", inputs)


def test_a_store_entry_is_used_only_when_whole_and_for_the_same_inputs(tmp_path):
    store = Store(tmp_path)
    inputs = {"b": 1, "a": [1, 2]}
    entry = _entry(store, inputs)
    assert store.get("train", "k1", {"a": [1, 2], "b": 1}) == entry  # key order does not matter
    assert store.get("train", "k1", {"a": [1, 2], "b": 2}) is None  # other inputs: moved aside, redone
    assert not entry.exists() and list(tmp_path.glob("train/.rejected-k1-*"))
    entry = _entry(store, inputs)
    (entry / "model.pt").write_text("edited")
    assert store.get("train", "k1", inputs) is None  # a changed file is never served
    entry = _entry(store, inputs)
    packed = Store.pack(entry)
    other = Store(tmp_path / "elsewhere")
    assert other.unpack(packed, "train", "k1", inputs).joinpath("model.pt").read_text() == "weights"
    assert not list(tmp_path.glob("train/.tmp-*")), "staging folders are removed"
    with pytest.raises(Exception):
        with store.staging("train") as staged:
            (staged / "model.pt").write_text("half")
            raise RuntimeError("the job failed")
    assert store.get("train", "k2", inputs) is None and not list(tmp_path.glob("train/.tmp-*"))


# --------------------------------------------------------------------------- restbench sweep

SWEEP = ["sweep", "rest-a", "--grid", "rest-a.train_eps=0:4:2", "--profile", "smoke", "--max-windows", "32",
         "--set", "max_train_windows=64", "--set", "max_val_windows=16", "-q"]


def test_a_smoke_sweep_writes_its_table_and_figure_and_never_reads_a_test_window(tmp_path, monkeypatch):
    import numpy as np
    from click.testing import CliRunner

    from restbench.cli import cli
    from restbench.data.sleep_data import SleepData

    read = []
    original_get = SleepData.get

    def recording_get(self, ends):
        read.append((self, np.asarray(ends).copy()))
        return original_get(self, ends)

    monkeypatch.setattr(SleepData, "get", recording_get)
    out = tmp_path / "sweep"
    result = CliRunner().invoke(cli, [*SWEEP, "--out", str(out), "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    for data, ends in read:
        assert not np.isin(ends, data.windows("test")).any(), "a sweep read test windows"
    table = json.loads((out / "sweep.json").read_text())
    assert table["kind"] == "restbench-sweep" and table["split"] == "val"
    assert [row["point"] for row in table["rows"]] == [{"rest-a.train_eps": v} for v in (0, 2, 4)]
    best = max(table["rows"], key=lambda r: r["score"])
    assert best["chosen"] and table["chosen"] == best["point"]
    for row in table["rows"]:
        assert row["score"] == pytest.approx(np.mean([row["clean_f1"], *row["attack_f1"].values()]))
    assert {p.name for p in out.iterdir()} == {"sweep.json", "sweep.md", "sweep.png", "sweep.svg", "sweep-frontier.png",
                                               "sweep-frontier.svg", "chosen.json"}
    assert json.loads((out / "chosen.json").read_text()) == {"rest-a": {"train_eps": table["chosen"]["rest-a.train_eps"]}}
    assert "3 of 3 points trained now" in result.output

    # the same sweep on a process pool: the same table; the points already stored are not trained again
    pooled = restbench(*SWEEP, "--jobs", "2", "--out", str(tmp_path / "pooled"), "--store", str(tmp_path / "store"))
    again = json.loads((tmp_path / "pooled" / "sweep.json").read_text())
    assert {k: v for k, v in again.items() if k != "command"} == {k: v for k, v in table.items() if k != "command"}
    assert "0 of 3 points trained now" in pooled.stdout

    # and a run takes the chosen value from it
    run = CliRunner().invoke(cli, ["run", "--profile", "smoke", "--methods", "rest-a", "--corruptions", "gaussian",
                                   "--runners", "", "--exporters", "", "--no-figures", "-q", "--from-sweep", str(out),
                                   "--set", "max_train_windows=64", "--set", "max_val_windows=16",
                                   "--run-dir", str(tmp_path / "run"), "--store", str(tmp_path / "store")])
    assert run.exit_code == 0, run.output + repr(run.exception)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["options"]["rest-a"]["train_eps"] == table["chosen"]["rest-a.train_eps"]
    assert "nothing trained" in run.output  # the sweep already trained the chosen point


def test_sweep_grids_are_checked_before_anything_trains(tmp_path):
    from click.testing import CliRunner

    from restbench.cli import cli

    for grid, message in (("rest-a.train_eps=4:0:2", "STOP >= START"), ("rest-a.train_eps=0,0", "repeated value"),
                          ("train_eps=1,2", "expected ID.NAME"), ("rest-a.nope=1,2", "nope")):
        result = CliRunner().invoke(cli, ["sweep", "rest-a", "--grid", grid, "--profile", "smoke", "-q",
                                          "--out", str(tmp_path / "x")])
        assert result.exit_code != 0 and message in str(result.exception) + result.output, (grid, result.output)
    assert not (tmp_path / "x").exists()


def test_half_written_entries_of_dead_processes_are_removed(tmp_path):
    import socket

    store = Store(tmp_path)
    host = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / "train" / f".tmp-{host}-{int(dead.stdout)}-abc123"
    live = tmp_path / "train" / f".tmp-{host}-{os.getpid()}-def456"
    elsewhere = tmp_path / "train" / ".tmp-otherhost-1-ghi789"
    for folder in (stale, live, elsewhere):
        folder.mkdir(parents=True)
    assert store.remove_stale() == 1
    assert not stale.exists() and live.exists() and elsewhere.exists()


def test_bad_scale_out_options_are_one_line_errors_before_anything_is_written(tmp_path):
    from click.testing import CliRunner

    from restbench.cli import cli

    base = ["run", "--profile", "smoke", "--methods", "sors", "-q", "--run-dir", str(tmp_path / "run")]
    for extra, message in ((["--jobs", "0"], "--jobs: expected a positive number of workers or auto"),
                           (["--jobs", "many"], "--jobs: expected a positive number of workers or auto"),
                           (["--store", str(tmp_path / "s"), "--no-store"], "--store and --no-store"),
                           (["--from-sweep", str(tmp_path / "nowhere")], "--from-sweep"),
                           (["--address", "127.0.0.1:6379"], "--address: only with --executor ray")):
        result = CliRunner().invoke(cli, [*base, *extra])
        code = getattr(result.exception, "exit_code", result.exit_code)  # main() exits with a UsageError's code
        assert code == 2 and message in str(result.exception), (extra, result.output, result.exception)
    assert not (tmp_path / "run").exists()


def test_committed_sweeps_are_current_and_agree_with_the_eps_search():
    """docs/sweeps/ holds sweeps run at the quick profile as it is now; the train_mix sweep's 0.5
    point and every train_eps sweep point the eps search also ran are the eps search's points
    (same training, two tools): identical numbers."""
    from restbench.run import profiles
    from restbench.studies.sweep import chosen_config

    docs = Path(__file__).resolve().parents[1] / "docs"
    tables = sorted((docs / "sweeps").glob("*/sweep.json"))
    assert tables, "no committed sweep"
    current = profiles.resolve("quick")
    for path in tables:
        table = json.loads(path.read_text())
        assert table["split"] == "val" and table["profile"] == "quick"
        for knob, value in table["knobs"].items():
            assert profiles.same_setting(knob, current.get(knob), value), f"{path}: quick's {knob} changed since"
        best = max(table["rows"], key=lambda r: r["score"])
        assert best["chosen"] and table["chosen"] == best["point"]
        assert json.loads((path.parent / "chosen.json").read_text()) == chosen_config(table)
        assert (path.parent / "sweep.png").is_file() and (path.parent / "sweep.svg").is_file()
        assert (path.parent / "sweep-frontier.png").is_file() and (path.parent / "sweep-frontier.svg").is_file()
    mix = json.loads((docs / "sweeps" / "rest-a-train_mix-quick" / "sweep.json").read_text())
    eps = json.loads((docs / "eps-search" / "rest-a-train_eps-quick.json").read_text())
    (at_half,) = [r for r in mix["rows"] if r["point"] == {"rest-a.train_mix": 0.5}]
    (at_two,) = [r for r in eps["rows"] if r["value"] == 2]
    assert (at_half["clean_f1"], at_half["attack_f1"], at_half["score"]) == \
        (at_two["clean_f1"], at_two["attack_f1"], at_two["score"])
    # the clean-vs-robust curve extends the search towards 0 uV and must reproduce its points
    curve = json.loads((docs / "sweeps" / "rest-a-train_eps-quick" / "sweep.json").read_text())
    searched = {r["value"]: r for r in eps["rows"]}
    shared = [r for r in curve["rows"] if r["value"] in searched]
    assert len(shared) == len(searched) and curve["chosen"] == {"rest-a.train_eps": eps["chosen"]}
    for row in shared:
        other = searched[row["value"]]
        assert (row["clean_f1"], row["attack_f1"], row["score"]) == \
            (other["clean_f1"], other["attack_f1"], other["score"])


class NoisyPlain:
    """A third-party method: plain training with Gaussian-noise augmentation of a declared strength."""

    id, version, description, citation = "noisy-plain", "0.1", "plain training on noisy copies", None
    options = (Option("noise_c", float, 0.1, "noise std as a fraction of the training data's sigma", minimum=0.0),)

    def recipe(self, context):
        from restbench.training.augment import GaussianNoise

        return Recipe(train=Phase(augmentations=[GaussianNoise(context.options["noise_c"])]))


class ThirdParty:
    @hookimpl
    def register_methods(self, register):
        register(NoisyPlain())


def test_a_third_party_methods_option_is_swept_like_a_built_in_one(tmp_path):
    from click.testing import CliRunner

    from restbench.cli import cli
    from restbench.plugins.testing import registry_with

    with registry_with(ThirdParty()):
        result = CliRunner().invoke(cli, ["sweep", "noisy-plain", "--grid", "noisy-plain.noise_c=0:0.2:0.1", *SWEEP[4:],
                                          "--out", str(tmp_path / "sweep"), "--store", str(tmp_path / "store")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    table = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert [row["point"]["noisy-plain.noise_c"] for row in table["rows"]] == [0.0, 0.1, 0.2]
    assert table["method"] == "noisy-plain" and table["method_version"] == "0.1"
    trained = [p for p in (tmp_path / "store" / "train").iterdir() if not p.name.startswith(".")]
    assert len(trained) == 3, "each value of the plugin's option is its own training job"
