"""A run's plan: the request as the user gave it, resolved against the installed plugins.

:func:`resolve_plan` selects the plugins, resolves and checks every core knob and plugin option,
and collects each method's recipe before anything is written; :func:`prepare_data` prepares the
dataset the way the plan says (windowed to what the model declares). The driver
(:mod:`restbench.run.pipeline`), pool and Ray workers (:mod:`restbench.run.executors`) and the
studies all start from here, so each sees the same plan for the same request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from restbench.data.sleep_data import SleepData
from restbench.errors import did_you_mean
from restbench.plugins.contract import (
    DatasetOptions,
    MethodContext,
    ModelInput,
    PluginError,
    Recipe,
    UsageError,
    model_input,
)
from restbench.plugins.options import deviations as option_deviations
from restbench.plugins.options import options_of, resolve_options
from restbench.run import eval_sets as evaluation_sets
from restbench.run import profiles, steps
from restbench.run.guard import guarded
from restbench.run.validation import WithoutTest
from restbench.settings import default_cache_dir
from restbench.training.precision import resolve_precision


@dataclass
class RunRequest:
    """Everything ``restbench run`` was asked, before resolution."""

    dataset: str | None = None  # None: the installed dataset marked default
    model: str | None = None  # None: the installed model marked default
    methods: str | list[str] = "all"
    corruptions: str | list[str] = "all"
    runners: str | list[str] | None = None  # None: the runners marked default
    exporters: str | list[str] | None = None  # None: the exporters marked default
    profile: str = profiles.DEFAULT_PROFILE
    overrides: dict[str, Any] = field(default_factory=dict)  # --set: knob or ID.NAME -> value
    config_file: Path | None = None
    seeds: list[int] | None = None
    data_dir: Path | None = None
    cache_dir: Path = field(default_factory=lambda: default_cache_dir())
    protocol: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    skip_bad: bool = False
    allow_download: bool = False
    run_dir: Path = Path("runs/latest")
    resume: bool = False
    allow_extend: bool = False  # with resume: add methods, seeds or corruptions, never change existing ones
    keep_going: bool = False  # a plugin failure is recorded and the rest of the run continues
    # False: never train; every model loads from its checkpoint in run_dir and a missing or unusable
    # one is an error (restbench reproduce re-evaluates a run's stored models this way)
    train: bool = True
    quiet: bool = False
    # the shared job store (restbench.run.store): None = RESTBENCH_STORE or CACHE_DIR/store;
    # use_store False: a private store removed after the run (nothing shared, nothing reused)
    store: Path | None = None
    use_store: bool = True
    jobs: int | str = 1  # >1: jobs run on a process pool of that many workers; "auto": cores / threads
    executor: str = "local"  # local (in this process, or a pool with jobs > 1) or ray
    ray_address: str | None = None  # executor ray: an existing cluster (None starts a local one)
    # a sweep's view of the data: asking for test windows raises (restbench.run.validation.WithoutTest)
    validation_only: bool = False
    max_validation_windows: int | None = None  # a sweep's scored validation windows (None: max_test_windows)
    # other datasets every trained model is also evaluated on (restbench.run.eval_sets)
    eval_sets: list[evaluation_sets.EvalSetRequest] = field(default_factory=list)


def order_methods(methods: list, recipes: dict[str, Recipe]) -> list:
    """Methods that reuse another selected method's model come after it."""
    done, ordered = set(), []
    pending = list(methods)
    selected = {m.id for m in methods}
    while pending:
        progressed = False
        for m in list(pending):
            source = recipes[m.id].reuse
            if source is None or source in done or source not in selected:  # an unselected source trains on demand
                ordered.append(m)
                done.add(m.id)
                pending.remove(m)
                progressed = True
        if not progressed:
            raise PluginError(f"methods {[m.id for m in pending]} reuse each other in a cycle")
    return ordered


@dataclass
class Plan:
    """A request resolved against the installed plugins and checked, before anything is written."""

    knobs: dict[str, Any]
    dataset: Any
    model: Any
    methods: list
    corruptions: list
    exporters: list
    runners: list
    recipes: dict[str, Recipe]
    compressors: dict[str, Any]
    options: dict[str, dict[str, Any]]  # plugin id -> its resolved options
    deviations: list[str]
    participants: list  # every plugin object the run uses (reused methods and compressors included)
    model_input: ModelInput = field(default_factory=ModelInput)  # what the model declares it takes
    width_applied: bool = True  # the core width knob reached the model (it declares a width option)
    methods_by_id: dict[str, Any] = field(default_factory=dict)  # selected and reused methods
    eval_sets: list[evaluation_sets.EvalSet] = field(default_factory=list)  # other datasets evaluated on

    def compressor_of(self, recipe: Recipe) -> tuple[Any, dict | None]:
        """The recipe's compressor and its options (the compressor's resolved ones, then the recipe's)."""
        if not recipe.compressor:
            return None, None
        compressor = self.compressors[recipe.compressor]
        return compressor, {**self.options[compressor.id], **recipe.compressor_options}

    def trained_source(self, method_id: str) -> str:
        """The method whose training ``method_id`` deploys (Blanco deploys Liu's model)."""
        recipe = self.recipes[method_id]
        return self.trained_source(recipe.reuse) if recipe.reuse else method_id


def _select(registry, kind: str, ids, option: str) -> list:
    """Objects for ``ids`` (a list, a comma-separated string, ``all``), or the defaults when None."""
    if ids is None:
        return registry.defaults(kind)
    return registry.resolve(kind, ids, option)


def _recipe(method, context: MethodContext, registry) -> Recipe:
    """The method's recipe; a plugin that fails here is named, with its distribution."""
    with guarded(method, "methods", "recipe()", registry):
        recipe = method.recipe(context)
    if not isinstance(recipe, Recipe):
        raise PluginError(f"method '{method.id}': recipe() must return a restbench.api.Recipe, got {type(recipe).__name__}")
    return recipe


def resolve_plan(request: RunRequest, registry) -> Plan:
    """Select the plugins, resolve and check every core knob and plugin option, write each
    selected method's recipe. Raises UsageError (one line) on anything bad."""
    layers = [(f"--config {request.config_file}", profiles.load_config(request.config_file))] if request.config_file else []
    layers.append(("--set", dict(request.overrides)))
    dataset = registry.get("datasets", request.dataset or registry.default_id("datasets", "--dataset"), "--dataset")
    if request.dataset_options:
        layers.append(("--dataset-option", {f"{dataset.id}.{k}": v for k, v in request.dataset_options.items()}))
    core, per_plugin = profiles.split_settings(layers)
    if request.seeds is not None:
        core["seeds"] = ("--seeds", list(request.seeds))
    knobs = profiles.resolve(request.profile, core)
    # recorded resolved, so a resume on a machine where `auto` picks otherwise is refused
    knobs["precision"] = resolve_precision(knobs["precision"], resolve_device(knobs["device"]).type)
    model = registry.get("models", request.model or registry.default_id("models", "--model"), "--model")
    methods = registry.resolve("methods", request.methods, "--methods")
    if not methods:
        raise UsageError("--methods: no method selected")
    corruptions = registry.resolve("corruptions", request.corruptions, "--corruptions")
    exporters = _select(registry, "exporters", request.exporters, "--exporters") if knobs["export"] else []
    runners = _select(registry, "runners", request.runners, "--runners")

    selected = {m.id: m for m in methods}
    options: dict[str, dict[str, Any]] = {}

    def resolve_for(obj) -> dict:
        values = resolve_options(options_of(obj), request.profile, per_plugin.get(obj.id, {}), obj.id)
        options[obj.id] = values
        return values

    for obj in [dataset, model, *methods, *corruptions, *exporters, *runners]:
        resolve_for(obj)
    # Only the selected methods write recipes; one that deploys another's model brings it along.
    recipes: dict[str, Recipe] = {}
    order = list(selected.values())
    while order:
        method = order.pop(0)
        context = MethodContext(dataset=dataset.id, profile=knobs, options=options[method.id])
        recipe = recipes[method.id] = _recipe(method, context, registry)
        if recipe.reuse and recipe.reuse not in selected:
            selected[recipe.reuse] = registry.get("methods", recipe.reuse, f"method '{method.id}' reuses")
            resolve_for(selected[recipe.reuse])
            order.append(selected[recipe.reuse])
    compressors = {}
    for method_id, recipe in recipes.items():
        if recipe.compressor and recipe.compressor not in compressors:
            compressor = registry.get("compressors", recipe.compressor, f"method '{method_id}' compressor")
            compressors[compressor.id] = compressor
            resolve_for(compressor)
    unused = sorted(set(per_plugin) - set(options))
    if unused:
        where, _ = next(iter(per_plugin[unused[0]].values()))
        known = any(unused[0] in registry.all(kind) for kind in registry.objects)
        installed = [oid for kind in registry.objects for oid in registry.all(kind)]
        why = ("is not part of this run (select it, or drop the setting)" if known
               else "is not an installed plugin or core knob" + did_you_mean(unused[0], installed))
        raise UsageError(f"{where}: '{unused[0]}' {why}; plugins in this run: {', '.join(options)}")
    eval_sets = evaluation_sets.resolve(list(request.eval_sets), registry, request.profile)
    participants = [dataset, model, *selected.values(), *corruptions, *compressors.values(), *exporters, *runners]
    participants += list({s.dataset.id: s.dataset for s in eval_sets if s.dataset.id != dataset.id}.values())
    # The core width knob reaches only a model that declares a width option (unless set as MODEL.width).
    width_applied = any(o.name == "width" for o in options_of(model))
    if width_applied and "width" not in per_plugin.get(model.id, {}):
        options[model.id]["width"] = float(knobs["width"])
    # the model's width line says it (with the model's name); unapplied, the knob changed nothing
    deviation_lines = [line for line in profiles.deviations(knobs) if not line.startswith("width:")]
    for obj in participants:
        if obj.id in options:
            deviation_lines += option_deviations(options_of(obj), options[obj.id], prefix=f"{obj.id}.")
    for eval_set in eval_sets:
        deviation_lines += option_deviations(options_of(eval_set.dataset), eval_set.options,
                                             prefix=f"evaluation set {eval_set.name}: {eval_set.dataset.id}.")
    contract = model_input(model, options[model.id])
    steps.check_compressors(model, options[model.id], contract, recipes, compressors, registry)
    return Plan(knobs=knobs, dataset=dataset, model=model, methods=methods, corruptions=corruptions,
                exporters=exporters, runners=runners, recipes=recipes, compressors=compressors, options=options,
                deviations=deviation_lines, participants=participants, model_input=contract,
                width_applied=width_applied, methods_by_id=dict(selected), eval_sets=eval_sets)




def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when it is available; anything else must name a usable device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--set device: unknown device '{name}'; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--set device: CUDA is not available on this machine; use auto or cpu")
    return device


def prepare_data(plan: Plan, request: RunRequest, registry: Any, reporter: Any) -> tuple[SleepData, list[str]]:
    """The plan's dataset prepared and windowed to what its model declares, and the notes a run
    records about it (width not applied, inputs skipped). A reference method that cannot stage
    this data is refused here; a validation-only request sees no test split."""
    options = DatasetOptions(
        data_dir=request.data_dir, cache_dir=request.cache_dir, seed=0, protocol=request.protocol,
        n_subjects=plan.knobs.get("n_subjects"), skip_bad=request.skip_bad, allow_download=request.allow_download,
        extra=plan.options[plan.dataset.id],
    )
    reporter.log(f"preparing dataset {plan.dataset.id}")
    data = steps.fit_to_model(steps.prepare_data(plan.dataset, options, registry), plan.model, plan.model_input)
    for method_id, recipe in plan.recipes.items():  # a reference that cannot stage this data: refuse now
        if recipe.reference is not None:
            ok, why = recipe.reference.available(float(data.sfreq))
            if not ok:
                raise UsageError(f"--methods: method '{method_id}' cannot run on dataset '{plan.dataset.id}': {why}")
    notes = []
    if not plan.width_applied:
        notes.append(f"width {plan.knobs['width']:g} not applied: model '{plan.model.id}' declares no width option")
    for item in data.info.get("skipped") or []:
        notes.append(f"skipped input {item.get('file')}: {item.get('reason')}")
    return (WithoutTest(data) if request.validation_only else data), notes
