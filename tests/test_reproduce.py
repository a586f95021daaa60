"""Reproduction (restbench reproduce, leaderboard publish --reproduce) on a real smoke run: an
untouched run reproduces exactly and is labelled reproduced; a hand-edited result that verify
accepts is caught and its cell named; missing or swapped checkpoints, other plugin versions and
other data are one-line errors; validate refuses a reproduced label without its record."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from restbench.api import PluginError
from restbench.cli import main
from restbench.evaluation.metrics import classification_metrics, macro_f1_from_confusion
from restbench.publish import publish
from restbench.report import leaderboard as lb
from restbench.report.leaderboard_validation import validate
from restbench.benchmark import run
from restbench.run.plan import RunRequest
from restbench.studies.reproduce import CROSS_MACHINE, EXACT, NotReproduced, compare, reproduce
from restbench.records.verify import results_digest, verify


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run: a plain and a pruned (slimmed) method, clean and three noise levels (8 cells)."""
    base = tmp_path_factory.mktemp("reproduce")
    request = RunRequest(profile="smoke", methods=["sors", "liu"], corruptions=["gaussian"], runners=["torch-cpu"],
                         exporters=[], seeds=[0], cache_dir=base / "cache", run_dir=base / "run-s0", quiet=True)
    return run(request).run_dir.path


@pytest.fixture(scope="module")
def reproduced_board(smoke_run, tmp_path_factory):
    """The run published self-reported, then again with --reproduce (relabelled)."""
    board = tmp_path_factory.mktemp("boards") / "board"
    data, outcome = publish(smoke_run, board, plots=False)
    assert outcome == "created" and {e["label"] for e in data["entries"]} == {"self-reported"}
    assert "reproduction" not in data["runs"][0]
    data, outcome = publish(smoke_run, board, plots=False, reproduce=True, cache_dir=smoke_run.parent / "cache")
    assert outcome == "relabelled"
    return board, data


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite_digests(folder: Path) -> None:
    """What a careful forger does after editing: record the edited files' digests, so verify passes."""
    from restbench.records.verify import integrity

    info = json.loads((folder / "run.json").read_text())
    info["integrity"] = integrity(folder)
    (folder / "run.json").write_text(json.dumps(info))


def test_an_untouched_run_reproduces_exactly_and_is_labelled_reproduced(reproduced_board, smoke_run):
    board, data = reproduced_board
    assert {e["label"] for e in data["entries"]} == {"reproduced"}
    record = data["runs"][0]["reproduction"]
    assert data["runs"][0]["label"] == "reproduced"
    assert record["outcome"] == "reproduced" and record["same_environment"] is True
    assert record["tolerance"]["name"] == "exact" and record["tolerance"]["macro_f1_abs"] == 0.0
    assert record["cells_compared"] == 8 and record["cells_differing"] == 0  # (clean + 3 levels) x 2 methods
    assert record["max_macro_f1_diff"] == 0.0 and record["min_window_agreement"] == 1.0
    assert record["results_sha256"] == data["runs"][0]["files"]["results.jsonl"]
    assert record["hardware"]["cpu_count"] and "hostname" not in json.dumps(record)
    assert validate(board).ok, validate(board).problems
    assert "reproduced" in (board / lb.LEADERBOARD_MD).read_text()
    # publishing again keeps the label and the record; nothing changes
    before = (board / lb.LEADERBOARD_JSON).read_bytes()
    assert publish(smoke_run, board, plots=False)[1] == "unchanged"
    assert publish(smoke_run, board, plots=False, reproduce=True)[1] == "unchanged"
    assert (board / lb.LEADERBOARD_JSON).read_bytes() == before


def test_reproduce_command_keeps_its_directory_and_trains_nothing(smoke_run, tmp_path, capsys):
    out = tmp_path / "again"
    capsys.readouterr()
    main(["reproduce", str(smoke_run), "--out", str(out), "--cache-dir", str(smoke_run.parent / "cache"), "-q"])
    printed = capsys.readouterr().out
    assert printed.startswith("REPRODUCED run-s0: 8 cells compared (exact tolerance)")
    report = json.loads((out / "reproduction.json").read_text())
    assert report["outcome"] == "reproduced" and len(report["cells"]) == 8
    log = (out / "log.txt").read_text()
    phases = [line.split(" start ", 1)[1] for line in log.splitlines() if " start " in line]
    assert log.count("reusing trained model") == 2 and phases == ["sors evaluate", "liu evaluate"]
    original = sorted(p.name for p in (smoke_run / "artifacts" / "models").iterdir())
    assert sorted(p.name for p in (out / "artifacts" / "models").iterdir()) == original
    with pytest.raises(PluginError, match="is not empty"):
        reproduce(smoke_run, out)


def test_a_hand_edited_result_is_not_reproduced_and_its_cell_is_named(smoke_run, tmp_path, capsys):
    edited = _copy(smoke_run, tmp_path / "run-s0")
    path = edited / "results.jsonl"
    lines = path.read_text().splitlines()
    i = next(k for k, ln in enumerate(lines) if '"method":"liu"' in ln and '"corruption":"gaussian"' in ln
             and '"severity":2' in ln)
    record = json.loads(lines[i])
    counts = record["confusion_counts"]
    row = next(r for r, values in enumerate(counts) if sum(values) > 0)
    col = int(np.argmax(counts[row]))
    counts[row][col] -= 1  # one window moved to another stage: counts still add up to n_windows
    counts[row][(col + 1) % 5] += 1
    record["confusion"][row] = [c / sum(counts[row]) for c in counts[row]]
    record["macro_f1"] = float(macro_f1_from_confusion(np.asarray(counts, dtype=float)))  # consistent with counts
    lines[i] = json.dumps(record, separators=(",", ":"))
    path.write_text("\n".join(lines) + "\n")
    _rewrite_digests(edited)
    assert verify(edited).ok  # verify alone does not catch it

    result = reproduce(edited, cache_dir=smoke_run.parent / "cache")
    assert not result.ok and result.outcome == "differs"
    assert [c.name for c in result.differing] == ["liu seed 0 gaussian/medium (torch)"]
    problems = " ".join(result.differing[0].problems)
    assert "recorded confusion counts are not the confusion of its recorded predictions" in problems
    assert f"[{row}][{col}]" in problems and "macro_f1 recorded" in problems
    assert result.record()["cells_differing"] == 1 and len(result.cells) == 8

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", str(edited), "--cache-dir", str(smoke_run.parent / "cache"), "-q"])
    assert exc.value.code == 1
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("NOT REPRODUCED run-s0: 1 of 8 cells differ")
    assert printed[1].startswith("  liu seed 0 gaussian/medium (torch): ")

    board = tmp_path / "board"
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", "publish", str(edited), "--to", str(board), "--reproduce",
              "--cache-dir", str(smoke_run.parent / "cache")])
    assert exc.value.code == NotReproduced.exit_code == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].startswith("  liu seed 0 gaussian/medium (torch): ")
    assert captured.err.startswith("error: run-s0 was not published: NOT REPRODUCED run-s0: 1 of 8 cells differ")
    assert not (board / lb.LEADERBOARD_JSON).exists()


def _remove_checkpoint(folder: Path) -> str:
    victim = sorted((folder / "artifacts" / "models").glob("sors-*.pt"))[0]
    victim.unlink()
    return f"cannot reproduce run-s0: checkpoint artifacts/models/{victim.name} is missing"


def _damage_checkpoint(folder: Path) -> str:
    victim = sorted((folder / "artifacts" / "models").glob("liu-*.pt"))[0]
    victim.write_bytes(victim.read_bytes() + b"\0")
    return f"cannot reproduce run-s0: checkpoint artifacts/models/{victim.name} differs from the one the run recorded"


def _swap_checkpoint(folder: Path) -> str:
    """sors' file replaced by liu's, digests rewritten: only the job key stored inside tells."""
    models = folder / "artifacts" / "models"
    sors, liu = sorted(models.glob("sors-*.pt"))[0], sorted(models.glob("liu-*.pt"))[0]
    shutil.copy2(liu, sors)
    _rewrite_digests(folder)
    return f"cannot reproduce run-s0: checkpoint {sors} was saved for job"


def _edit_run_json(change):
    def edit(folder: Path) -> str:
        info = json.loads((folder / "run.json").read_text())
        expected = change(info)
        (folder / "run.json").write_text(json.dumps(info))
        return expected
    return edit


@pytest.mark.parametrize("tamper", [
    _remove_checkpoint,
    _damage_checkpoint,
    _swap_checkpoint,
    _edit_run_json(lambda i: i["plugin_versions"].update(sors="9.9.9")
                   or "cannot reproduce run-s0: 'sors' is version 1.0.0 here, the run used 9.9.9"),
    _edit_run_json(lambda i: i["plugin_versions"].update({"not-installed": "0.1.0"})
                   or "cannot reproduce run-s0: 'not-installed' (version 0.1.0) is not installed"),
    _edit_run_json(lambda i: i["dataset"].update(fingerprint="0123456789abcdef")
                   or "cannot reproduce run-s0: the dataset gives fingerprint"),
], ids=["missing-checkpoint", "changed-checkpoint", "swapped-checkpoint", "plugin-version", "missing-plugin",
        "fingerprint"])
def test_what_cannot_be_reproduced_is_one_line(smoke_run, tmp_path, capsys, tamper):
    folder = _copy(smoke_run, tmp_path / "run-s0")
    expected = tamper(folder)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["reproduce", str(folder), "--cache-dir", str(smoke_run.parent / "cache"), "-q"])
    assert exc.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"error: {expected}"), err


def test_training_off_never_trains_a_missing_model(tmp_path):
    request = RunRequest(profile="smoke", methods=["sors"], corruptions=[], runners=[], exporters=[], seeds=[0],
                         cache_dir=tmp_path / "cache", run_dir=tmp_path / "run", quiet=True, train=False)
    with pytest.raises(PluginError, match=r"sors seed 0: no checkpoint sors-seed0-\w+\.pt .* training is off"):
        run(request)
    assert not list((tmp_path / "run" / "artifacts").rglob("*.pt"))


def test_validate_requires_the_record_behind_a_reproduced_label(reproduced_board, tmp_path):
    board, _ = reproduced_board

    def altered(name, change):
        copy = shutil.copytree(board, tmp_path / name)
        data = json.loads((copy / lb.LEADERBOARD_JSON).read_text())
        change(data["runs"][0])
        (copy / lb.LEADERBOARD_JSON).write_text(json.dumps(data))
        return validate(copy).problems

    assert any("runs[0]" in p and "'reproduction' is a required property" in p
               for p in altered("no-record", lambda r: r.pop("reproduction")))
    assert altered("failed", lambda r: r["reproduction"].update(max_macro_f1_diff=0.2)) == [
        "runs[run-s0]: labelled reproduced but its reproduction record shows no successful reproduction within its "
        "tolerance"]
    assert altered("fewer-cells", lambda r: r["reproduction"].update(cells_compared=3)) == [
        "runs[run-s0]: its reproduction record compared 3 cells, the run holds 8 robustness records"]
    assert altered("other-results", lambda r: r["reproduction"].update(results_sha256="0" * 64)) == [
        "runs[run-s0]: its reproduction record vouches for another results.jsonl (SHA-256 differs)"]
    # a self-reported run needs no record; the entries' labels follow the runs' (recomputed)
    problems = altered("self", lambda r: r.update(label="self-reported"))
    assert problems and all(p.startswith("entries[") and ".label" in p for p in problems)


def _cell_folder(folder: Path, y: np.ndarray, pred: np.ndarray) -> dict:
    (folder / "artifacts" / "predictions").mkdir(parents=True)
    np.savez(folder / "artifacts" / "predictions" / "m-seed0.npz", true=y, **{"torch/clean/0": pred.astype(np.int8)})
    return {"record_type": "robustness", "method": "m", "seed": 0, "corruption": "clean", "severity": 0,
            "severity_name": "clean", "variant": "torch", **classification_metrics(y, pred)}


@pytest.mark.parametrize("flipped, exact_ok, cross_ok", [(0, True, True), (1, False, True), (5, False, False)])
def test_tolerance_exact_on_one_machine_bounded_across_machines(tmp_path, flipped, exact_ok, cross_ok):
    """400 windows; another machine may change the stage of 1 % of them and macro-F1 by 0.01."""
    y = np.arange(400) % 5
    again = y.copy()
    again[[0, 5, 10, 15, 20][:flipped]] = 1  # W windows now called N1
    old = _cell_folder(tmp_path / "old", y, y)
    new = _cell_folder(tmp_path / "new", y, again)
    for tolerance, ok in ((EXACT, exact_ok), (CROSS_MACHINE, cross_ok)):
        cells = compare([old], [new], tmp_path / "old", tmp_path / "new", tolerance)
        assert len(cells) == 1 and (not cells[0].problems) == ok, (tolerance["name"], cells[0].problems)
        assert cells[0].window_agreement == 1 - flipped / 400
