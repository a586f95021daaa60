"""``restbench evaluate RUN_DIR --eval-dataset ...``: a finished run's trained models evaluated on
more datasets, in place.

The run is resumed with its recorded configuration (as :mod:`restbench.studies.reproduce` does),
training off, and the new evaluation sets added (:mod:`restbench.run.eval_sets`): every
checkpoint loads from the run directory, nothing trains, every model and reference method is
evaluated on each new set under every corruption, and the run's summary is written again. What
the run already holds is kept: its own cells, and the cells of the sets it was evaluated on before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from restbench.plugins.contract import UsageError
from restbench.studies.reproduce import checked_run, request_from_run


def evaluation_request(run_dir: Path, eval_sets: list, *, data_dir: Path | None = None,
                       cache_dir: Path | None = None, quiet: bool = True, keep_going: bool = False):
    """The :class:`restbench.run.plan.RunRequest` that adds ``eval_sets``
    (:class:`restbench.run.eval_sets.EvalSetRequest`) to the complete run in ``run_dir``; a
    one-line error when the run cannot take them (incomplete, changed files, a set already there)."""
    from restbench.run.eval_sets import EvalSetRequest

    if not eval_sets:
        raise UsageError("--eval-dataset: give at least one dataset to evaluate the run's models on")
    run_dir = Path(run_dir)
    info = checked_run(run_dir)
    kept = [EvalSetRequest.from_record(entry) for entry in info.get("eval_sets") or []]
    for new in eval_sets:
        if any(old.label == new.label for old in kept):
            raise UsageError(f"--eval-dataset {new.label}: the run was already evaluated on a set of that name; "
                             "give the new one another name=LABEL")
    request = request_from_run(info, run_dir, data_dir, cache_dir, quiet)
    # the run's own directory, runners (with their options) and store: its latency records stay,
    # its jobs are shared
    overrides = {**request.overrides, **{f"{oid}.{name}": value for oid, values in (info.get("options") or {}).items()
                                         for name, value in values.items()}}
    return dataclasses.replace(request, runners=list(info.get("runners") or []), use_store=True, overrides=overrides,
                               allow_extend=True, keep_going=keep_going, eval_sets=[*kept, *eval_sets])
