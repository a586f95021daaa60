"""A benchmark run end to end, as ``restbench run`` does it: the pipeline writes the run's records,
then the report layer reads them into the summary (summary.md, summary.csv).

It sits above both (docs/ARCHITECTURE.md): the run machinery never imports reporting, and
reporting only reads records.
"""

from __future__ import annotations

from dataclasses import dataclass

from restbench.plugins.contract import PluginError
from restbench.records.rundir import RunDir
from restbench.report.summary import write_summary
from restbench.run.pipeline import Pipeline
from restbench.run.plan import RunRequest


@dataclass
class RunResult:
    """A finished run: its directory and the summary tables written there."""

    run_dir: RunDir
    tables: dict
    jobs: str = ""  # how the jobs were served (computed, from the store)


def run(request: RunRequest, console=None) -> RunResult:
    """Run a benchmark and write its summary; a run whose methods failed (``--keep-going``) or whose
    exports failed their check raises a one-line :class:`PluginError` after everything is written."""
    pipeline = Pipeline(request, console)
    run_dir = pipeline.execute()
    result = RunResult(run_dir, write_summary(run_dir.path), pipeline.jobs_line)
    if pipeline.failures:
        raise PluginError(f"{len(pipeline.failures)} method/seed(s) failed and were skipped (--keep-going): "
                          f"{pipeline.failures[0]['error']}; the rest is in {run_dir.path}")
    if pipeline.export_failures:
        raise PluginError(f"export check failed ({'; '.join(pipeline.export_failures)}); "
                          f"results are kept in {run_dir.path}")
    return result
