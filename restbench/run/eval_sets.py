"""Evaluation sets: a run's trained models evaluated on other datasets.

A lab trains on Sleep-EDF or the embedded data and tests on its own recordings:
``--eval-dataset ID[,name=LABEL][,data_dir=PATH][,protocol=P][,n_subjects=N][,split=all|test][,OPTION=VALUE...]``
adds dataset ``ID`` as one more set every trained model of the run is evaluated on, under every
corruption, with the same records (tagged ``eval_set: LABEL``), intervals and paired tests.

What an evaluation set is (docs/PROTOCOL.md, "Evaluating on another dataset"):

- its windows: every window of the dataset (``split=all``, the default: the models saw none of
  it), or only the dataset's own test split (``split=test``);
- its corruption statistics (Gaussian sigma, shot-noise range, PGD clip bounds) are the training
  dataset's, so each noise is the same in microvolts as in the run's own cells and a difference
  between the sets is the data's, not the noise's;
- the data meets the model's input contract (sampling rate, channels, window length) through the
  dataset's own options (e.g. edf-folder's ``sfreq`` and ``channel``); where it cannot, a one-line
  error names the set and the option to change, before anything trains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from restbench.data.sleep_data import SleepData, fingerprint
from restbench.plugins.contract import DatasetOptions, PluginError, UsageError
from restbench.plugins.options import options_of, parse_value, resolve_options
from restbench.run import steps
from restbench.run.guard import PluginFailure

SPLITS = ("all", "test")
#: Spec keys that are not dataset options.
SPEC_KEYS = ("name", "data_dir", "protocol", "n_subjects", "split")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
OPTION = "--eval-dataset"


@dataclass(frozen=True)
class EvalSetRequest:
    """One ``--eval-dataset`` as given: a dataset id, where its files are, and its options."""

    dataset: str
    name: str | None = None  # None: the dataset id
    data_dir: Path | None = None
    protocol: str | None = None
    n_subjects: int | None = None  # None: every subject the dataset (protocol) has
    split: str = "all"
    options: dict[str, Any] = field(default_factory=dict)  # the dataset's options (typed when resolved)

    @classmethod
    def parse(cls, text: str) -> EvalSetRequest:
        """``ID[,KEY=VALUE...]``: the keys of :data:`SPEC_KEYS`, any other key a dataset option."""
        parts = [p.strip() for p in str(text).split(",")]
        if not parts[0] or "=" in parts[0]:
            raise UsageError(f"{OPTION} '{text}': start with a dataset id (restbench list datasets), e.g. "
                             "edf-folder,data_dir=PATH")
        spec: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for part in parts[1:]:
            if "=" not in part:
                raise UsageError(f"{OPTION} '{text}': expected KEY=VALUE after the dataset id, got '{part}'")
            key, value = (s.strip() for s in part.split("=", 1))
            if key in spec or key in options:
                raise UsageError(f"{OPTION} '{text}': '{key}' is given twice")
            if key in SPEC_KEYS:
                spec[key] = value
            else:
                options[key] = parse_value(value)
        n_subjects = spec.get("n_subjects")
        if n_subjects is not None and (not n_subjects.isdigit() or int(n_subjects) < 1):
            raise UsageError(f"{OPTION} '{text}': n_subjects must be a whole number >= 1, got '{n_subjects}'")
        return cls(dataset=parts[0], name=spec.get("name"),
                   data_dir=Path(spec["data_dir"]).expanduser() if spec.get("data_dir") else None,
                   protocol=spec.get("protocol"), n_subjects=None if n_subjects is None else int(n_subjects),
                   split=spec.get("split", "all"), options=options)

    @property
    def label(self) -> str:
        return self.name or self.dataset

    @classmethod
    def from_record(cls, entry: dict) -> EvalSetRequest:
        """The request a run.json ``eval_sets`` entry was made from (restbench reproduce, evaluate)."""
        return cls(dataset=entry["dataset"], name=entry["name"],
                   data_dir=Path(entry["data_dir"]) if entry.get("data_dir") else None,
                   protocol=entry.get("protocol"), n_subjects=entry.get("n_subjects"), split=entry.get("split", "all"),
                   options=dict(entry.get("options") or {}))


@dataclass
class EvalSet:
    """An evaluation set resolved against the installed datasets: its plugin and typed options."""

    name: str
    dataset: Any
    options: dict[str, Any]
    request: EvalSetRequest

    def describe(self) -> dict:
        """What run.json records of the set before its data is prepared (resume compares it)."""
        data_dir = self.request.data_dir
        return {"name": self.name, "dataset": self.dataset.id, "version": str(self.dataset.version),
                # absolute, so restbench evaluate and reproduce find the files from any working directory
                "data_dir": None if data_dir is None else str(data_dir.resolve()), "protocol": self.request.protocol,
                "n_subjects": self.request.n_subjects,
                "split": self.request.split, "options": self.options}


def resolve(requests: list[EvalSetRequest], registry: Any, profile: str) -> list[EvalSet]:
    """Each request's dataset plugin and resolved options; one-line UsageErrors for an unknown id,
    a bad name or split, an unknown option, or two sets of one name."""
    out: list[EvalSet] = []
    for req in requests:
        where = f"{OPTION} {req.label}"
        if not _NAME.match(req.label):
            raise UsageError(f"{where}: the set's name must be lowercase letters, digits, '.', '_' or '-' "
                             "(set name=LABEL)")
        if any(s.name == req.label for s in out):
            raise UsageError(f"{where}: two evaluation sets are named '{req.label}'; give each its own name=LABEL")
        if req.split not in SPLITS:
            raise UsageError(f"{where}: split must be one of {', '.join(SPLITS)}, got '{req.split}'")
        dataset = registry.get("datasets", req.dataset, OPTION)
        given = {k: (where, v) for k, v in req.options.items()}
        out.append(EvalSet(req.label, dataset, resolve_options(options_of(dataset), profile, given, dataset.id), req))
    return out


def prepare(eval_set: EvalSet, train_data: SleepData, model: Any, model_input: Any, request: Any, knobs: dict,
            registry: Any, reporter: Any) -> SleepData:
    """The set's data as a test set for the run's models: windowed to the model's input, every
    window (or the dataset's test split) under test, the training data's statistics (module
    docstring). Errors name the set."""
    where = f"{OPTION} {eval_set.name}"
    options = DatasetOptions(
        data_dir=eval_set.request.data_dir, cache_dir=request.cache_dir, seed=0, protocol=eval_set.request.protocol,
        n_subjects=eval_set.request.n_subjects, skip_bad=request.skip_bad, allow_download=request.allow_download, extra=eval_set.options)
    reporter.log(f"preparing evaluation set {eval_set.name} (dataset {eval_set.dataset.id})")
    try:
        data = steps.fit_to_model(steps.prepare_data(eval_set.dataset, options, registry, trains=False), model, model_input)
    except PluginFailure as exc:
        raise PluginFailure(f"{where}: {_spec_words(str(exc))}", exc.plugin) from None
    except (UsageError, PluginError) as exc:
        raise type(exc)(f"{where}: {_spec_words(str(exc))}") from None
    if data.samples_per_epoch != train_data.samples_per_epoch:
        raise UsageError(f"{where}: its epochs have {data.samples_per_epoch} samples at {data.sfreq:g} Hz, the model "
                         f"was trained on {train_data.samples_per_epoch} at {train_data.sfreq:g} Hz; set the "
                         "dataset's sampling-rate option (e.g. sfreq=...) so they match")
    subjects = sorted(set(data.recording_subject))
    tested = subjects if eval_set.request.split == "all" else sorted(data.split["test"])
    view = replace(data, split={"train": [], "val": [], "test": tested}, stats=train_data.stats,
                   fingerprint=fingerprint(data.fingerprint, "evaluation-set", eval_set.request.split,
                                           train_data.stats.to_dict()))
    if len(view.windows("test")) == 0:
        raise UsageError(f"{where}: no test window (split={eval_set.request.split}); use split=all or more recordings")
    return view


#: A dataset's error names the run's options; a set takes them as keys of its spec.
_RUN_OPTIONS = ((re.compile(r"--data-dir\b"), "data_dir=PATH"), (re.compile(r"--protocol\b"), "protocol=NAME"),
                (re.compile(r"--dataset-option\b"), "KEY=VALUE"), (re.compile(r"\(--n-subjects\b"), "(n_subjects=N"))


def _spec_words(message: str) -> str:
    for pattern, key in _RUN_OPTIONS:
        message = pattern.sub(key, message)
    return message


def record(eval_set: EvalSet, view: SleepData) -> dict:
    """The set's entry in run.json: what was asked and what the prepared data is."""
    described = view.describe()
    return {**eval_set.describe(),
            "data": {"fingerprint": view.fingerprint, "sfreq": view.sfreq, "stats": view.stats.to_dict(), "n_recordings": len(view.recordings),
                     "subjects": view.split["test"], "stage_counts": described["stage_counts"]["test"],
                     "info": described["info"]},
            "stats_from": "training dataset"}
