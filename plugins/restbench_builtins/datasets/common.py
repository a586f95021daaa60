"""What the built-in datasets share: subject choice, stage codes and hypnogram trimming, bad-input
handling and the cached load path.

A dataset plugin lists its recordings as :class:`Source` objects and gives a reader that turns
one into an :class:`EpochRecording`; :func:`prepare_sources` hashes the inputs, builds (or
reuses) the epoch store in :mod:`restbench.data.cache`, applies ``skip_bad`` and returns the split
:class:`restbench.data.sleep_data.SleepData`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from restbench.api import DatasetOptions, PluginError, UsageError

if TYPE_CHECKING:  # numpy is imported where data is read: listing the datasets must not import it
    import numpy as np

    from restbench.api import SleepData

#: Epoch length of every dataset here, in seconds.
EPOCH_S = 30.0
#: Epochs per model input window (the scored epoch and the three before it).
CONTEXT_EPOCHS = 4
#: Stage codes of epochs that are not a sleep stage (stages are 0..4): no score, or movement time.
UNSCORED, MOVEMENT = -1, -2


class BadRecording(Exception):
    """One input file is unusable; ``reason`` says why in a short phrase."""

    def __init__(self, file: Path | str, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


@dataclass
class EpochRecording:
    """One night read into 30-s epochs.

    ``signal`` float32 ``(n, samples_per_epoch)`` in microvolts; ``labels`` int64 stage indices;
    ``contiguous[i]``: epoch i directly follows epoch i-1 in time (False at the start and after
    an excluded epoch); ``epoch_index`` each epoch's position in the original recording.
    """

    signal: np.ndarray
    labels: np.ndarray
    contiguous: np.ndarray
    epoch_index: np.ndarray
    notes: list[str] = field(default_factory=list)


@dataclass
class Source:
    """One recording to load: its id, its subject and its input files by role.

    ``problem`` marks a recording already known to be unusable (e.g. a hypnogram without its
    PSG): ``(file, reason)``. ``notes`` says what was decided while finding the files (e.g. which
    of two hypnograms was used under ``lenient_input``); they join the recording's notes.
    """

    recording: str
    subject: str
    files: dict[str, Path]
    problem: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- subjects


def first_subjects(subjects: list[str], n_subjects: int | None) -> list[str]:
    """The first ``n_subjects`` of ``subjects`` in sorted order (all when None)."""
    ordered = sorted(set(subjects))
    if n_subjects is None:
        return ordered
    if n_subjects < 1:
        raise UsageError(f"n_subjects={n_subjects}: must be at least 1")
    return ordered[:n_subjects]


# --------------------------------------------------------------------------- labels


def epochs_to_keep(stage: np.ndarray, n_epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of scored epochs (stage >= 0) below ``n_epochs`` and their contiguity flags."""
    import numpy as np

    keep = np.flatnonzero(stage[:n_epochs] >= 0)
    contiguous = np.zeros(len(keep), dtype=bool)
    contiguous[1:] = np.diff(keep) == 1
    return keep, contiguous


def trim_wake(stage: np.ndarray, edge_epochs: int) -> np.ndarray:
    """Copy of ``stage`` with everything outside [first sleep - edge, last sleep + edge] unscored."""
    import numpy as np

    sleep = np.flatnonzero(stage >= 1)
    out = np.full_like(stage, UNSCORED)
    if len(sleep):
        lo, hi = max(sleep[0] - edge_epochs, 0), min(sleep[-1] + edge_epochs, len(stage) - 1)
        out[lo : hi + 1] = stage[lo : hi + 1]
    return out


def cut_epochs(x: np.ndarray, sfreq: float, keep: np.ndarray) -> np.ndarray:
    """Epochs ``keep`` of a continuous signal as float32 ``(len(keep), samples_per_epoch)``."""
    import numpy as np

    spe = int(round(EPOCH_S * sfreq))
    n_full = len(x) // spe
    return x[: n_full * spe].reshape(n_full, spe)[keep].astype(np.float32)


# --------------------------------------------------------------------------- loading


def prepare_sources(
    dataset_id: str,
    sources: list[Source],
    reader: Callable[[Source], EpochRecording],
    options: DatasetOptions,
    *,
    sfreq: float,
    params: dict[str, Any],
    code_version: str,
    info: dict[str, Any],
    split: Callable[[list[str]], dict[str, list[str]]] | None = None,
) -> SleepData:
    """Read ``sources`` through ``reader`` into the cache (once) and return split SleepData.

    ``params`` are the preprocessing parameters (part of the cache key with the files' hashes
    and ``code_version``). Bad recordings raise a one-line :class:`PluginError`, or are skipped
    and listed in ``info["skipped"]`` when ``options.skip_bad`` is set. The split is
    :func:`restbench.data.sleep_data.subject_split` over the subjects loaded, with ``options.seed``,
    unless ``split`` is given: then ``split(subject of each loaded recording)`` returns it
    (e.g. read from a file) and ``info["split_seed"]`` is None.
    """
    from restbench.api import cache_key, file_digests, load_or_build, subject_split

    def bad(file: str, reason: str, skipped: list[dict[str, str]]) -> None:
        if not options.skip_bad:
            raise PluginError(f"dataset '{dataset_id}': {file}: {reason} (set skip_bad to use the other recordings)")
        skipped.append({"file": file, "reason": reason})

    skipped: list[dict[str, str]] = []
    usable = []
    for src in sources:
        if src.problem is not None:
            bad(*src.problem, skipped)
        else:
            usable.append(src)
    named = {f"{src.recording}/{role}:{path.name}": path for src in usable for role, path in src.files.items()}
    digests = file_digests(named, options.cache_dir)
    key = cache_key(digests, {**params, "sfreq": sfreq, "skip_bad": options.skip_bad}, f"{dataset_id}/{code_version}")
    spe = int(round(EPOCH_S * sfreq))

    def build(writer) -> dict:
        build_skipped: list[dict[str, str]] = []
        for src in usable:
            try:
                rec = reader(src)
            except BadRecording as exc:
                bad(exc.file, exc.reason, build_skipped)
                continue
            writer.add(
                src.recording,
                src.subject,
                rec.signal,
                rec.labels,
                rec.contiguous,
                info={"files": {role: p.name for role, p in src.files.items()}, "n_epochs": len(rec.labels),
                      "notes": [*src.notes, *rec.notes]},
            )
        if writer.n_epochs == 0:
            raise PluginError(f"dataset '{dataset_id}': no usable recordings ({len(skipped) + len(build_skipped)} skipped)")
        return {"dataset": dataset_id, "sfreq": sfreq, "params": params, "skipped": build_skipped}

    store, _ = load_or_build(options.cache_dir, key, spe, build)
    skipped += store.meta.get("skipped", [])
    chosen = subject_split(store.recording_subject, options.seed) if split is None else split(list(store.recording_subject))
    notes = [n for rec_info in store.meta["recording_info"] for n in rec_info.get("notes", [])]
    full_info = {
        **info,
        "dataset": dataset_id,
        "params": params,
        "cache_key": store.key,
        "split_seed": options.seed if split is None else None,
        "files": {rec: rec_info["files"] for rec, rec_info in zip(store.recordings, store.meta["recording_info"])},
        "sha256": digests,
        "skipped": skipped,
        "notes": notes,
    }
    return store.to_sleep_data(dataset_id, chosen, context=CONTEXT_EPOCHS, info=full_info)
