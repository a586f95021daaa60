"""Where a run's jobs (restbench.run.jobs) are computed before the driver assembles the run.

- ``local`` with one job: nothing here; the driver computes each job when it first needs it.
- ``local`` with ``--jobs N``: a pool of N worker processes on this machine (spawned, each pinned
  to its share of the cores so N workers never oversubscribe them).
- ``ray``: every job is a Ray task on a local cluster bound to 127.0.0.1 or on ``--address``;
  entries travel back through Ray's object store, so workers need no shared disk.

An executor only fills the job store; the driver then reads every entry and writes the run
directory, so the numbers do not depend on where a job ran. A job that raises is a failure (not
retried: it would fail again); a worker that dies (killed, out of memory) is retried up to
``MAX_ATTEMPTS`` times and then reported by name.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from restbench.data.sleep_data import fingerprint
from restbench.plugins.contract import PluginError, UsageError
from restbench.plugins.registry import get_registry
from restbench.run import jobs
from restbench.run.allocator import tune_allocator
from restbench.run.context import JobContext, job_context
from restbench.run.jobs import Job
from restbench.run.plan import prepare_data
from restbench.run.progress import Reporter

MAX_ATTEMPTS = 3
ORPHAN_CHECK_S = 1.0  # how often a pool worker checks that its driver is alive
EXECUTORS = ("local", "ray")


@dataclass
class Outcome:
    """What became of one job: ``computed`` (here, now), or ``error`` set."""

    job: Job
    computed: bool = False
    log: str = ""
    error: BaseException | None = None


# --------------------------------------------------------------------------- errors across processes


def portable(exc: BaseException) -> tuple[str, str, str | None]:
    """An exception as plain data (custom exception classes do not always unpickle)."""
    return type(exc).__name__, str(exc), getattr(exc, "plugin", None)


def rebuilt(error: tuple[str, str, str | None], job: Job) -> BaseException:
    from restbench.run.guard import PluginFailure

    kind, message, plugin = error
    if kind == "PluginFailure":
        return PluginFailure(message, plugin)
    if kind == "UsageError":
        return UsageError(message)
    if kind in ("PluginError", "CheckpointError"):
        return PluginError(message)
    return PluginError(f"{job.name} failed in a worker: {kind}: {message}")


# --------------------------------------------------------------------------- the worker side


_CONTEXT: dict[str, Any] = {}  # one job context and prepared data per worker process and request


def _context(request: Any) -> tuple[JobContext, Any]:
    """The worker's job context (plan, store, device) and prepared data for ``request``, built once."""
    token = fingerprint("worker", {k: str(v) for k, v in vars(request).items()})
    if token not in _CONTEXT:
        _CONTEXT.clear()
        tune_allocator()  # as in the driver: same numbers, far fewer page faults
        ctx = job_context(request, get_registry(), Reporter(quiet=True))
        data, _notes = prepare_data(ctx.plan, request, ctx.registry, ctx.reporter)
        _CONTEXT[token] = (ctx, data)
    return _CONTEXT[token]


def pin_threads(threads: int) -> None:
    """Torch and BLAS threads of a worker: its share of the machine's cores."""
    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)


def work(request: Any, job: Job, inputs: dict, pack: bool = False) -> tuple[bool, str, Any, bytes | None]:
    """Compute ``job`` into the store in this process: ``(computed, log, error, packed entry)``.
    Errors come back as data (:func:`portable`); only a dying process is an exception."""
    with tempfile.TemporaryDirectory(prefix="restbench-job-") as tmp:
        log_path = Path(tmp) / "log.txt"
        try:
            ctx, data = _context(request)
            entry, computed = jobs.ensure(ctx, data, job, inputs, Reporter(quiet=True, log_path=log_path))
            packed = ctx.store.pack(entry) if pack else None
            error = None
        except Exception as exc:  # reported to the driver by name; KeyboardInterrupt etc. end the worker
            computed, packed, error = False, None, portable(exc)
        log = log_path.read_text() if log_path.exists() else ""
    return computed, log, error, packed


def _exit_with(driver: int) -> None:
    """Stop this worker once its driver is gone (SIGKILLed, or stopped by a scheduler) instead of
    computing on as an orphan; its unfinished entry is only a ``.tmp-*`` folder, never stored."""
    while os.getppid() == driver:
        time.sleep(ORPHAN_CHECK_S)
    os._exit(1)


def _pool_init(threads: int, driver: int) -> None:
    pin_threads(threads)
    threading.Thread(target=_exit_with, args=(driver,), name="restbench-exit-with-driver", daemon=True).start()


def _stop_workers(pool: Any) -> None:
    """Stop a pool's workers now: an interrupted run must not wait for jobs nobody will read (the
    caller then shuts the pool down). ``terminate_workers`` is Python 3.14's; before it, the pool's
    process table."""
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


# --------------------------------------------------------------------------- scheduling


def request_for(request: Any, job: Job) -> Any:
    """A run's one request, or a sweep's request per job key (each grid point is its own run)."""
    return request[job.key] if isinstance(request, dict) else request


def _ready(pending: list[Job], finished: set[str], failed: dict[str, BaseException]) -> tuple[list[Job], list[Job]]:
    """``(jobs whose inputs are all done, jobs that need a failed job)``."""
    ready, blocked = [], []
    for job in pending:
        if any(key in failed for key in job.after):
            blocked.append(job)
        elif all(key in finished for key in job.after):
            ready.append(job)
    return ready, blocked


class PoolExecutor:
    """``--jobs N``: N spawned worker processes, each computing with the run's ``threads`` knob."""

    def __init__(self, workers: int, threads: int = 1):
        self.workers = workers
        self.threads = threads

    def describe(self) -> str:
        return f"a pool of {self.workers} worker processes, {self.threads} thread(s) each"

    def _pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_pool_init, initargs=(self.threads, os.getpid()))

    def run(self, request: Any, todo: list[Job], inputs: dict[str, dict], on_event: Callable[[str, Outcome], None],
            keep_going: bool = False) -> dict[str, Outcome]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        outcomes: dict[str, Outcome] = {}
        todo_keys = {job.key for job in todo}
        finished = {key for job in todo for key in job.after if key not in todo_keys}  # already stored
        failed: dict[str, BaseException] = {}
        attempts = {job.key: 0 for job in todo}
        pending, running = list(todo), {}
        pool = self._pool()
        try:
            while pending or running:
                ready, blocked = _ready(pending, finished, failed)
                for job in blocked:
                    pending.remove(job)
                    failed[job.key] = PluginError(f"{job.name} not run: a job it needs failed")
                    outcomes[job.key] = Outcome(job, error=failed[job.key])
                for job in ready[: max(0, self.workers - len(running))]:
                    pending.remove(job)
                    attempts[job.key] += 1
                    running[pool.submit(work, request_for(request, job), job, inputs[job.key])] = job
                    on_event("start", Outcome(job))
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                crashed = []
                for future in done:
                    job = running.pop(future)
                    try:
                        computed, log, error, _ = future.result()
                    except BrokenProcessPool:
                        crashed.append(job)
                        continue
                    outcome = Outcome(job, computed, log, None if error is None else rebuilt(error, job))
                    outcomes[job.key] = outcome
                    if outcome.error is None:
                        finished.add(job.key)
                    else:
                        failed[job.key] = outcome.error
                        if not keep_going:
                            on_event("failed", outcome)
                            return outcomes
                    on_event("failed" if outcome.error else "done", outcome)
                if crashed:  # a worker died: the pool is unusable; every job it held runs again
                    crashed += list(running.values())
                    running.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._pool()
                    for job in crashed:
                        if attempts[job.key] >= MAX_ATTEMPTS:
                            error = PluginError(f"{job.name}: its worker process died {attempts[job.key]} times "
                                                "(killed, or out of memory); giving up on it")
                            failed[job.key] = error
                            outcomes[job.key] = Outcome(job, error=error)
                            on_event("failed", outcomes[job.key])
                            if not keep_going:
                                return outcomes
                        else:
                            on_event("retry", Outcome(job))
                            pending.insert(0, job)
            return outcomes
        except BaseException:  # Ctrl-C, SIGTERM (restbench.cli), or a bug here: stop, do not wait
            _stop_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """``--executor ray``: jobs as Ray tasks (a GPU asked for when the run's device is CUDA)."""

    def __init__(self, workers: int, address: str | None = None, gpus_per_job: float = 0.0, threads: int = 1):
        self.workers = workers
        self.address = address
        self.gpus_per_job = gpus_per_job
        self.threads = threads

    def describe(self) -> str:
        where = f"the Ray cluster at {self.address}" if self.address else f"a local Ray cluster of {self.workers} CPU(s)"
        return f"{where} (one task per job)"

    def start(self):
        try:
            import ray
        except ImportError:
            raise UsageError("--executor ray: Ray is not installed; pip install 'restbench[ray]'") from None
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if self.address:
                kwargs["address"] = self.address
            else:  # a private cluster on loopback only
                kwargs.update(num_cpus=self.workers * self.threads, _node_ip_address="127.0.0.1")
            try:
                ray.init(**kwargs)
            except ConnectionError as exc:
                raise UsageError(f"--address {self.address}: cannot reach a Ray cluster there ({exc})") from None
        return ray

    def run(self, request: Any, todo: list[Job], inputs: dict[str, dict], on_event: Callable[[str, Outcome], None],
            keep_going: bool = False) -> dict[str, Outcome]:
        from restbench.run.store import Store

        ray = self.start()
        store = Store(request_for(request, todo[0]).store) if todo else None
        task = ray.remote(num_cpus=self.threads, num_gpus=self.gpus_per_job, max_retries=MAX_ATTEMPTS - 1)(_ray_job)
        refs: dict[str, Any] = {}  # job key -> the ref of its packed entry
        outcomes: dict[str, Outcome] = {}
        todo_keys = {job.key for job in todo}
        kinds = {job.key: job.kind for job in todo}
        for job in todo:  # submitted in graph order: Ray starts each once the entries it needs exist
            deps = []
            for key in job.after:
                if key not in todo_keys:  # stored before this run: shipped from here (workers may have no shared disk)
                    refs[key] = ray.put(_stored_pack(store, key))
                deps.append(refs[key])
            refs[job.key] = task.remote(request_for(request, job), job, inputs[job.key], [(k, kinds.get(k)) for k in job.after],
                                        self.threads, *deps)
            on_event("start", Outcome(job))
        pending = {refs[job.key]: job for job in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(done[0])
            try:
                packed, computed, log, error = ray.get(done[0])
            except Exception as exc:  # the task's worker died MAX_ATTEMPTS times, or a dependency failed
                error_obj = PluginError(f"{job.name}: its Ray task failed ({type(exc).__name__}: "
                                        f"{str(exc).splitlines()[0] if str(exc) else ''})")
                outcomes[job.key] = Outcome(job, error=error_obj)
            else:
                if error is None:
                    store.unpack(packed, job.kind, job.key, inputs[job.key])
                outcomes[job.key] = Outcome(job, computed, log, None if error is None else rebuilt(error, job))
            outcome = outcomes[job.key]
            on_event("failed" if outcome.error else "done", outcome)
            if outcome.error is not None and not keep_going:
                for ref in pending:
                    ray.cancel(ref, force=True)
                return outcomes
        return outcomes


def _stored_pack(store: Any, key: str) -> tuple[str, bytes]:
    for kind in ("train", "export", "evaluate"):
        folder = store.path(kind, key)
        if folder.is_dir():
            return kind, store.pack(folder)
    raise PluginError(f"job {key} is neither stored nor scheduled")


def _ray_job(request: Any, job: Job, job_inputs: dict, dep_kinds: list, threads: int, *deps: Any):
    """A Ray task: the entries it needs unpacked into this node's store, then :func:`work`."""
    from restbench.run.store import Store

    pin_threads(threads)
    store = Store(request.store)
    for (key, kind), dep in zip(dep_kinds, deps):
        if isinstance(dep, tuple) and len(dep) == 2 and isinstance(dep[0], str):  # shipped from the driver's store
            kind, packed = dep
        else:
            packed, *_ = dep
        if packed is not None and not store.path(kind, key).is_dir():
            manifest_inputs = _inputs_of(packed)
            store.unpack(packed, kind, key, manifest_inputs)
    computed, log, error, packed = work(request, job, job_inputs, pack=True)
    return packed, computed, log, error


def _inputs_of(packed: bytes) -> dict:
    import io
    import json
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(packed), mode="r") as tar:
        return json.load(tar.extractfile("manifest.json"))["inputs"]


def check_executor(kind: str, jobs: int | str, address: str | None, threads: int = 1) -> int:
    """The number of workers ``--jobs`` asks for; a UsageError for options that do not fit (checked
    when the run is planned, before anything is written)."""
    if kind not in EXECUTORS:
        raise UsageError(f"--executor: unknown executor '{kind}'; choose one of {', '.join(EXECUTORS)}")
    if jobs == "auto":  # as many one-job workers as the cores hold at the run's thread count
        jobs = max(1, (os.cpu_count() or 1) // max(1, threads))
    if not isinstance(jobs, int) or jobs < 1:
        raise UsageError(f"--jobs: expected a positive number of workers or auto, got {jobs}")
    if address and kind != "ray":
        raise UsageError("--address: only with --executor ray")
    return jobs


def make_executor(kind: str, jobs: int | str, address: str | None, device_type: str, threads: int = 1) -> Any:
    """The executor for ``--executor``/``--jobs``, or None to compute jobs in the driver."""
    jobs = check_executor(kind, jobs, address, threads)
    if kind == "ray":
        return RayExecutor(jobs, address, gpus_per_job=1.0 if device_type == "cuda" else 0.0, threads=threads)
    return PoolExecutor(jobs, threads) if jobs > 1 else None


def worker_request(request: Any, store_root: Path) -> Any:
    """The request a worker rebuilds the run from: the driver's resolved store, no run directory
    work (workers only fill the store), quiet."""
    return replace(request, store=Path(store_root).resolve(), use_store=True, quiet=True)
