"""The night structure of ``sleep-synth``: a semi-Markov stage model learnt from real hypnograms.

A night's sleep period is a sequence of bouts (runs of one stage). The next bout's stage is
drawn from transition counts that depend on the time since sleep onset (hourly bins, so N3
comes early and REM late) and on the time since the last REM bout (REM rarely recurs within
45 min: the ~90-min cycle); the bout's length is drawn from the lengths seen for that stage in
that time bin. The numbers live in ``stage_model.json``, computed once by this module's
``derive`` from the 20 Sleep-EDF sleep-cassette hypnograms (subjects 0-9, both nights; ODC-By
1.0, attribution in the JSON). Regenerate with::

    python -m restbench_builtins.datasets.synth_stage_model DIR_WITH_HYPNOGRAMS
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from restbench_builtins.datasets.common import MOVEMENT, trim_wake
from restbench_builtins.datasets.sleep_edf_format import hypnogram_stages

MODEL_FILE = Path(__file__).with_name("stage_model.json")
N_STAGES = 5
EPOCHS_PER_MIN = 2
TIME_BINS_MIN = (60, 120, 180, 240, 300)  # hourly bins after sleep onset, the last >= 5 h
SINCE_REM_BINS_MIN = (45, 90)  # <45, 45-90, >=90 min since the last REM bout (or sleep onset)
MAX_BOUT_EPOCHS = 300

ATTRIBUTION = (
    "Derived from 20 hypnograms of the Sleep-EDF Database Expanded, sleep-cassette study "
    "(SC4001-SC4092, subjects 0-9, nights 1-2), PhysioNet; Kemp B, Zwinderman AH, Tuk B, "
    "Kamphuisen HAC, Oberye JJL, IEEE-BME 47(9):1185-1194, 2000; Goldberger AL et al., "
    "Circulation 101(23):e215-e220, 2000. Licensed under the Open Data Commons Attribution "
    "License v1.0 (ODC-By 1.0)."
)


def _bin(value: float, edges: tuple[int, ...]) -> int:
    return int(np.searchsorted(edges, value, side="right"))


def _sleep_period(stage: np.ndarray) -> np.ndarray:
    """Stages from the first to the last sleep epoch; excluded epochs take the stage before."""
    sleep = np.flatnonzero(stage >= 1)
    seq = stage[sleep[0] : sleep[-1] + 1].copy()
    for i in range(1, len(seq)):
        if seq[i] < 0:
            seq[i] = seq[i - 1]
    return seq


def derive(hypnograms: list[Path]) -> dict:
    """Count bout transitions, bout lengths and movement epochs over ``hypnograms``."""
    n_t, n_r = len(TIME_BINS_MIN) + 1, len(SINCE_REM_BINS_MIN) + 1
    transitions = np.zeros((n_t, n_r, N_STAGES, N_STAGES), dtype=np.int64)
    lengths = np.zeros((N_STAGES, n_t, MAX_BOUT_EPOCHS + 1), dtype=np.int64)
    first = np.zeros(N_STAGES, dtype=np.int64)
    sleep_epochs, movement = 0, 0
    for path in sorted(hypnograms):
        stage, _ = hypnogram_stages(path)
        movement += int(np.sum(trim_wake(stage, 60) == MOVEMENT))
        seq = _sleep_period(stage)
        sleep_epochs += len(seq)
        change = np.flatnonzero(np.diff(seq) != 0) + 1
        starts, ends = np.r_[0, change], np.r_[change, len(seq)]
        first[seq[0]] += 1
        last_rem_end = 0
        for k, (s, e) in enumerate(zip(starts, ends)):
            t_bin = _bin(s / EPOCHS_PER_MIN, TIME_BINS_MIN)
            lengths[seq[s], t_bin, min(e - s, MAX_BOUT_EPOCHS)] += 1
            if seq[s] == 4:
                last_rem_end = e
            if k + 1 < len(starts):
                r_bin = _bin((e - last_rem_end) / EPOCHS_PER_MIN, SINCE_REM_BINS_MIN)
                transitions[_bin(e / EPOCHS_PER_MIN, TIME_BINS_MIN), r_bin, seq[s], seq[e]] += 1
    return {
        "source": ATTRIBUTION,
        "license": "ODC-By-1.0",
        "derived_by": "python -m restbench_builtins.datasets.synth_stage_model DIR_WITH_HYPNOGRAMS (restbench)",
        "files": [Path(p).name for p in sorted(hypnograms)],
        "epoch_s": 30,
        "stages": ["W", "N1", "N2", "N3", "REM"],
        "time_bins_min": list(TIME_BINS_MIN),
        "since_rem_bins_min": list(SINCE_REM_BINS_MIN),
        "transition_counts": transitions.tolist(),
        "bout_length_counts": {
            str(s): {str(t): {str(n): int(c) for n, c in enumerate(lengths[s, t]) if c} for t in range(n_t)}
            for s in range(N_STAGES)
        },
        "first_stage_counts": first.tolist(),
        "sleep_period_epochs": int(sleep_epochs),
        "movement_epochs": int(movement),
    }


@dataclass
class StageModel:
    """Sampling side of the model: probabilities built from the stored counts."""

    transition: np.ndarray  # (time bin, since-REM bin, from, to) probabilities, zero diagonal
    lengths: list[list[tuple[np.ndarray, np.ndarray]]]  # [stage][time bin] -> (lengths, probs)
    first_stage: np.ndarray
    movement_per_epoch: float

    @classmethod
    def from_counts(cls, counts: dict, prior: float = 2.0) -> "StageModel":
        """Smooth each transition row towards the stage's pooled row (``prior`` pseudo-counts)."""
        trans = np.asarray(counts["transition_counts"], dtype=np.float64)
        pooled = trans.sum(axis=(0, 1))
        pooled = pooled / pooled.sum(axis=1, keepdims=True)
        probs = trans + prior * pooled[None, None]
        probs /= probs.sum(axis=-1, keepdims=True)
        lengths = []
        for s in range(N_STAGES):
            per_bin = counts["bout_length_counts"][str(s)]
            all_lengths: dict[int, int] = {}
            for table in per_bin.values():
                for n, c in table.items():
                    all_lengths[int(n)] = all_lengths.get(int(n), 0) + c
            row = []
            for t in range(len(TIME_BINS_MIN) + 1):
                table = {int(n): c for n, c in per_bin.get(str(t), {}).items()}
                if sum(table.values()) < 20:  # too few bouts in this bin: use the stage's pooled lengths
                    table = all_lengths
                n = np.array(sorted(table), dtype=np.int64)
                c = np.array([table[k] for k in n], dtype=np.float64)
                row.append((n, c / c.sum()))
            lengths.append(row)
        first = np.asarray(counts["first_stage_counts"], dtype=np.float64) + 0.5
        first[0] = 0.0  # the sleep period starts with sleep
        return cls(
            transition=probs,
            lengths=lengths,
            first_stage=first / first.sum(),
            movement_per_epoch=counts["movement_epochs"] / counts["sleep_period_epochs"],
        )

    def sample(self, rng: np.random.Generator, n_epochs: int, minutes_per_epoch: float = 0.5) -> np.ndarray:
        """A sleep period of ``n_epochs`` stages (int64 0..4), starting asleep.

        ``minutes_per_epoch`` is the clock the time bins use; a short night passes a larger
        value so it still goes through the whole night's structure (N3 early, REM late).
        """
        out = np.empty(n_epochs, dtype=np.int64)
        pos, last_rem_end = 0, 0
        stage = int(rng.choice(N_STAGES, p=self.first_stage))
        while pos < n_epochs:
            t_bin = _bin(pos * minutes_per_epoch, TIME_BINS_MIN)
            n, p = self.lengths[stage][t_bin]
            length = int(rng.choice(n, p=p))
            out[pos : pos + length] = stage
            pos += length
            if stage == 4:
                last_rem_end = pos
            r_bin = _bin((pos - last_rem_end) * minutes_per_epoch, SINCE_REM_BINS_MIN)
            row = self.transition[_bin(pos * minutes_per_epoch, TIME_BINS_MIN), r_bin, stage]
            stage = int(rng.choice(N_STAGES, p=row))
        # the night ends asleep or waking: the last epoch of a sleep period is sleep
        if out[-1] == 0:
            out[-1] = 2
        return out


@lru_cache(maxsize=1)
def load() -> StageModel:
    """The shipped model (``stage_model.json``)."""
    return StageModel.from_counts(json.loads(MODEL_FILE.read_text()))


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m restbench_builtins.datasets.synth_stage_model DIR_WITH_HYPNOGRAMS", file=sys.stderr)
        return 2
    files = sorted(Path(argv[0]).glob("SC4*-Hypnogram.edf"))
    if not files:
        print(f"no SC4*-Hypnogram.edf files in {argv[0]}", file=sys.stderr)
        return 1
    MODEL_FILE.write_text(json.dumps(derive(files), indent=1) + "\n")
    print(f"wrote {MODEL_FILE} from {len(files)} hypnograms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
