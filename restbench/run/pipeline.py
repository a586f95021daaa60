"""From (dataset, model, methods, seeds) to a finished run directory.

Data flows one way: dataset -> model -> method (train, compress, retrain) -> evaluation under
every corruption -> efficiency (size, FLOPs, export, latency) -> results -> summary. Trained
models are keyed by a hash of everything that determines them, so work shared between
methods (Blanco deploys Liu's model) runs once and an interrupted run resumes with
``--resume``: finished checkpoints and result cells are reused, nothing computed is lost.
"""

from __future__ import annotations

import copy
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from restbench.run import profiles
from restbench.run.checkpoints import load_checkpoint, save_checkpoint
from restbench.api import Artifact, DatasetOptions, MethodContext, PluginError, Recipe, UsageError
from restbench.data.sleep_data import SleepData, fingerprint
from restbench.evaluation.metrics import bootstrap_ci, classification_metrics, per_subject_macro_f1
from restbench.plugins.registry import get_registry
from restbench.run.progress import Reporter
from restbench.run.results import SCHEMA_VERSION, RunDir, provenance
from restbench.training.selection import predict
from restbench.training.loop import subsample, train_phase
from restbench.deploy.transforms import deploy

# Knobs that only change evaluation or measurement, not the trained weights.
EVAL_ONLY_KNOBS = {
    "max_test_windows", "pgd_eval_steps", "pgd_eval_restarts", "corruption_batch_size",
    "bootstrap_samples", "export", "int8_robustness", "export_check_windows",
    "calibration_windows", "latency_repetitions", "latency_threads", "windows_per_night", "latency_night_windows",
    "runners", "seeds", "description", "profile",
}


@dataclass
class RunRequest:
    """Everything ``restbench run`` was asked, before resolution."""

    dataset: str = "sleep-synth"
    model: str = "sors2018"
    methods: str | list[str] = "all"
    corruptions: str | list[str] = "all"
    runners: str | list[str] | None = None  # None: the profile's runners
    profile: str = profiles.DEFAULT_PROFILE
    overrides: dict[str, Any] = field(default_factory=dict)
    config_file: Path | None = None
    seeds: list[int] | None = None
    data_dir: Path | None = None
    cache_dir: Path = Path(".restbench-cache")
    protocol: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    skip_bad: bool = False
    allow_download: bool = False
    run_dir: Path = Path("runs/latest")
    resume: bool = False
    quiet: bool = False


@dataclass
class TrainedModel:
    """A trained (maybe compressed and retrained) network of one method and seed."""

    key: str
    net: torch.nn.Module
    spec: dict
    records: list[dict]
    compression: dict | None


def order_methods(methods: list, recipes: dict[str, Recipe]) -> list:
    """Methods that reuse another's model come after it (and the source must be selected or registered)."""
    done, ordered = set(), []
    pending = list(methods)
    while pending:
        progressed = False
        for m in list(pending):
            source = recipes[m.id].reuse
            if source is None or source in done or source not in recipes:
                ordered.append(m)
                done.add(m.id)
                pending.remove(m)
                progressed = True
        if not progressed:
            raise PluginError(f"methods {[m.id for m in pending]} reuse each other in a cycle")
    return ordered


class Pipeline:
    """Executes one :class:`RunRequest` into a run directory."""

    def __init__(self, request: RunRequest, console=None):
        self.request = request
        self.registry = get_registry()
        self.knobs = profiles.resolve(request.profile, request.overrides, request.config_file)
        if request.seeds is not None:
            self.knobs["seeds"] = list(request.seeds)
        self.dataset = self.registry.get("datasets", request.dataset, "--dataset")
        self.model = self.registry.get("models", request.model, "--model")
        self.methods = self.registry.resolve("methods", request.methods, "--methods")
        self.corruptions = self.registry.resolve("corruptions", request.corruptions, "--corruptions")
        runner_ids = request.runners if request.runners is not None else self.knobs["runners"]
        self.runners = self.registry.resolve("runners", runner_ids, "--runners") if runner_ids else []
        if not self.methods:
            raise UsageError("--methods: no method selected")
        self.context = MethodContext(dataset=self.dataset.id, profile=self.knobs)
        self.recipes = {m.id: m.recipe(self.context) for m in self.registry.all("methods").values()}
        for m in self.methods:
            if self.recipes[m.id].reuse and self.recipes[m.id].reuse not in self.recipes:
                raise PluginError(f"method '{m.id}' reuses unknown method '{self.recipes[m.id].reuse}'")
            if self.recipes[m.id].compressor:
                self.registry.get("compressors", self.recipes[m.id].compressor, f"method '{m.id}' compressor")
        self.deviations: list[str] = profiles.deviations(self.knobs)
        self.notes: list[str] = []
        self.device = resolve_device(self.knobs["device"])
        if self.knobs.get("int8_robustness") not in ("all", "paper", False, None):
            raise UsageError(f"--set int8_robustness: expected \"all\", \"paper\" or false, got {self.knobs['int8_robustness']!r}")
        self.trained: dict[str, TrainedModel] = {}
        self.export_failures: list[str] = []  # recorded, then reported as an error once all is written
        self.console = console
        self.run: RunDir | None = None
        self.reporter: Reporter | None = None

    # ------------------------------------------------------------------ top level

    def execute(self) -> RunDir:
        req = self.request
        run_dir = Path(req.run_dir)
        if (run_dir / "results.jsonl").exists() and not req.resume:
            raise UsageError(f"--run-dir: {run_dir} already holds results; pass --resume to continue it or choose another --name")
        self.run = RunDir(run_dir)
        self.reporter = Reporter(self.console, quiet=req.quiet, log_path=self.run.path / "log.txt")
        self.reporter.log(f"restbench run: dataset={self.dataset.id} profile={self.knobs['profile']} "
                          f"methods={','.join(m.id for m in self.methods)} seeds={self.knobs['seeds']}")
        data = self.prepare_data()
        run_info = self.run_info(data, status="running")
        self.run.write_run(run_info)
        self.done = self.finished_cells() if req.resume else set()
        try:
            for seed in self.knobs["seeds"]:
                for method in order_methods(self.methods, self.recipes):
                    self.run_method(data, method, int(seed))
        except BaseException:
            run_info["status"] = "failed"
            run_info["notes"] = self.notes
            self.run.write_run(run_info)
            raise
        run_info["status"] = "complete"
        for failure in self.export_failures:
            self.notes.append(f"export check failed: {failure}")
        run_info["notes"] = self.notes
        run_info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.run.write_run(run_info)
        return self.run

    def prepare_data(self) -> SleepData:
        req = self.request
        options = DatasetOptions(
            data_dir=req.data_dir, cache_dir=req.cache_dir, seed=0, protocol=req.protocol,
            n_subjects=self.knobs.get("n_subjects"), skip_bad=req.skip_bad, allow_download=req.allow_download,
            extra=self.dataset_extra(),
        )
        self.reporter.log(f"preparing dataset {self.dataset.id}")
        data = self.dataset.prepare(options)
        skipped = data.info.get("skipped") or []
        for item in skipped:
            self.notes.append(f"skipped input {item.get('file')}: {item.get('reason')}")
        return data

    def dataset_extra(self) -> dict:
        """Dataset options: the dataset's own defaults for this profile, then the profile's
        ``dataset_options``, then ``--dataset-option`` (later wins)."""
        per_profile = getattr(self.dataset, "profile_options", {}) or {}
        return {**per_profile.get(self.knobs["profile"], {}), **self.knobs.get("dataset_options", {}),
                **self.request.dataset_options}

    def run_info(self, data: SleepData, status: str) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "name": Path(self.request.run_dir).name,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": {
                **self.knobs,
                "dataset": self.dataset.id,
                "model": self.model.id,
                "protocol": self.request.protocol,
                "dataset_options_resolved": self.dataset_extra(),
            },
            "seeds": [int(s) for s in self.knobs["seeds"]],
            "methods": [m.id for m in self.methods],
            "method_recipes": {m.id: {**self.recipes[m.id].to_dict(), "description": self.recipes[m.id].description or m.description}
                               for m in self.methods},
            "corruptions": [c.id for c in self.corruptions],
            "runners": [r.id for r in self.runners],
            "dataset": data.describe(),
            "provenance": provenance(self.registry),
            "status": status,
            "deviations": self.deviations,
            "notes": self.notes,
        }

    def finished_cells(self) -> set[tuple]:
        return {self.cell_key(r) for r in self.run.records()}

    @staticmethod
    def cell_key(record: dict) -> tuple:
        return (record.get("record_type"), record.get("method"), record.get("seed"), record.get("corruption"),
                record.get("severity"), record.get("variant"), record.get("runner"), record.get("phase"))

    def base_record(self, method: str, seed: int, trained: TrainedModel, record_type: str) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "record_type": record_type,
            "dataset": self.dataset.id,
            "model": self.model.id,
            "method": method,
            "compressor": self.recipes[method].compressor or self.recipes.get(self.recipes[method].reuse or "", Recipe()).compressor,
            "seed": seed,
            "profile": self.knobs["profile"],
            "job_key": trained.key,
        }

    def emit(self, record: dict) -> None:
        if self.cell_key(record) in self.done:
            return
        self.run.append(record)
        self.done.add(self.cell_key(record))

    # ------------------------------------------------------------------ training

    def train_key(self, method_id: str, data: SleepData, seed: int) -> str:
        recipe = self.recipes[method_id]
        knobs = {k: v for k, v in self.knobs.items() if k not in EVAL_ONLY_KNOBS}
        training = {k: v for k, v in recipe.to_dict().items() if k != "test_transforms"}
        return fingerprint("train", data.fingerprint, self.model.id, self.model.version, training, knobs, seed)

    def trained_model(self, method_id: str, data: SleepData, seed: int) -> TrainedModel:
        recipe = self.recipes[method_id]
        if recipe.reuse:
            return self.trained_model(recipe.reuse, data, seed)
        key = self.train_key(method_id, data, seed)
        if key in self.trained:
            return self.trained[key]
        path = self.run.artifacts / "models" / f"{method_id}-seed{seed}-{key}.pt"
        if path.exists():
            net, spec, meta = load_checkpoint(path, self.registry)
            net.to(self.device)
            trained = TrainedModel(key, net, spec, meta["records"], meta["compression"])
            self.reporter.log(f"{method_id} seed {seed}: reusing trained model {path.name}")
        else:
            trained = self.train_method(method_id, recipe, data, seed, key)
            save_checkpoint(path, self.model.id, trained.spec, trained.net, method=method_id, seed=seed,
                            dataset=self.dataset.id, dataset_options=self.dataset_extra(),
                            data_dir=str(self.request.data_dir) if self.request.data_dir else None, key=key, knobs=self.knobs, records=trained.records,
                            compression=trained.compression)
        self.trained[key] = trained
        return trained

    def train_method(self, method_id: str, recipe: Recipe, data: SleepData, seed: int, key: str) -> TrainedModel:
        torch.manual_seed(seed)
        net, spec = self.model.build(data.n_times, data.sfreq, 5, width=float(self.knobs["width"]))
        net.to(self.device)
        records: list[dict] = []
        compression = None
        if recipe.train is not None:
            records.append(self.run_phase(net, data, recipe.train, seed, method_id, "train",
                                          int(self.knobs["epochs"]), self.knobs["lr_milestones"]))
        if recipe.compressor:
            compressor = self.registry.get("compressors", recipe.compressor)
            options = {"sparsity": self.knobs["prune_sparsity"], **recipe.compressor_options}
            net, spec, report = compressor.compress(net, spec, self.model, options)
            compression = {"compressor": compressor.id, "params_before": report.params_before,
                           "params_after": report.params_after, "kept_channels": report.kept_channels,
                           "details": report.details, "options": options}
            self.reporter.log(f"{method_id} seed {seed}: {compressor.id} kept {report.params_after:,} of "
                              f"{report.params_before:,} parameters")
        if recipe.retrain is not None:
            records.append(self.run_phase(net, data, recipe.retrain, seed + 1000, method_id, "retrain",
                                          int(self.knobs["retrain_epochs"]), self.knobs["retrain_lr_milestones"]))
        return TrainedModel(key, net, spec, records, compression)

    def run_phase(self, net, data, phase, seed, method_id, name, epochs, milestones) -> dict:
        batches = max(1, min(len(data.windows("train")), self.knobs["max_train_windows"] or 10**12) // int(self.knobs["batch_size"]))
        with self.reporter.phase(f"{method_id} {name}", total=epochs * batches) as rep:
            result = train_phase(net, data, phase, self.knobs, seed, epochs, milestones, progress=rep.training_callback)
        self.reporter.log(f"{method_id} {name}: kept epoch {result.selected_epoch} by {result.selection_criterion} "
                          f"= {result.selection_score:.4f} ({result.wall_s:.1f} s)")
        return {"phase": name, "selected_epoch": result.selected_epoch, "selection_criterion": result.selection_criterion,
                "selection_score": result.selection_score, "epochs": epochs, "history": result.history,
                "wall_s": result.wall_s}

    # ------------------------------------------------------------------ evaluation

    def run_method(self, data: SleepData, method, seed: int) -> None:
        recipe = self.recipes[method.id]
        trained = self.trained_model(method.id, data, seed)
        for rec in trained.records:
            self.emit({**self.base_record(method.id, seed, trained, "training"), **rec,
                       "reused_from": recipe.reuse})
        deployed = deploy(trained.net, recipe.test_transforms, data.sfreq).to(self.device)
        # export, FLOP counting and CPU runners see a CPU copy; evaluation runs where training ran
        on_cpu = deployed if self.device.type == "cpu" else copy.deepcopy(deployed).cpu()
        int8_path = self.measure_efficiency(data, method.id, seed, trained, on_cpu)
        self.evaluate(data, method.id, seed, trained, deployed, int8_path)

    def test_set(self, data: SleepData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        # One fixed test subset for every method and seed, so cells are paired across methods.
        ends = subsample(data.windows("test"), self.knobs.get("max_test_windows"), np.random.default_rng([0, 3]))
        x, y = data.get(ends)
        subjects = np.array([data.recording_subject[r] for r in data.recording[ends]])
        return ends, x, y, subjects

    def corruption_cells(self):
        yield None, None
        for corruption in self.corruptions:
            for severity in corruption.severities:
                yield corruption, severity

    def evaluate(self, data, method_id, seed, trained, deployed, int8_path) -> None:
        ends, x, y, subjects = self.test_set(data)
        eval_options = {"pgd_steps": int(self.knobs["pgd_eval_steps"]),
                        "pgd_restarts": int(self.knobs["pgd_eval_restarts"])}
        batch = int(self.knobs["corruption_batch_size"])
        variants = ["torch"]
        int8_mode = self.knobs.get("int8_robustness")
        if int8_path is not None and int8_mode:
            variants.append("tflite-int8")
        predictions: dict[str, np.ndarray] = {"true": y, "window_end": ends, "subject": subjects}
        cells = list(self.corruption_cells())
        with self.reporter.phase(f"{method_id} evaluate", total=len(cells)) as rep:
            for corruption, severity in cells:
                name = "clean" if corruption is None else corruption.id
                level = 0 if severity is None else severity.level
                wanted = [v for v in variants if (("robustness", method_id, seed, name, level, v, None, None) not in self.done)
                          and (v == "torch" or int8_mode == "all" or corruption is None or corruption.suite == "paper")]
                if not wanted:
                    rep.advance(name)
                    continue
                xc = x if corruption is None else self.corrupt(corruption, severity, x, y, deployed, data, seed, eval_options, batch)
                for variant in wanted:
                    if variant == "torch":
                        pred = predict(deployed, xc, batch)
                    else:
                        from restbench.deploy.export import predict_tflite

                        pred = predict_tflite(int8_path, xc).argmax(1)
                    predictions[f"{variant}/{name}/{level}"] = pred.astype(np.int8)
                    self.emit(self.robustness_record(method_id, seed, trained, corruption, severity, variant,
                                                     y, pred, subjects, eval_options))
                rep.advance(name)
        out = self.run.artifacts / "predictions" / f"{method_id}-seed{seed}.npz"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp.npz")
        np.savez_compressed(tmp, **predictions)
        tmp.replace(out)

    def corrupt(self, corruption, severity, x, y, deployed, data, seed, options, batch) -> np.ndarray:
        """Corrupt the test windows batch by batch with noise that depends only on (seed, corruption,
        level, batch): every method sees the same noise, so comparisons are paired."""
        tag = zlib.crc32(corruption.id.encode())
        out = np.empty_like(x)
        for b, start in enumerate(range(0, len(x), batch)):
            rng = np.random.default_rng([seed, tag, severity.level, b])
            xb = torch.from_numpy(x[start : start + batch])
            yb = torch.from_numpy(y[start : start + batch])
            model = None
            if corruption.needs_model:  # white-box: run where the model is
                model, xb, yb = deployed, xb.to(self.device), yb.to(self.device)
            xc = corruption.apply(xb, severity, data.stats, rng, y=yb, model=model, sfreq=data.sfreq, options=options)
            out[start : start + batch] = xc.detach().cpu().numpy()
        return out

    def robustness_record(self, method_id, seed, trained, corruption, severity, variant, y, pred, subjects, options) -> dict:
        metrics = classification_metrics(y, pred)
        lo, hi = bootstrap_ci(y, pred, subjects, n_boot=int(self.knobs["bootstrap_samples"]), seed=seed)
        settings = {} if corruption is None else corruption.settings(severity, options)
        if variant != "torch" and corruption is not None and corruption.needs_model:
            settings = {**settings, "transfer": "crafted on the PyTorch model, evaluated on the int8 TFLite model"}
        return {
            **self.base_record(method_id, seed, trained, "robustness"),
            "corruption": "clean" if corruption is None else corruption.id,
            "severity": 0 if severity is None else severity.level,
            "severity_name": "clean" if severity is None else severity.name,
            "severity_value": None if severity is None else float(severity.value),
            "severity_unit": None if severity is None else severity.unit,
            "suite": "clean" if corruption is None else corruption.suite,
            "corruption_settings": settings,
            "variant": variant,
            **metrics,
            "per_subject_macro_f1": per_subject_macro_f1(y, pred, subjects),
            "macro_f1_ci95": [float(lo), float(hi)],
        }

    # ------------------------------------------------------------------ efficiency

    def measure_efficiency(self, data, method_id, seed, trained, deployed) -> Path | None:
        """Static measures, TFLite export (fp32 + int8, each checked, when the ``export`` knob is
        on) and latency per runner; returns the int8 graph's path when there is one."""
        from restbench.deploy.efficiency import efficiency_report

        shape = (1, 1, data.n_times)
        report = efficiency_report(deployed, shape, windows_per_night=int(self.knobs["windows_per_night"]))
        record = {**self.base_record(method_id, seed, trained, "efficiency"), **report,
                  "input_shape": list(shape), "kept_channels": (trained.compression or {}).get("kept_channels") or {},
                  "tflite_fp32_size_kb": None, "tflite_int8_size_kb": None, "export_check": None}
        fp32 = int8 = None
        if self.knobs["export"]:
            try:
                fp32, int8, checks = self.export(data, method_id, seed, trained, deployed)
                record["tflite_fp32_size_kb"] = fp32.stat().st_size / 1024
                record["tflite_int8_size_kb"] = int8.stat().st_size / 1024
                record["export_check"] = checks
            except ImportError as exc:
                self.note_once(f"TFLite export skipped: {exc} (install restbench[tflite])")
        self.emit(record)
        artifact = Artifact(name=f"{method_id}-seed{seed}", module=deployed, tflite_fp32=fp32, tflite_int8=int8,
                            input_shape=shape)
        for runner in self.runners:
            ok, reason = runner.available()
            if not ok:
                self.note_once(f"runner {runner.id} unavailable: {reason}")
                continue
            options = {"repetitions": int(self.knobs["latency_repetitions"]), "threads": int(self.knobs["latency_threads"]),
                       "windows_per_night": int(self.knobs["windows_per_night"]),
                       "night_windows": self.knobs["latency_night_windows"]}
            try:
                reports = runner.measure(artifact, options)
            except PluginError as exc:  # e.g. a TFLite runner with export switched off
                self.note_once(f"runner {runner.id} skipped for {artifact.name}: {exc}")
                continue
            for lat in reports:
                self.emit({**self.base_record(method_id, seed, trained, "latency"), **_plain(lat)})
        return int8

    def export(self, data, method_id, seed, trained, deployed):
        from restbench.deploy.export import export_checked

        rng = np.random.default_rng([seed, 5])
        calib_x, _ = data.get(subsample(data.windows("train"), int(self.knobs["calibration_windows"]), rng))
        check_x, _ = data.get(subsample(data.windows("val"), int(self.knobs["export_check_windows"]), rng))
        files = export_checked(deployed, calib_x, check_x, self.run.artifacts / "tflite",
                               f"{method_id}-seed{seed}-{trained.key}", reuse=True)
        checks = {name: f["check"] for name, f in files.items()}
        for name, check in checks.items():
            if not check["passed"]:
                self.export_failures.append(f"{method_id} seed {seed} {name}: max abs diff {check['max_abs_diff']:.3g}, "
                                            f"top-1 agreement {check['top1_agreement']:.3f}")
        return Path(files["fp32"]["path"]), Path(files["int8"]["path"]), checks

    def note_once(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)
            self.reporter.log(note)


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


def _plain(obj) -> dict:
    from dataclasses import asdict

    return asdict(obj)


@dataclass
class RunResult:
    """A finished run: its directory and the summary tables written there."""

    run_dir: RunDir
    tables: dict


def run(request: RunRequest, console=None) -> RunResult:
    """Run a benchmark and write its summary (summary.md, summary.csv)."""
    from restbench.report.summary import write_summary

    pipeline = Pipeline(request, console)
    run_dir = pipeline.execute()
    result = RunResult(run_dir, write_summary(run_dir.path))
    if pipeline.export_failures:
        raise PluginError(f"TFLite export check failed ({'; '.join(pipeline.export_failures)}); "
                          f"results are kept in {run_dir.path}")
    return result
