"""A run's figures, drawn into ``RUN_DIR/figures/`` by ``restbench plot RUN_DIR`` and at the end of
``restbench run``: the run, finished or not, read as a one-run leaderboard and drawn by the
leaderboard's own figure functions (:mod:`restbench.report.plots`).
"""

from __future__ import annotations

from pathlib import Path

from restbench.errors import UsageError
from restbench.records.rundir import RunDir
from restbench.records.schema import validate_run
from restbench.report.leaderboard import assemble
from restbench.report.plots import plotting_available, write_plots
from restbench.report.runs import LoadedRun

#: Where a run's figures go, inside its run directory.
RUN_FIGURES_DIR = "figures"


def write_run_figures(run_dir: str | Path, noise: str | None = None) -> list[Path]:
    """Draw one run's figures into ``RUN_DIR/figures/`` and return the files written (PNG and SVG).

    The run, finished or not, is read as a one-run leaderboard (:func:`restbench.report.leaderboard.assemble`)
    and drawn by the same functions as a leaderboard's plots: macro-F1 against severity per
    corruption, confusion matrices clean and under ``noise`` at its highest severity, one test
    subject's hypnograms from the stored predictions, robust macro-F1 against MFLOPs and latency.
    A directory that is not a run, or holds no robustness result yet, is a one-line :class:`UsageError`.
    """
    path = Path(run_dir)
    if not (path / RunDir.RUN_JSON).is_file():
        raise UsageError(f"RUN_DIR: {path} is not a run directory (no {RunDir.RUN_JSON}); pass a directory written by "
                         "'restbench run'")
    ok, why = plotting_available()
    if not ok:
        raise UsageError(f"cannot draw figures: {why}")
    run = RunDir(path, create=False)
    info = validate_run(run.read_run())
    records = run.checked_records(refuse_duplicates=False) if (path / RunDir.RESULTS).exists() else []
    recorded = list(dict.fromkeys(r["corruption"] for r in records if r.get("record_type") == "robustness"))
    if not recorded:
        raise UsageError(f"RUN_DIR: {path} holds no robustness results yet; nothing to plot")
    if noise is not None and noise not in recorded:
        raise UsageError(f"--noise: corruption '{noise}' is not in this run (recorded: {', '.join(recorded)})")
    loaded = LoadedRun(path, info, records)
    data = assemble([loaded], name=loaded.name)
    return [path / relative for relative in write_plots(data, [loaded], path / RUN_FIGURES_DIR, noise=noise)]


__all__ = ["RUN_FIGURES_DIR", "write_run_figures"]
