"""restbench compare: a method's cells in two runs of one protocol, paired per (seed, test subject)."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from restbench.api import PluginError
from restbench.cli import cli, main
from restbench.report.compare import compare_runs

COMMITTED = next((Path(__file__).resolve().parents[1] / "leaderboards" / "sleep-synth-quick" / "runs").iterdir())
KEPT = ("sors", "rest-as")  # two methods of the committed run are enough, and quicker to read


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    return shifted_copy(tmp_path_factory.mktemp("runs"), "rest-as", 0.0, source=COMMITTED, name="a")


def shifted_copy(tmp_path: Path, method: str, by: float, name: str = "b", source: Path | None = None) -> Path:
    """A copy of the committed run's sors and rest-as records in which ``method`` scores ``by`` more
    on every test subject."""
    out = tmp_path / name
    out.mkdir()
    shutil.copy(COMMITTED / "run.json", out / "run.json")
    lines = []
    for line in (COMMITTED / "results.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["method"] not in KEPT:
            continue
        if r["record_type"] == "robustness" and r["method"] == method and by:
            r["per_subject_macro_f1"] = {s: min(1.0, f + by) for s, f in r["per_subject_macro_f1"].items()}
        lines.append(json.dumps(r))
    (out / "results.jsonl").write_text("\n".join(lines) + "\n")
    return out


def test_a_run_against_itself_is_a_tie_everywhere(run):
    result = compare_runs(run, run, "rest-as")
    assert result.cells and all(c.verdict == "tie" and c.difference == 0.0 for c in result.cells)
    assert result.differing_options == {} and result.cost["a"] == result.cost["b"]
    assert {c.variant for c in result.cells} == {"torch"}


def test_a_better_copy_is_found_better_with_its_pairs(run, tmp_path):
    better = shifted_copy(tmp_path, "rest-as", 0.05)
    result = compare_runs(run, better, "rest-as")
    clean = next(c for c in result.cells if c.corruption == "clean")
    assert clean.verdict == "B better" and clean.difference == pytest.approx(0.05, abs=0.01)
    assert clean.n_pairs >= 3 * 8  # three seeds, eight test subjects each
    assert clean.ci95[0] > 0 and clean.p_value < 0.05
    # another method's id in B (sors) compared with rest-as in A: a real difference either way
    other = compare_runs(run, run, "rest-as", method_b="sors")
    assert any(c.verdict != "tie" for c in other.cells)


def test_the_cli_prints_markdown_and_json_and_refuses_an_unknown_method(run, tmp_path, capsys):
    better = shifted_copy(tmp_path, "rest-as", 0.05)
    runner = CliRunner()
    shown = runner.invoke(cli, ["compare", str(run), str(better), "--method", "rest-as", "--out", str(tmp_path / "c.md")])
    assert shown.exit_code == 0, shown.output
    assert "| clean | clean | torch |" in shown.output and "B better" in shown.output
    assert (tmp_path / "c.md").read_text() == shown.output
    as_json = runner.invoke(cli, ["compare", str(run), str(better), "--method", "rest-as", "--json"])
    assert json.loads(as_json.output)["cells"][0]["verdict"] == "B better"
    with pytest.raises(PluginError, match="no robustness records of method 'nope'"):
        compare_runs(run, better, "nope")
    with pytest.raises(SystemExit) as exited:
        main(["compare", str(run), str(better), "--method", "nope"])
    err = capsys.readouterr().err
    assert exited.value.code != 0 and err.startswith("error: ") and "no robustness records" in err
    assert len(err.strip().splitlines()) == 1


def test_the_options_that_differ_are_those_of_plugins_both_runs_used(run, tmp_path):
    other = shifted_copy(tmp_path, "rest-as", 0.0)
    info = json.loads((other / "run.json").read_text())
    info["options"]["slimming"]["flop_budget"] = 0.3
    info["options"].pop("yasa", None)  # a plugin only run A used
    (other / "run.json").write_text(json.dumps(info))
    assert compare_runs(run, other, "rest-as").differing_options == {"slimming.flop_budget": [None, 0.3]}


def test_runs_of_different_protocols_are_refused(run, tmp_path):
    other = shifted_copy(tmp_path, "rest-as", 0.0)
    info = json.loads((other / "run.json").read_text())
    info["config"]["epochs"] = info["config"]["epochs"] + 1
    (other / "run.json").write_text(json.dumps(info))
    with pytest.raises(PluginError, match="knob 'epochs'"):
        compare_runs(run, other, "rest-as")
