"""Line search of one method option on the validation split (the REST paper's section 4.4).

For every value of ``METHOD.OPTION`` the method is trained exactly as ``restbench run`` trains
it (restbench.run.plan.resolve_plan writes the recipe, restbench.run.steps.train trains,
compresses and retrains), deployed, and scored on validation windows -- never the test split --
by the mean of its clean macro-F1 and its macro-F1 under a white-box attack corruption at each
of that corruption's severities (the registered PGD corruption at 2, 6 and 12 uV, with the
profile's evaluation steps). The value with the highest score is chosen (the first one given
on a tie). The table is written as JSON and Markdown; it holds no timings, so the same seed
gives the same file.

The search sees the prepared data through :class:`WithoutTest`, a view whose test split is
empty-handed: asking it for test windows raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from restbench.data.cache import default_cache_dir
from restbench.deploy.transforms import deploy
from restbench.plugins.contract import UsageError
from restbench.plugins.options import options_of
from restbench.plugins.registry import get_registry
from restbench.records.atomic import atomic_path
from restbench.run import profiles, steps
from restbench.run.allocator import tune_allocator
from restbench.run.plan import RunRequest, prepare_data, resolve_device, resolve_plan
from restbench.run.progress import Reporter
from restbench.run.validation import (
    SCORE_DEFINITION,
    validation_score,
    validation_windows,
)


@dataclass
class SearchRequest:
    """What ``restbench search`` was asked."""

    method: str
    option: str
    values: list[Any]
    out: Path
    profile: str = profiles.DEFAULT_PROFILE
    corruption: str | None = None  # None: the one registered white-box corruption of the paper suite
    dataset: str | None = None
    model: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)  # --set, as for restbench run
    seed: int | None = None  # None: the profile's first seed
    max_windows: int | None = None  # validation windows scored (None: the profile's evaluation budget)
    data_dir: Path | None = None
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    protocol: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    command: str | None = None  # the command line recorded with the table
    quiet: bool = False


def attack_corruption(registry, corruption_id: str | None):
    """The named corruption, or the single registered white-box (model-needing) corruption of the
    paper suite."""
    if corruption_id is not None:
        corruption = registry.get("corruptions", corruption_id, "--corruption")
    else:
        found = [c for c in registry.all("corruptions").values()
                 if getattr(c, "needs_model", False) and getattr(c, "suite", None) == "paper"]
        if len(found) != 1:
            which = ", ".join(c.id for c in found) or "none"
            raise UsageError(f"--corruption: name the attack to score with (white-box paper corruptions: {which})")
        corruption = found[0]
    if not corruption.severities:
        raise UsageError(f"--corruption: corruption '{corruption.id}' has no severities")
    return corruption


def checked_values(registry, method_id: str, option_name: str, values: list[Any]) -> tuple[Any, list[Any]]:
    """The method and ``values`` checked against its declaration of ``option_name``."""
    method = registry.get("methods", method_id, "restbench search METHOD")
    declared = {o.name: o for o in options_of(method)}
    if option_name not in declared:
        valid = ", ".join(declared) or "(none)"
        raise UsageError(f"--option: method '{method_id}' has no option '{option_name}'; valid: {valid}")
    if not values:
        raise UsageError("--values: give at least one value")
    option = declared[option_name]
    checked = [option.check(v, f"--values {method_id}.{option_name}") for v in values]
    if len({json.dumps(v) for v in checked}) != len(checked):
        raise UsageError(f"--values: repeated value in {json.dumps(checked)}")
    return method, checked


def search(request: SearchRequest, console=None) -> dict:
    """Train ``request.method`` at every value of its option, score each on validation, write
    ``request.out`` (JSON) and its Markdown twin (``.md``); return the table."""
    tune_allocator()  # tensor buffers reused from the heap: same numbers, far fewer page faults
    registry = get_registry()
    method, values = checked_values(registry, request.method, request.option, list(request.values))
    target = f"{request.method}.{request.option}"
    if target in request.overrides:
        raise UsageError(f"--set {target}: the search sets this option itself (--values)")
    corruption = attack_corruption(registry, request.corruption)
    seeds = [request.seed] if request.seed is not None else None

    def request_for(value):
        return RunRequest(
            dataset=request.dataset, model=request.model, methods=[method.id], corruptions=[corruption.id],
            runners=[], exporters=[], profile=request.profile, overrides={**request.overrides, target: value},
            seeds=seeds, data_dir=request.data_dir, cache_dir=request.cache_dir, protocol=request.protocol,
            dataset_options=dict(request.dataset_options), quiet=request.quiet, validation_only=True,
        )

    requests = [request_for(v) for v in values]
    plans = [resolve_plan(r, registry) for r in requests]  # every value is resolved and checked before training
    first = plans[0]
    knobs = first.knobs
    seed = int(knobs["seeds"][0])
    device = resolve_device(knobs["device"])
    reporter = Reporter(console, quiet=request.quiet)
    dataset = first.dataset
    # windowed to the model and built with its resolved options below, exactly as restbench run does
    data, _notes = prepare_data(first, requests[0], registry, reporter)

    ends, x, y = validation_windows(data, knobs, request.max_windows)
    batch = int(knobs["corruption_batch_size"])
    corruption_options = first.options[corruption.id]
    levels = [(s, f"{float(s.value):g}") for s in corruption.severities]

    rows, timings = [], []
    for value, plan in zip(values, plans):
        recipe = plan.recipes[method.id]
        if recipe.reuse:
            raise UsageError(f"method '{method.id}' deploys method '{recipe.reuse}''s model; search that method")
        compressor, compressor_options = plan.compressor_of(recipe)
        key = steps.train_key(data.fingerprint, plan.model, plan.options[plan.model.id], method.id,
                              plan.options[method.id], recipe, compressor_options, plan.knobs, seed)
        reporter.log(f"search {target}={json.dumps(value)}: training")
        trained = steps.train(f"{method.id} [{request.option}={value}]", recipe, plan.model, compressor,
                              compressor_options, data, plan.knobs, seed, key, device, reporter, registry,
                              model_options=plan.options[plan.model.id])
        deployed = deploy(trained.net, recipe.test_transforms, data.sfreq).to(device)
        clean, attacked, score = validation_score(deployed, corruption, corruption_options, x, y, data, seed, batch,
                                                  device, registry)
        rows.append({"value": value, "clean_f1": float(clean), "attack_f1": attacked, "score": score,
                     "selected_epochs": [r["selected_epoch"] for r in trained.records],
                     "params": int(sum(p.numel() for p in trained.net.parameters())), "chosen": False})
        timings.append(sum(r["wall_s"] for r in trained.records))
        reporter.log(f"search {target}={json.dumps(value)}: clean {clean:.3f}, "
                     + ", ".join(f"{corruption.id} {k} {v:.3f}" for k, v in attacked.items())
                     + f", score {score:.4f} (trained in {timings[-1]:.0f} s)")
    best = max(range(len(rows)), key=lambda i: (rows[i]["score"], -i))
    rows[best]["chosen"] = True
    table = {
        "kind": "restbench-search",
        "command": request.command,
        "method": method.id,
        "method_version": str(method.version),
        "option": request.option,
        "values": values,
        "chosen": rows[best]["value"],
        "score": SCORE_DEFINITION,
        "split": "val",
        "validation_windows": int(len(ends)),
        "profile": knobs["profile"],
        "seed": seed,
        "dataset": {"id": dataset.id, "fingerprint": data.fingerprint, "options": first.options[dataset.id]},
        "model": first.model.id,
        "attack": {"corruption": corruption.id, "version": str(corruption.version),
                   "settings": {label: corruption.settings(s, corruption_options) for s, label in levels},
                   "unit": corruption.severities[0].unit},
        "knobs": {k: v for k, v in knobs.items() if k != "seeds"},
        "method_options": {k: v for k, v in first.options[method.id].items() if k != request.option},
        "rows": rows,
    }
    write_table(table, Path(request.out))
    return {**table, "train_wall_s": timings}


def markdown(table: dict) -> str:
    """The search table as Markdown (value, clean F1, attack F1 per severity, score, chosen)."""
    attack, unit = table["attack"]["corruption"], table["attack"]["unit"]
    levels = list(table["attack"]["settings"])
    head = ["value", "clean F1", *[f"{attack} F1 at {lv} {unit}" for lv in levels], "score", "chosen"]
    lines = [
        f"# {table['method']}.{table['option']}: line search on validation",
        "",
        f"Score: {table['score']}; {table['validation_windows']} validation windows, profile "
        f"{table['profile']}, seed {table['seed']}, dataset {table['dataset']['id']} "
        f"(fingerprint {table['dataset']['fingerprint']}), model {table['model']}.",
        f"Chosen: **{json.dumps(table['chosen'])}**.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" for _ in head) + "|",
    ]
    for row in table["rows"]:
        cells = [json.dumps(row["value"]), f"{row['clean_f1']:.3f}", *[f"{row['attack_f1'][lv]:.3f}" for lv in levels],
                 f"{row['score']:.4f}", "yes" if row["chosen"] else ""]
        lines.append("| " + " | ".join(cells) + " |")
    if table.get("command"):
        lines += ["", "Made by:", "", "```", table["command"], "```"]
    return "\n".join(lines) + "\n"


def write_table(table: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(table, indent=2) + "\n")
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text(markdown(table))
