"""The CLI on an 80-column terminal: nothing cut, and one helpful line for a mistyped name.

Tables are printed in fresh processes with ``COLUMNS=80`` (rich reads it when the console is
made); outputs must hold no '…', no line wider than 80 cells, and every number of the tables.
"""

import io
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console

from restbench.cli import cli, main
from restbench.report.formatting import grid
from restbench.report.summary import read_summary
from restbench.report.terminal import print_summary

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "leaderboards" / "sleep-synth-quick" / "runs" / "leaderboard-quick"  # a committed run with every table
NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def at_80(*args: str) -> str:
    """stdout of ``restbench ARGS`` on an 80-column terminal (fails on a non-zero exit)."""
    env = {**os.environ, "COLUMNS": "80", "RESTBENCH_PLUGINS_ALLOW": "restbench"}
    done = subprocess.run([sys.executable, "-m", "restbench.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def assert_fits(out: str, width: int = 80) -> None:
    assert "…" not in out, "a cell was cut:\n" + "\n".join(line for line in out.splitlines() if "…" in line)
    too_wide = [line for line in out.splitlines() if cell_len(line) > width]
    assert not too_wide, f"lines wider than {width}:\n" + "\n".join(too_wide)


def expected_numbers(tables) -> Counter:
    """Every number of every shown table's cells, counted."""
    found: Counter = Counter()
    for table in tables.values():
        if table.show:
            _, body = grid(table)
            found.update(n for line in body for text in line[1:] for n in NUMBER.findall(text))
    return found


def test_summary_at_80_columns_splits_wide_tables_and_cuts_nothing():
    out = at_80("summary", str(RUN))
    assert_fits(out)
    tables, _ = read_summary(RUN)
    missing = expected_numbers(tables) - Counter(NUMBER.findall(out))
    assert not missing, f"numbers missing from the output: {dict(missing)}"
    words = Counter(w for line in out.splitlines() for w in re.findall(r"[\w./()%-]+", line))
    for table in tables.values():
        if table.show:
            for column in table.columns:  # a header may wrap between its words, never inside one
                assert all(words[w] for w in re.findall(r"[\w./()%-]+", column.label)), column.label
    assert "Robustness (Table 4, macro-F1) (1/4)" in out and "Robustness (Table 4, macro-F1) (4/4)" in out
    assert "│ sors             │  0.59 ± 0.01 │" in out  # the value (mean ± std over seeds), its interval below
    assert "│                  │ [0.57, 0.61] │" in out
    assert "--wide prints each whole" in out


def test_summary_wide_prints_each_table_whole():
    out = at_80("summary", str(RUN), "--wide")
    assert "…" not in out and "(1/" not in out
    assert "│ sors             │ 0.59 ± 0.01 [0.57, 0.61] │ 0.60 ± 0.03 [0.52, 0.68] │" in out
    assert max(cell_len(line) for line in out.splitlines()) > 80


def test_end_of_run_summary_fits_the_console():
    """restbench run prints its tables with the same function, on the console it was given."""
    tables, _ = read_summary(RUN)
    console = Console(file=io.StringIO(), width=80, color_system=None)
    print_summary(tables, console)
    out = console.file.getvalue()
    assert_fits(out)
    assert not expected_numbers(tables) - Counter(NUMBER.findall(out))
    wide = Console(file=io.StringIO(), width=400, color_system=None)
    print_summary(tables, wide)
    assert "(1/" not in wide.file.getvalue() and "--wide" not in wide.file.getvalue()  # room enough: unsplit


def test_profiles_plugins_and_options_at_80_columns():
    from restbench.plugins.registry import get_registry
    from restbench.run import profiles

    out = at_80("list", "profiles")
    assert_fits(out)
    for knob in profiles.CORE_OPTIONS:
        assert f"│ {knob.name} " in out, knob.name
    out = at_80("plugins")
    assert_fits(out)
    for plugin in get_registry().plugins:
        if plugin.distribution == "restbench":
            assert f"│ {plugin.name} " in out, plugin.name
    for kind in ("methods", "corruptions", "datasets", "runners", "compressors"):
        out = at_80("list", kind, "--options")
        assert_fits(out)
        for obj in get_registry().all(kind).values():
            assert f"│ {obj.id}" in out
            for option in getattr(obj, "options", ()):
                assert f"│ {option.name} " in out, f"{obj.id}.{option.name}"


def test_top_level_help_shows_whole_command_summaries():
    out = at_80("--help")
    assert_fits(out)
    flat = " ".join(out.split())
    for name, command in cli.commands.items():
        summary = command.get_short_help_str(limit=10_000)
        assert " ".join(summary.split()) in flat, name  # whole: click would end a cut one with '...'


@pytest.mark.parametrize("args, message", [
    (["run", "--methods", "rest-x"], "--methods: unknown method id 'rest-x' (did you mean 'rest-a' or 'rest-as'?)"),
    (["run", "--dataset", "sleepedf"], "--dataset: unknown dataset id 'sleepedf' (did you mean 'sleep-edf'?)"),
    (["run", "--model", "sors-2018"], "--model: unknown model id 'sors-2018' (did you mean 'sors2018'?)"),
    (["run", "--corruptions", "gausian,pgd"], "--corruptions: unknown corruption id 'gausian' (did you mean 'gaussian'"),
    (["run", "--set", "epoch=3"], "--set: unknown knob 'epoch' (did you mean 'epochs'?)"),
    (["run", "--set", "rest-a.train_epz=4"], "--set: plugin 'rest-a' has no option 'train_epz' (did you mean 'rest-a.train_eps'"),
    (["run", "--set", "rest-x.train_eps=4"], "--set: 'rest-x' is not an installed plugin or core knob (did you mean 'rest-a'"),
    (["run", "--profile", "quik"], "--profile: unknown value 'quik' (did you mean 'quick'?)"),
    (["list", "method"], "KIND: unknown value 'method' (did you mean 'methods'?)"),
    (["list", "method", "--options"], "KIND: unknown value 'method' (did you mean 'methods'?)"),
    (["plugin-check", "sors", "--kind", "method"], "--kind: unknown value 'method' (did you mean 'methods'?)"),
])
def test_a_mistyped_name_is_one_line_with_the_closest_valid_names(args, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing may be written, and nowhere in the checkout
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--profile", "smoke"] if args[0] == "run" and "--profile" not in args else args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert err.startswith("error: " + message), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())


def test_a_name_with_no_close_match_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit):
        main(["list", "zzz"])
    err = capsys.readouterr().err
    assert "did you mean" not in err and "valid: datasets, models, methods" in err and err.count("\n") == 1
