"""Every published leaderboard entry is a genuine run: it validates against the schema and its
summary rebuilds from its records."""

import json
from pathlib import Path

import pytest

from restbench.run.results import validate_record, validate_run
from restbench.report.summary import build_tables, read_summary, render_markdown
from restbench.run.results import RunDir

ENTRIES = sorted(p for p in (Path(__file__).resolve().parents[1] / "leaderboards").iterdir() if p.is_dir())


@pytest.mark.parametrize("entry", ENTRIES, ids=[p.name for p in ENTRIES])
def test_entry_validates(entry):
    run_info = json.loads((entry / "run.json").read_text())
    validate_run(run_info)
    assert run_info["status"] == "complete"
    records = [json.loads(line) for line in (entry / "results.jsonl").read_text().splitlines()]
    for record in records:
        validate_record(record)
    tables = build_tables(records, methods=run_info["methods"])
    assert [row.method for row in tables["paper"].rows] == run_info["methods"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[p.name for p in ENTRIES])
def test_entry_summary_is_what_its_records_give(entry):
    """The published summary.md is exactly what restbench writes from the entry's records today
    (a changed table format or edited numbers mean the entry must be rebuilt)."""
    tables, run_info = read_summary(RunDir(entry, create=False))
    rebuilt = render_markdown(tables, run_info)
    published = (entry / "summary.md").read_text()
    assert rebuilt == published, f"{entry.name}/summary.md differs from its records; rebuild the entry"
