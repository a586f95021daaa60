"""What a job needs, as one small explicit value: the plan, the store, the device, the registry and
where it reports.

The same :class:`JobContext` is built by the driver (:class:`restbench.run.pipeline.Pipeline`), by
every pool or Ray worker (:mod:`restbench.run.executors`) and by a sweep, so a job computes the
same entry wherever it runs, and a worker never builds a whole pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import torch

    from restbench.run.plan import Plan
    from restbench.run.progress import Reporter
    from restbench.run.steps import TrainedModel
    from restbench.run.store import Store

#: ``own_checkpoint(method, seed, key)``: a trained model the caller already holds for a train job
#: (a resumed run's checkpoint, or one ``restbench reproduce`` must use), or None to train.
OwnCheckpoint = Callable[[str, int, str], "TrainedModel | None"]


@dataclass
class JobContext:
    """The inputs every job shares; per-job inputs (method, seed, keys) travel in the job."""

    plan: Plan
    store: Store
    device: torch.device
    registry: Any
    reporter: Reporter
    #: validation windows a sweep's validate jobs score (None: the profile's evaluation budget)
    max_validation_windows: int | None = None
    own_checkpoint: OwnCheckpoint | None = None
    #: jobs that already failed on an executor, by key: needing one raises its error again
    failures: dict[str, BaseException] = field(default_factory=dict)
    #: (kind, key) -> whether this process computed the entry (False: taken from the store)
    sources: dict[tuple[str, str], bool] = field(default_factory=dict)


def job_context(request: Any, registry: Any, reporter: Reporter, own_checkpoint: OwnCheckpoint | None = None
                ) -> JobContext:
    """The context for ``request`` (a :class:`restbench.run.plan.RunRequest`): its plan resolved
    against ``registry``, its store opened, its device chosen and torch set to its thread count."""
    import torch

    from restbench.run.plan import resolve_device, resolve_plan
    from restbench.run.store import open_store

    plan = resolve_plan(request, registry)
    torch.set_num_threads(int(plan.knobs["threads"]))  # every job computes with the recorded thread count
    return JobContext(plan, open_store(request.store, request.cache_dir, request.use_store),
                      resolve_device(plan.knobs["device"]), registry, reporter,
                      max_validation_windows=request.max_validation_windows, own_checkpoint=own_checkpoint)
