"""``restbench sweep``: the paper's hyperparameter searches (section 4.4) on any executor.

A grid over declared plugin options (``--grid rest-a.train_eps=0:30:2``, several ``--grid`` for a
product such as lambda_o x lambda_g) trains the method at every point exactly as ``restbench
run`` would (one train job per point, through the job store, so a point trained before is not
trained again) and scores it on validation windows only -- a sweep's data has no test split --
by the paper's criterion (restbench.run.validation.SCORE_DEFINITION). The highest score is chosen
(the first point in grid order on a tie). Written to ``--out DIR``: ``sweep.json`` (no timings:
the same seed gives the same file), ``sweep.md`` and ``chosen.json``, a ``--config`` file that
``restbench run --from-sweep DIR`` reads. ``restbench sweep`` then draws ``sweep.png``/``.svg``
(:func:`restbench.report.plots.sweep_figure`: score, clean and attacked F1 against the value,
Figure 3's shape; a heat map for two options, Tables 2-3's shape) and ``sweep-frontier.png``/``.svg``
(clean F1 against the mean attacked F1 and against each attack level, one point per grid point:
the trade-off the option sets).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restbench.data.cache import default_cache_dir
from restbench.plugins.contract import UsageError
from restbench.plugins.options import parse_value
from restbench.plugins.registry import get_registry
from restbench.records.atomic import atomic_path
from restbench.run import jobs, profiles
from restbench.run.allocator import tune_allocator
from restbench.run.context import job_context
from restbench.run.executors import check_executor, make_executor, worker_request
from restbench.run.plan import RunRequest, prepare_data
from restbench.run.progress import Reporter
from restbench.run.validation import SCORE_DEFINITION
from restbench.studies.search import attack_corruption

CHOSEN = "chosen.json"
TABLE = "sweep.json"


def parse_axis(text: str) -> tuple[str, list[Any]]:
    """``ID.NAME=START:STOP:STEP`` (inclusive, numbers) or ``ID.NAME=V1,V2,...`` (JSON values)."""
    target, sep, spec = text.partition("=")
    target, spec = target.strip(), spec.strip()
    if not sep or "." not in target or not spec:
        raise UsageError(f"--grid: expected ID.NAME=START:STOP:STEP or ID.NAME=V1,V2,..., got '{text}'")
    if ":" in spec and "," not in spec:
        parts = spec.split(":")
        try:
            start, stop, step = (float(p) for p in parts) if len(parts) == 3 else (None, None, None)
        except ValueError:
            start = None
        if start is None or step <= 0 or stop < start:
            raise UsageError(f"--grid {target}: expected START:STOP:STEP with STEP > 0 and STOP >= START, got '{spec}'")
        count = int(round((stop - start) / step)) + 1
        if count > 1000:
            raise UsageError(f"--grid {target}: {count} values; at most 1000 per option")
        integral = all(float(p).is_integer() for p in parts)
        values = [start + i * step for i in range(count) if start + i * step <= stop + 1e-9 * max(1.0, abs(stop))]
        return target, [int(round(v)) if integral else round(v, 12) for v in values]
    values = [parse_value(v.strip()) for v in spec.split(",") if v.strip()]
    if not values:
        raise UsageError(f"--grid {target}: no values")
    if len({json.dumps(v) for v in values}) != len(values):
        raise UsageError(f"--grid {target}: repeated value in {spec}")
    return target, values


@dataclass
class SweepRequest:
    """What ``restbench sweep`` was asked."""

    method: str
    grid: dict[str, list[Any]]  # ID.NAME -> values (a product when several)
    out: Path
    profile: str = profiles.DEFAULT_PROFILE
    corruption: str | None = None  # None: the registered white-box corruption of the paper suite
    dataset: str | None = None
    model: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    max_windows: int | None = None
    data_dir: Path | None = None
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    protocol: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    jobs: int = 1
    executor: str = "local"
    ray_address: str | None = None
    store: Path | None = None
    use_store: bool = True
    command: str | None = None
    quiet: bool = False


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def sweep(request: SweepRequest, console=None) -> dict:
    """Train and score every grid point; write the table and chosen config; return the table (its
    figure is the report layer's: :func:`restbench.report.plots.sweep_figure`)."""
    registry = get_registry()
    method = registry.get("methods", request.method, "restbench sweep METHOD")
    if not request.grid:
        raise UsageError("--grid: give at least one ID.NAME=VALUES")
    for target in request.grid:
        if target in request.overrides:
            raise UsageError(f"--set {target}: the sweep sets this option itself (--grid)")
    corruption = attack_corruption(registry, request.corruption)
    reporter = Reporter(console, quiet=request.quiet)
    grid_points = points(request.grid)

    def request_for(point: dict) -> RunRequest:
        return RunRequest(
            dataset=request.dataset, model=request.model, methods=[method.id], corruptions=[corruption.id],
            runners=[], exporters=[], profile=request.profile, overrides={**request.overrides, **point},
            seeds=[request.seed] if request.seed is not None else None, data_dir=request.data_dir,
            cache_dir=request.cache_dir, protocol=request.protocol, dataset_options=dict(request.dataset_options),
            quiet=True, store=request.store, use_store=request.use_store, jobs=request.jobs,
            executor=request.executor, ray_address=request.ray_address, validation_only=True,
            max_validation_windows=request.max_windows)

    tune_allocator()  # tensor buffers reused from the heap: same numbers, far fewer page faults
    run_requests = [request_for(p) for p in grid_points]
    contexts = [job_context(r, registry, reporter) for r in run_requests]  # every point checked before training
    first = contexts[0]
    check_executor(request.executor, request.jobs, request.ray_address, int(first.plan.knobs["threads"]))
    if first.plan.recipes[method.id].reuse:
        raise UsageError(f"method '{method.id}' deploys method '{first.plan.recipes[method.id].reuse}''s model; "
                         "sweep that method")
    seed = int(first.plan.knobs["seeds"][0])
    datas = [prepare_data(ctx.plan, r, registry, reporter)[0] for ctx, r in zip(contexts, run_requests)]
    store = first.store
    for ctx in contexts[1:]:
        ctx.store = store  # one store for the sweep, also when it is private (--no-store)

    # the graph: per point a train job and a validate job after it
    todo, inputs, requests, plan = [], {}, {}, []
    for ctx, run_request, data in zip(contexts, run_requests, datas):
        t_in = jobs.train_inputs(ctx, method.id, seed, data.fingerprint)
        train = jobs.Job("train", method.id, seed, jobs.key_of("train", t_in))
        v_in = jobs.validate_inputs(ctx, method.id, seed, corruption, train.key, data.fingerprint, request.max_windows)
        validate = jobs.Job("validate", method.id, seed, jobs.key_of("validate", v_in), corruption.id, (train.key,))
        plan.append((ctx, data, train, t_in, validate, v_in))
        for job, job_inputs in ((train, t_in), (validate, v_in)):
            if job.key not in inputs:
                inputs[job.key] = job_inputs
                requests[job.key] = worker_request(run_request, store.root)
                todo.append(job)
    worker_computed: set[str] = set()
    executor = make_executor(request.executor, request.jobs, request.ray_address, first.device.type,
                             int(first.plan.knobs["threads"]))
    if executor is not None:
        pending = [j for j in todo if store.get(j.kind, j.key, inputs[j.key]) is None]
        reporter.log(f"sweep: {len(pending)} of {len(todo)} jobs to compute on {executor.describe()}")
        with reporter.phase("sweep jobs", total=len(pending)) as rep:
            def on_event(event, outcome):
                if event == "done":
                    rep.advance(outcome.job.name)
                elif event in ("retry", "failed"):
                    reporter.log(f"{outcome.job.name}: {'worker died; again' if event == 'retry' else outcome.error}")
            outcomes = executor.run(requests, pending, inputs, on_event)
        worker_computed = {key for key, o in outcomes.items() if o.computed}
        failed = [o.error for o in outcomes.values() if o.error is not None]
        if failed:
            raise failed[0]

    rows, computed, windows = [], 0, 0
    for point, (ctx, data, train, t_in, validate, v_in) in zip(grid_points, plan):
        label = ", ".join(f"{k}={json.dumps(v)}" for k, v in point.items())
        reporter.log(f"sweep {label}")
        _, trained_now = jobs.ensure(ctx, data, train, t_in, reporter)
        entry, _ = jobs.ensure(ctx, data, validate, v_in, reporter)
        computed += trained_now or train.key in worker_computed
        score = json.loads((entry / "score.json").read_text())
        windows = score["validation_windows"]  # the same subset at every point
        rows.append({"point": point, "value": point[next(iter(point))] if len(point) == 1 else point,
                     "clean_f1": score["clean_f1"], "attack_f1": score["attack_f1"], "score": score["score"],
                     "selected_epochs": score["selected_epochs"], "params": score["params"], "chosen": False})
        reporter.log(f"sweep {label}: clean {score['clean_f1']:.3f}, "
                     + ", ".join(f"{corruption.id} {k} {v:.3f}" for k, v in score["attack_f1"].items())
                     + f", score {score['score']:.4f}")
    best = max(range(len(rows)), key=lambda i: (rows[i]["score"], -i))
    rows[best]["chosen"] = True
    options = first.plan.options
    table = {
        "kind": "restbench-sweep",
        "command": request.command,
        "method": method.id,
        "method_version": str(method.version),
        "grid": request.grid,
        "chosen": rows[best]["point"],
        "score": SCORE_DEFINITION,
        "split": "val",
        "validation_windows": windows,
        "profile": first.plan.knobs["profile"],
        "seed": seed,
        "dataset": {"id": first.plan.dataset.id, "fingerprint": datas[0].fingerprint, "options": options[first.plan.dataset.id]},
        "model": first.plan.model.id,
        "attack": {"corruption": corruption.id, "version": str(corruption.version),
                   "settings": {f"{float(s.value):g}": corruption.settings(s, options[corruption.id])
                                for s in corruption.severities},
                   "unit": corruption.severities[0].unit},
        "knobs": {k: v for k, v in first.plan.knobs.items() if k != "seeds"},
        "rows": rows,
    }
    write_sweep(table, Path(request.out))
    reporter.log(f"sweep: chosen {json.dumps(rows[best]['point'])}; {computed} of {len(rows)} points trained now, "
                 f"the rest from the store; written to {request.out}")
    return {**table, "trained_now": computed}


def chosen_config(table: dict) -> dict:
    """The chosen point as a ``restbench run --config`` file: ``{"ID": {"NAME": value}}``."""
    config: dict[str, dict] = {}
    for target, value in table["chosen"].items():
        plugin, name = target.split(".", 1)
        config.setdefault(plugin, {})[name] = value
    return config


def markdown(table: dict) -> str:
    names = list(table["grid"])
    levels = list(table["attack"]["settings"])
    attack, unit = table["attack"]["corruption"], table["attack"]["unit"]
    head = [*names, "clean F1", *[f"{attack} F1 at {lv} {unit}" for lv in levels], "score", "chosen"]
    lines = [f"# {table['method']}: sweep of {', '.join(names)} on validation", "",
             f"Score: {table['score']}; {table['validation_windows']} validation windows, profile {table['profile']}, "
             f"seed {table['seed']}, dataset {table['dataset']['id']} (fingerprint {table['dataset']['fingerprint']}), "
             f"model {table['model']}.", f"Chosen: **{json.dumps(table['chosen'])}**.", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---:" for _ in head) + "|"]
    for row in table["rows"]:
        cells = [json.dumps(row["point"][n]) for n in names] + [f"{row['clean_f1']:.3f}"]
        cells += [f"{row['attack_f1'][lv]:.3f}" for lv in levels] + [f"{row['score']:.4f}", "yes" if row["chosen"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    if table.get("command"):
        lines += ["", "Made by:", "", "```", table["command"], "```"]
    return "\n".join(lines) + "\n"


def write_sweep(table: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in ((TABLE, json.dumps(table, indent=2) + "\n"), ("sweep.md", markdown(table)),
                       (CHOSEN, json.dumps(chosen_config(table), indent=2) + "\n")):
        with atomic_path(out / name) as tmp:
            Path(tmp).write_text(text)


def from_sweep(folder: Path) -> dict:
    """The chosen options of a finished sweep (``DIR`` or ``DIR/chosen.json``) as ``--set`` pairs."""
    folder = Path(folder)
    path = folder / CHOSEN if folder.is_dir() else folder
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError(f"--from-sweep: {path} is not a sweep's {CHOSEN}; pass the folder restbench sweep "
                         "wrote (--out)") from None
    if not isinstance(config, dict) or not all(isinstance(v, dict) for v in config.values()):
        raise UsageError(f"--from-sweep: {path} does not hold {{\"ID\": {{\"NAME\": value}}}}")
    return {f"{plugin}.{name}": value for plugin, values in config.items() for name, value in values.items()}
