"""A run's figures: `restbench run` draws them and prints their paths, `restbench plot RUN_DIR`
redraws them (PNG + SVG, not blank), and a directory that is not a run is a one-line error."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

FIGURES = ("f1-vs-severity", "confusion", "hypnograms", "pareto", "frontier")


def restbench(*args):
    return subprocess.run([sys.executable, "-m", "restbench.cli", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke run of two methods (plain: sors' recipe under its own name) under two corruptions,
    drawing its figures as a user's run does (tests/conftest.py sets RESTBENCH_FIGURES=0 for the others)."""
    run_dir = tmp_path_factory.mktemp("figures") / "run"
    with pytest.MonkeyPatch.context() as env:
        env.delenv("RESTBENCH_FIGURES", raising=False)
        out = restbench("run", "--profile", "smoke", "--methods", "plain,liu", "--corruptions", "gaussian,pgd",
                        "--runners", "torch-cpu", "--exporters", "", "--set", "torch-cpu.repetitions=2", "-q",
                        "--run-dir", str(run_dir))
    assert out.returncode == 0, out.stderr[-2000:]
    return run_dir, out.stdout


def assert_not_blank(png):
    """A drawn figure: decodable, of a real size, with ink (pixel variance and non-white pixels)."""
    from matplotlib.image import imread

    pixels = imread(png)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100, png
    gray = pixels[..., :3].mean(axis=2)
    assert gray.std() > 0.05, f"{png} is (almost) one colour"
    assert (gray < 0.9).mean() > 0.01, f"{png} has almost no ink"


def test_run_draws_figures_and_prints_their_paths(smoke_run):
    run_dir, stdout = smoke_run
    printed = [line.split("figure: ", 1)[1] for line in stdout.splitlines() if line.startswith("figure: ")]
    expected = [str(run_dir / "figures" / f"{name}.{ext}") for name in FIGURES for ext in ("png", "svg")]
    assert printed == expected
    for name in FIGURES:
        assert_not_blank(run_dir / "figures" / f"{name}.png")
        assert "<svg" in (run_dir / "figures" / f"{name}.svg").read_text()[:2000]
    # tables name what was trained: plain, not the paper's Sors
    summary = (run_dir / "summary.md").read_text()
    assert "plain" in summary
    assert [json.loads(line)["method"] for line in (run_dir / "results.jsonl").read_text().splitlines()
            if '"efficiency"' in line] == ["plain", "liu"]
    assert restbench("verify", str(run_dir)).returncode == 0  # figures are not artifacts


def test_plot_redraws_a_run(smoke_run):
    run_dir, _ = smoke_run
    figures = run_dir / "figures"
    for path in figures.iterdir():
        path.unlink()
    out = restbench("plot", str(run_dir), "--noise", "pgd")
    assert out.returncode == 0, out.stderr
    written = out.stdout.split()
    assert written == [str(figures / f"{name}.{ext}") for name in FIGURES for ext in ("png", "svg")]
    for name in FIGURES:
        png = figures / f"{name}.png"
        assert png.stat().st_size > 5_000
        assert_not_blank(png)
    assert "pgd" in (figures / "hypnograms.svg").read_text()  # the chosen noise is drawn


def test_plot_refuses_what_is_not_a_run(tmp_path, smoke_run):
    out = restbench("plot", str(tmp_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (f"error: RUN_DIR: {tmp_path} is not a run directory (no run.json); pass a "
                                  "directory written by 'restbench run'")
    assert not (tmp_path / "figures").exists()
    run_dir, _ = smoke_run
    out = restbench("plot", str(run_dir), "--noise", "shot")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "--noise: corruption 'shot' is not in this run (recorded: clean, gaussian, pgd)" in out.stderr


def test_figures_are_drawn_unless_turned_off_by_flag_or_restbench_figures(monkeypatch):
    """--figures is the default; RESTBENCH_FIGURES=0 (what the test suite sets) makes --no-figures
    the default, and either flag still wins."""
    from restbench.cli import cli

    def figures(*args):
        return cli.commands["run"].make_context("run", list(args)).params["figures"]

    monkeypatch.delenv("RESTBENCH_FIGURES", raising=False)
    assert figures() is True and figures("--no-figures") is False
    monkeypatch.setenv("RESTBENCH_FIGURES", "0")
    assert figures() is False and figures("--figures") is True
    monkeypatch.setenv("RESTBENCH_FIGURES", "1")
    assert figures() is True and figures("--no-figures") is False
