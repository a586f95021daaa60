"""Tamper evidence: `restbench verify RUN_DIR` reports exactly what changed after a run (issue 12, defect 9)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from restbench.cli import main
from restbench.records.jsonio import write_json_atomic
from restbench.records.verify import artifact_digests, integrity, results_digest, verify

CHECKPOINT_GLOB = "artifacts/models/sors-seed0-*.pt"
PREDICTIONS = "artifacts/predictions/sors-seed0.npz"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished smoke run whose run.json records its digests (as the pipeline will on completion)."""
    root = tmp_path_factory.mktemp("verify")
    run_dir = root / "run"
    done = subprocess.run(
        [str(Path(sys.executable).with_name("restbench")), "run", "--profile", "smoke", "--methods", "sors",
         "--corruptions", "gaussian", "--runners", "", "--exporters", "", "-q", "--run-dir", str(run_dir),
         "--cache-dir", str(root / "cache")],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    run_info = json.loads((run_dir / "run.json").read_text())
    run_info["integrity"] = integrity(run_dir)
    write_json_atomic(run_dir / "run.json", run_info)
    return run_dir


@pytest.fixture()
def run(finished_run, tmp_path):
    """A fresh copy of the finished run to tamper with."""
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def cli(*args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(list(args))
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def robustness_lines(run_dir):
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    return lines, [i for i, line in enumerate(lines) if json.loads(line)["record_type"] == "robustness"]


def test_integrity_covers_every_artifact_and_the_results(finished_run):
    recorded = json.loads((finished_run / "run.json").read_text())["integrity"]
    paths = sorted(recorded["artifacts"])
    assert len(paths) == 2 and paths[1] == PREDICTIONS and Path(paths[0]).match(CHECKPOINT_GLOB)
    assert recorded == {"artifacts": artifact_digests(finished_run), "results_sha256": results_digest(finished_run)}
    assert all(len(d) == 64 for d in recorded["artifacts"].values())


def test_untouched_run_verifies(run, capsys):
    report = verify(run)
    assert report.ok and report.differences() == []
    code, out, _ = cli("verify", str(run), capsys=capsys)
    assert code == 0 and out.count("\n") == 1 and out.startswith("OK ") and "2 artifacts" in out


def test_hand_edited_macro_f1(run, capsys):
    lines, rob = robustness_lines(run)
    record = json.loads(lines[rob[1]])
    original = record["macro_f1"]
    record["macro_f1"] = 0.99
    lines[rob[1]] = json.dumps(record, separators=(",", ":"))
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    report = verify(run)
    assert (report.modified, report.missing, report.unexpected, report.duplicate_cells) == ([], [], [], [])
    assert report.results_changed
    assert len(report.invalid_records) == 1
    assert report.invalid_records[0].startswith(f"results.jsonl:{rob[1] + 1}: macro_f1 is 0.99 but its confusion_counts give {original!r}")
    code, out, _ = cli("verify", str(run), capsys=capsys)
    assert code == 1
    assert out.splitlines()[1:] == ["  changed: results.jsonl (its SHA-256 differs from the one run.json records)",
                                    f"  invalid record: {report.invalid_records[0]}"]


def test_swapped_checkpoint(run, finished_run):
    target = next(run.glob(CHECKPOINT_GLOB))
    # another job's checkpoint under this one's name: same kind of file, other bytes
    from restbench.plugins.registry import get_registry
    from restbench.run.checkpoints import save_checkpoint

    net, spec = get_registry().get("models", "sors2018").build(1200, 10.0, 5)
    save_checkpoint(target, "sors2018", spec, net, method="sors", seed=0, key="another-job")
    report = verify(run)
    assert report.differences() == [f"modified: {target.relative_to(run).as_posix()}"]


def test_deleted_prediction_file(run):
    (run / PREDICTIONS).unlink()
    assert verify(run).differences() == [f"missing: {PREDICTIONS}"]


def test_added_file(run):
    (run / "artifacts" / "models" / "extra.pt").write_bytes(b"x")
    assert verify(run).differences() == ["unexpected: artifacts/models/extra.pt"]


def test_duplicate_record_is_a_duplicate_cell(run):
    lines, rob = robustness_lines(run)
    lines.append(lines[rob[0]])
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    report = verify(run)
    assert report.results_changed and report.invalid_records == []
    assert report.duplicate_cells == [
        f'record_type="robustness", method="sors", seed=0, corruption="clean", severity=0, variant="torch" '
        f"on results.jsonl lines {rob[0] + 1}, {len(lines)}"
    ]


def test_record_failing_its_schema(run):
    lines, rob = robustness_lines(run)
    record = json.loads(lines[rob[0]])
    record["macro_f1"] = "high"
    lines[rob[0]] = json.dumps(record)
    (run / "results.jsonl").write_text("\n".join(lines) + "\n")
    report = verify(run)
    assert report.results_changed and len(report.invalid_records) == 1
    assert report.invalid_records[0].startswith(f"results.jsonl:{rob[0] + 1}: invalid robustness record: field 'macro_f1'")


def test_run_without_recorded_digests(run, capsys):
    run_info = json.loads((run / "run.json").read_text())
    del run_info["integrity"]
    write_json_atomic(run / "run.json", run_info)
    report = verify(run)
    assert len(report.differences()) == 1 and "records no 'integrity' digests" in report.differences()[0]
    assert cli("verify", str(run), capsys=capsys)[0] == 1


def test_not_a_run_directory_is_exit_2(tmp_path, capsys):
    code, _, err = cli("verify", str(tmp_path), capsys=capsys)
    assert code == 2 and "has no run.json" in err and err.count("\n") == 1
    code, _, err = cli("verify", str(tmp_path / "nope"), capsys=capsys)
    assert code == 2 and "is not a directory" in err


def test_json_output(run, capsys):
    (run / PREDICTIONS).unlink()
    code, out, _ = cli("verify", str(run), "--json", capsys=capsys)
    assert code == 1 and json.loads(out)["missing"] == [PREDICTIONS] and json.loads(out)["ok"] is False
