"""Strong versions of two CLI checks whose originals in tests/test_cli.py were weak (issue 19):
``test_data_info_without_local_files_is_one_line`` (``A and B or C`` made its one-line check
dead) and ``test_help_everywhere`` (exit codes only). tests/test_cli.py is edited elsewhere, so
the strong versions live here."""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from restbench.cli import cli


def restbench(*args):
    return subprocess.run([sys.executable, "-m", "restbench.cli", *args], capture_output=True, text=True)


def test_data_info_without_local_files_is_one_line_naming_dataset_folder_and_files(tmp_path):
    missing = tmp_path / "missing"
    result = restbench("data", "info", "sleep-edf", "--data-dir", str(missing), "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 2 and result.stdout == ""  # the user's input is wrong: a usage error
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert "Traceback" not in line and line.startswith("error: dataset 'sleep-edf'")
    assert str(missing) in line and "SC4001" in line and "--data-dir" in line and "--download" in line


@pytest.mark.parametrize(("args", "words"), [
    ([], ["Usage: restbench [OPTIONS] COMMAND", "run", "list", "plugins", "data", "export", "plugin-check", "summary"]),
    (["run"], ["Usage: restbench run [OPTIONS]", "--methods", "--profile", "--set", "--resume", "--run-dir", "--seeds"]),
    (["list"], ["Usage: restbench list [OPTIONS]", "KIND", "--json"]),
    (["plugins"], ["Usage: restbench plugins [OPTIONS]", "--json"]),
    (["data", "info"], ["Usage: restbench data info [OPTIONS]", "--n-subjects", "--dataset-option", "--json"]),
    (["export"], ["Usage: restbench export [OPTIONS]", "--out", "--no-int8"]),
    (["plugin-check"], ["Usage: restbench plugin-check [OPTIONS]"]),
    (["summary"], ["Usage: restbench summary [OPTIONS]"]),
])
def test_help_names_the_command_and_its_options(args, words):
    out = CliRunner().invoke(cli, [*args, "--help"], prog_name="restbench")
    assert out.exit_code == 0 and out.exception is None
    missing = [w for w in words if w not in out.output]
    assert not missing, f"restbench {' '.join(args)} --help does not show {missing}"
