"""The prepared dataset every plugin kind shares: per-epoch signal, labels, windows and split.

Signal is stored once per 30-s epoch (memory-mapped when it comes from the cache); a model
input window is the scored epoch plus the ``context - 1`` epochs before it, assembled on the fly
from an index, so windows are never materialised (4x less memory than storing windows).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

# W=0, N1=1, N2=2, N3=3, REM=4 (docs/PROTOCOL.md); re-exported: labels index it
from restbench.plugins.contract import STAGES  # noqa: F401

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TrainingStats:
    """Statistics of the training split's windows, in microvolts (corruptions and PGD use them)."""

    mean: float
    sigma: float
    min: float
    max: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SleepData:
    """A prepared, split sleep-staging dataset.

    ``signal``: float32 ``(n_epochs, samples_per_epoch)`` in microvolts, all recordings end to end.
    ``labels``: int64 ``(n_epochs,)`` stage index into :data:`restbench.plugins.contract.STAGES`.
    ``recording``: int32 ``(n_epochs,)`` index into ``recordings`` (a night).
    ``recordings``: recording ids, and ``recording_subject`` maps each to its subject id.
    ``window_end``: int64 sorted indices of epochs that end a valid window: the ``context``
    epochs ``i-context+1 .. i`` are contiguous in time within one recording (no gap left by an
    excluded epoch).
    ``split``: subject ids per split; every subject is in exactly one split.
    ``contiguous``: optional bool ``(n_epochs,)``, epoch i directly follows epoch i-1 in time;
    with it the data can be re-windowed to another context (:meth:`with_context`).
    """

    name: str
    signal: np.ndarray
    labels: np.ndarray
    recording: np.ndarray
    recordings: list[str]
    recording_subject: list[str]
    window_end: np.ndarray
    split: dict[str, list[str]]
    stats: TrainingStats
    sfreq: float
    context: int = 4
    fingerprint: str = ""
    info: dict = field(default_factory=dict)  # provenance: files used/skipped, protocol, notes
    contiguous: np.ndarray | None = None

    @property
    def samples_per_epoch(self) -> int:
        return int(self.signal.shape[1])

    @property
    def n_times(self) -> int:
        """Samples per model input window."""
        return self.samples_per_epoch * self.context

    def with_context(self, context: int) -> "SleepData":
        """The same data windowed to ``context`` epochs per window (the model's declared input):
        window ends are recomputed from the epochs' contiguity, the fingerprint names the new
        context, signal and labels are shared (no copy). The training statistics stay those the
        dataset computed (the training split's epochs)."""
        context = int(context)
        if context == self.context:
            return self
        if context < 1:
            raise ValueError(f"context must be at least 1 epoch, got {context}")
        if self.contiguous is None:
            from restbench.errors import PluginError

            raise PluginError(f"dataset '{self.name}' gives windows of {self.context} epochs without epoch contiguity, "
                              f"so it cannot be windowed to the {context} epochs the model declares; set "
                              "SleepData.contiguous in the dataset plugin")
        ends = compute_window_ends(np.ones(len(self.labels), dtype=bool), self.recording, self.contiguous, context)
        return replace(self, window_end=ends, context=context,
                       fingerprint=fingerprint(self.fingerprint, "context", context))

    def subject_of_epoch(self) -> np.ndarray:
        """Subject id (as an index into ``sorted(set(recording_subject))``) per epoch."""
        subjects = sorted(set(self.recording_subject))
        lookup = np.array([subjects.index(s) for s in self.recording_subject], dtype=np.int32)
        return lookup[self.recording]

    def windows(self, split: str) -> np.ndarray:
        """Window-end epoch indices belonging to ``split`` (sorted)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        members = set(self.split[split])
        in_split = np.array([s in members for s in self.recording_subject], dtype=bool)
        ends = self.window_end
        return ends[in_split[self.recording[ends]]]

    def get(self, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Assemble windows ``(n, 1, n_times)`` float32 and their labels for window ends."""
        ends = np.asarray(ends, dtype=np.int64)
        offsets = np.arange(-self.context + 1, 1, dtype=np.int64)
        idx = ends[:, None] + offsets[None, :]
        x = self.signal[idx.ravel()].reshape(len(ends), 1, self.n_times)
        return np.ascontiguousarray(x, dtype=np.float32), self.labels[ends].astype(np.int64)

    def stage_counts(self) -> dict[str, dict[str, int]]:
        """Windows per stage per split (the paper's Table 1 shape), plus a ``total`` row."""
        out: dict[str, dict[str, int]] = {}
        total = np.zeros(len(STAGES), dtype=np.int64)
        for split in SPLITS:
            counts = np.bincount(self.labels[self.windows(split)], minlength=len(STAGES))
            total += counts
            out[split] = {stage: int(c) for stage, c in zip(STAGES, counts)}
        out["total"] = {stage: int(c) for stage, c in zip(STAGES, total)}
        return out

    def describe(self) -> dict:
        """Plain-data summary written into run.json (split included, as the protocol asks)."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "sfreq": self.sfreq,
            "context_epochs": self.context,
            "n_times": self.n_times,
            "n_recordings": len(self.recordings),
            "split": self.split,
            "stats": self.stats.to_dict(),
            "stage_counts": self.stage_counts(),
            "info": self.info,
        }


def compute_window_ends(labels_valid: np.ndarray, recording: np.ndarray, contiguous: np.ndarray, context: int) -> np.ndarray:
    """Window ends: epochs i whose ``context`` epochs i-context+1..i are in one recording and
    contiguous in time.

    ``contiguous[i]`` is True when epoch i directly follows epoch i-1 in time within the same
    recording (False at a recording start or after a removed epoch). ``labels_valid`` masks
    epochs that may be scored (all stored epochs normally are).
    """
    n = len(recording)
    run = np.zeros(n, dtype=np.int64)  # length of the contiguous run ending at i
    for i in range(n):
        run[i] = run[i - 1] + 1 if i > 0 and contiguous[i] and recording[i] == recording[i - 1] else 1
    ok = (run >= context) & labels_valid
    return np.flatnonzero(ok).astype(np.int64)


def training_stats(data_signal: np.ndarray, epoch_idx: np.ndarray) -> TrainingStats:
    """Stats over the given epochs (pass the training split's epochs only)."""
    sel = data_signal[np.sort(epoch_idx)]
    # float64 accumulation: a night of float32 sums loses precision otherwise
    return TrainingStats(
        mean=float(sel.mean(dtype=np.float64)),
        sigma=float(sel.std(dtype=np.float64)),
        min=float(sel.min()),
        max=float(sel.max()),
    )


def subject_split(subjects: list[str], seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, list[str]]:
    """Deterministic subject-wise split: sort ids, shuffle with ``seed``, cut by fractions.

    Each split gets at least one subject when there are three or more subjects.
    """
    ids = sorted(set(subjects))
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    n = len(ids)
    n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
    n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
    n_train = n - n_val - n_test
    return {
        "train": sorted(shuffled[:n_train]),
        "val": sorted(shuffled[n_train : n_train + n_val]),
        "test": sorted(shuffled[n_train + n_val :]),
    }


def fingerprint(*parts: object) -> str:
    """Stable short hash of JSON-able parts (canonical key order)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
