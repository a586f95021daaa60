"""The CLI as a user sees it: JSON listings, one-line errors with exit codes, plugin commands."""

import json
import subprocess
import sys
import types

import click
import pytest
from click.testing import CliRunner

from restbench import hookimpl
from restbench.cli import cli, main
from restbench.plugins.testing import registry_with


def restbench(*args, env=None):
    return subprocess.run([sys.executable, "-m", "restbench.cli", *args], capture_output=True, text=True, env=env)


def test_plugins_json_lists_builtins_with_versions_and_hooks():
    out = CliRunner().invoke(cli, ["plugins", "--json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    builtin = {r["name"]: r for r in rows if r["distribution"] == "restbench"}
    assert "builtin-paper-methods" in builtin
    assert builtin["builtin-paper-methods"]["hooks"] == ["register_methods"]
    assert all(r["version"] for r in builtin.values())


def test_list_kinds_json():
    for kind in ("datasets", "models", "methods", "corruptions", "compressors", "runners"):
        out = CliRunner().invoke(cli, ["list", kind, "--json"])
        assert out.exit_code == 0, out.output
        rows = json.loads(out.output)
        assert rows and all({"id", "version", "description"} <= set(r) for r in rows)
    methods = {r["id"] for r in json.loads(CliRunner().invoke(cli, ["list", "methods", "--json"]).output)}
    assert {"sors", "liu", "blanco", "ford", "rest-a", "rest-as"} <= methods
    corr = json.loads(CliRunner().invoke(cli, ["list", "corruptions", "--json"]).output)
    gaussian = next(c for c in corr if c["id"] == "gaussian")
    assert [s["value"] for s in gaussian["severities"]] == [0.1, 0.2, 0.3] and gaussian["severities"][0]["unit"]


def test_list_profiles_shows_knobs():
    out = CliRunner().invoke(cli, ["list", "profiles", "--json"])
    listing = json.loads(out.output)
    assert {"paper", "quick", "smoke"} <= {p["id"] for p in listing["profiles"]}
    epochs = next(k for k in listing["knobs"] if k["name"] == "epochs")
    assert (epochs["default"], epochs["paper"], epochs["profiles"]) == (30, 30, {"quick": 10, "smoke": 1})
    assert not {"train_eps", "gaussian_c", "prune_sparsity", "pgd_eval_steps"} & {k["name"] for k in listing["knobs"]}
    text = CliRunner().invoke(cli, ["list", "profiles"]).output
    assert "epochs" in text and "quick (default)" in text


def test_unknown_method_is_one_line_exit_2():
    result = restbench("run", "--methods", "nope", "--profile", "smoke")
    assert result.returncode == 2
    assert "unknown method id 'nope'" in result.stderr and "rest-as" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unknown_knob_and_bad_config_are_one_line(tmp_path):
    result = restbench("run", "--profile", "smoke", "--set", "epoch=3")
    assert result.returncode == 2 and "unknown knob 'epoch'" in result.stderr and "Traceback" not in result.stderr
    bad = tmp_path / "cfg.json"
    bad.write_text("{not json")
    result = restbench("run", "--profile", "smoke", "--config", str(bad))
    assert result.returncode == 2 and str(bad) in result.stderr and "Traceback" not in result.stderr


def test_help_everywhere():
    for args in (["--help"], ["run", "--help"], ["list", "--help"], ["plugins", "--help"], ["data", "info", "--help"],
                 ["export", "--help"], ["plugin-check", "--help"], ["summary", "--help"]):
        assert CliRunner().invoke(cli, args).exit_code == 0, args


def test_register_commands_adds_a_subcommand(capsys):
    plugin = types.ModuleType("cmd_plugin")

    @hookimpl
    def register_commands(cli):
        @cli.command("hello-plugin")
        def hello():
            click.echo("hello from a plugin")

    plugin.register_commands = register_commands
    with registry_with(plugin):
        try:
            main(["hello-plugin"])
        except SystemExit as exc:
            assert exc.code in (0, None)
    assert "hello from a plugin" in capsys.readouterr().out
    cli.commands.pop("hello-plugin", None)


def test_a_failing_register_commands_warns_or_fails_in_strict_mode(capsys, monkeypatch):
    plugin = types.ModuleType("broken_cmd_plugin")

    @hookimpl
    def register_commands(cli):
        raise RuntimeError("cannot add my command")

    plugin.register_commands = register_commands
    with registry_with(plugin):
        monkeypatch.setenv("RESTBENCH_STRICT_PLUGINS", "0")
        main(["--help"])  # the CLI keeps working (the root help lists plugin commands, so it loads them)
        assert "register_commands failed: cannot add my command" in capsys.readouterr().err
        monkeypatch.setenv("RESTBENCH_STRICT_PLUGINS", "1")
        with pytest.raises(SystemExit) as exc:
            main(["--help"])
        err = capsys.readouterr().err
        assert exc.value.code == 1 and "RESTBENCH_STRICT_PLUGINS=1" in err and err.count("\n") == 1


def test_builtin_commands_and_version_start_without_loading_plugins():
    script = ("import sys\nfrom restbench.cli import main\n"
              "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
              "assert 'torch' not in sys.modules, 'restbench --version imported torch'\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and "restbench" in done.stdout, done.stderr[-1000:]
    from restbench.cli import _needs_plugin_commands

    assert not _needs_plugin_commands(["run", "--help"]) and not _needs_plugin_commands(["--version"])
    assert _needs_plugin_commands(["--help"]) and _needs_plugin_commands([]) and _needs_plugin_commands(["hello-plugin"])


def test_plugin_check_passes_for_builtins():
    out = CliRunner().invoke(cli, ["plugin-check", "rest-as"])
    assert out.exit_code == 0 and "ok methods rest-as" in out.output


def test_data_info_prints_the_table_and_json(tmp_path):
    args = ["data", "info", "sleep-synth", "--n-subjects", "3", "--dataset-option", "hours=1",
            "--cache-dir", str(tmp_path)]
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0, table.output
    assert all(word in table.output for word in ("train", "test", "N1", "REM", "total"))
    data = json.loads(CliRunner().invoke(cli, args + ["--json"]).output)
    counts = data["stage_counts"]
    assert set(counts) == {"train", "val", "test", "total"}
    assert sum(counts["total"].values()) == sum(sum(counts[s].values()) for s in ("train", "val", "test")) > 0
    assert data["n_times"] == 12000 and data["sfreq"] == 100.0


def test_data_info_without_local_files_is_one_line(tmp_path):
    result = restbench("data", "info", "sleep-edf", "--data-dir", str(tmp_path / "missing"), "--cache-dir", str(tmp_path))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "sleep-edf" in result.stderr.lower() or "SC4" in result.stderr


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_summary_only_reads_unless_asked_to_write(tmp_path):
    """`restbench summary` on a published run folder prints and leaves every byte (and mtime) as
    it was; --write (re)writes summary.md and summary.csv there."""
    import shutil
    from pathlib import Path

    boards = Path(__file__).resolve().parents[1] / "leaderboards"
    source = next(p.parent for p in sorted(boards.rglob("results.jsonl")))  # a committed run folder
    run_dir = shutil.copytree(source, tmp_path / source.name)
    before = _snapshot(run_dir)
    shown = CliRunner().invoke(cli, ["summary", str(run_dir)])
    assert shown.exit_code == 0, shown.output
    assert "macro-F1" in shown.output and "wrote" not in shown.output
    assert _snapshot(run_dir) == before

    (run_dir / "summary.md").unlink(missing_ok=True)
    written = CliRunner().invoke(cli, ["summary", str(run_dir), "--write"])
    assert written.exit_code == 0, written.output
    assert "wrote" in written.output
    assert (run_dir / "summary.md").read_text(encoding="utf-8").startswith("#")
    assert (run_dir / "summary.csv").read_text().startswith("table,dataset,model,method")
    assert written.output == shown.output + written.output[len(shown.output):]  # same tables, then the note
