"""Every run published in a committed leaderboard is a genuine run: its run.json and every record
validate against the schemas, it is complete, and its tables rebuild from its records (and, where
the run directory carries a summary.md, that file is exactly what restbench writes today)."""

import json
from pathlib import Path

import pytest

from restbench.records.rundir import RunDir
from restbench.records.schema import validate_record, validate_run
from restbench.report.markdown import summary_markdown
from restbench.report.summary import build_tables, read_summary

BOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
# a leaderboard folder keeps its runs under runs/<name>/ (or, in the first layout, is itself one)
RUNS = sorted({p.parent for p in BOARDS.glob("*/runs/*/run.json")} | {p.parent for p in BOARDS.glob("*/run.json")})


def test_every_leaderboard_has_runs():
    boards = sorted(p.parent for p in BOARDS.glob("*/leaderboard.json"))
    assert boards, "leaderboards/ holds no leaderboard"
    for board in boards:
        assert any(board in run.parents or run == board for run in RUNS), f"{board.name} publishes no run"


@pytest.mark.parametrize("run", RUNS, ids=[f"{p.parent.parent.name}/{p.name}" if p.parent.name == "runs" else p.name
                                          for p in RUNS])
def test_published_run_validates(run):
    run_info = json.loads((run / "run.json").read_text())
    validate_run(run_info)
    assert run_info["status"] == "complete"
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]
    for record in records:
        validate_record(record)
    tables = build_tables(records, methods=run_info["methods"])
    assert [row.method for row in tables["paper"].rows] == run_info["methods"]
    if (run / "summary.md").exists():
        rebuilt_tables, info = read_summary(RunDir(run, create=False))
        assert summary_markdown(rebuilt_tables, info) == (run / "summary.md").read_text(), \
            f"{run}/summary.md differs from its records; rebuild the entry"
