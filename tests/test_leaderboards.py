"""Every published leaderboard entry is a genuine run: it validates against the schema and its
summary rebuilds from its records."""

import json
from pathlib import Path

import pytest

from restbench.run.results import validate_record, validate_run
from restbench.report.summary import build_tables

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
