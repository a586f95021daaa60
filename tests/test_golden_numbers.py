"""Refactoring changes no number: the committed leaderboard rebuilds from its published run to the
same JSON cells, CSV and Markdown, and that run's summary renders to the files recorded in
tests/golden/ (written from the code before the layering redesign, issue 25). A deliberate change
to a number or its formatting updates the golden files in the same commit, with the reason."""

import json
import re
from pathlib import Path

import pytest

from restbench.records.rundir import RunDir
from restbench.report import leaderboard as lb
from restbench.report.long_csv import summary_csv
from restbench.report.markdown import summary_markdown
from restbench.report.summary import read_summary

ROOT = Path(__file__).resolve().parents[1]
BOARD = ROOT / "leaderboards" / "sleep-synth-quick"
GOLDEN = Path(__file__).resolve().parent / "golden"
RUN = next((BOARD / "runs").iterdir())
#: what a leaderboard holds besides provenance (file digests, dates) and the figures list
NUMBER_KEYS = ("protocol", "statistics", "baseline", "columns", "entries", "frontier", "claims", "reference",
               "reference_columns", "notes")


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    out = tmp_path_factory.mktemp("board") / BOARD.name
    lb.build([RUN], out, name=BOARD.name, baseline="sors", plots=False)
    return out


def test_the_committed_leaderboard_rebuilds_to_the_same_numbers(rebuilt):
    committed = json.loads((BOARD / "leaderboard.json").read_text())
    fresh = json.loads((rebuilt / "leaderboard.json").read_text())
    for key in NUMBER_KEYS:
        assert fresh[key] == committed[key], f"leaderboard.json: {key} changed"
    assert (rebuilt / "leaderboard.csv").read_text() == (BOARD / "leaderboard.csv").read_text()
    # the committed page lists its figures; the rebuild draws none
    committed_md = (BOARD / "leaderboard.md").read_text()
    without_plots = re.sub(r"## Plots\n\n(!\[[^\n]*\n)+\n", "", committed_md)
    assert without_plots != committed_md
    assert (rebuilt / "leaderboard.md").read_text() == without_plots


def test_the_default_summary_renders_to_the_golden_files():
    tables, info = read_summary(RunDir(RUN, create=False))
    assert summary_markdown(tables, info) == (GOLDEN / "sleep-synth-quick-summary.md").read_text()
    assert summary_csv(tables) == (GOLDEN / "sleep-synth-quick-summary.csv").read_text()
