"""The embedded default dataset (plugin id ``sleep-synth``): realistic synthetic sleep EEG.

Each night's hypnogram comes from a stage model learnt from real Sleep-EDF hypnograms
(:mod:`synth_stage_model`) and its EEG from :mod:`synth_eeg`. The nights are written as genuine
Sleep-EDF-layout files (``SC4ss1E0-PSG.edf`` with ``EEG Fpz-Cz`` at 100 Hz and an EDF+
``SC4ss1E?-Hypnogram.edf`` with ``Sleep stage X`` annotations, a trailing ``Sleep stage ?`` and
the odd ``Movement time``) into the cache, then read back through the ``sleep-edf`` reader, so
``restbench run`` with no data exercises the real loader end to end.

Night ``k`` depends only on ``(data_seed, k, hours)``: asking for more nights adds nights and
never changes the existing ones.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from restbench.api import NOT_IN_PAPER, DatasetOptions, Option, UsageError, fill_options, hookimpl
from restbench_builtins.datasets.common import EPOCH_S, Source
from restbench_builtins.datasets.sleep_edf_format import (
    CHANNEL,
    SFREQ_HZ,
    load_sleep_edf_sources,
    recording_id,
    subject_id,
)

if TYPE_CHECKING:  # numpy and the generator are imported when nights are made, not to list datasets
    import numpy as np

    from restbench.api import SleepData

#: Shown in provenance; the folder key also hashes the generator's code, so edits never reuse stale nights.
GENERATOR_VERSION = "2"
DEFAULT_NIGHTS = 20
DEFAULT_HOURS = 8.0
MAX_NIGHTS = 100  # subject numbers are two digits in Sleep-EDF names
MIN_NIGHTS = 3  # a subject-wise train/val/test split needs three subjects
MIN_HOURS, MAX_HOURS = 0.5, 24.0
PHYSICAL_RANGE_UV = (-500.0, 500.0)
SCORERS = "CHJP"  # the scorer letter varies in real hypnogram names, so vary it here too
START = dt.datetime(1989, 4, 24, 22, 0, 0)

ANNOTATION_OF_STAGE = ("Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3", "Sleep stage R")
MOVEMENT_TEXT = "Movement time"
UNSCORED_TEXT = "Sleep stage ?"


def night_stages(rng: np.random.Generator, hours: float) -> tuple[np.ndarray, np.ndarray]:
    """Stages for a whole recording of ``hours`` (wake, a sleep period, wake) and a movement mask."""
    import numpy as np

    from restbench_builtins.datasets import synth_stage_model

    n = int(round(hours * 3600 / EPOCH_S))
    pre = int(round(n * rng.uniform(0.08, 0.14)))
    post = int(round(n * rng.uniform(0.04, 0.08)))
    n_sleep = n - pre - post
    model = synth_stage_model.load()
    # a short night runs the model's clock faster so it still shows a whole night's structure
    minutes_per_epoch = 0.5 * max(1.0, 420.0 / (n_sleep * EPOCH_S / 60.0))
    stages = np.concatenate([np.zeros(pre, np.int64), model.sample(rng, n_sleep, minutes_per_epoch), np.zeros(post, np.int64)])
    movement = np.zeros(n, dtype=bool)
    movement[pre : pre + n_sleep] = rng.random(n_sleep) < model.movement_per_epoch
    return stages, movement


def synth_night(data_seed: int, index: int, hours: float, sfreq: float = SFREQ_HZ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Night ``index``: ``(stages per epoch, movement mask, EEG float32 uV)``, deterministic."""
    import numpy as np

    from restbench_builtins.datasets import synth_eeg

    rng = np.random.default_rng([data_seed, index])
    stages, movement = night_stages(rng, hours)
    profile = synth_eeg.subject_profile(rng)
    x = synth_eeg.generate_night(stages, profile, rng, sfreq, movement=movement)
    return stages, movement, x


def hypnogram_annotations(stages: np.ndarray, movement: np.ndarray, trailing_s: float) -> list[tuple[float, float, str]]:
    """Sleep-EDF-style annotations ``(onset s, duration s, text)``: one per run of equal
    epochs, then a ``Sleep stage ?`` running ``trailing_s`` past the recording (as real ones do)."""
    import numpy as np

    texts = np.array([MOVEMENT_TEXT if m else ANNOTATION_OF_STAGE[s] for s, m in zip(stages, movement)])
    change = np.flatnonzero(texts[1:] != texts[:-1]) + 1
    starts, ends = np.r_[0, change], np.r_[change, len(texts)]
    out = [(float(a * EPOCH_S), float((b - a) * EPOCH_S), str(texts[a])) for a, b in zip(starts, ends)]
    out.append((float(len(stages) * EPOCH_S), float(trailing_s), UNSCORED_TEXT))
    return out


def write_night(folder: Path, index: int, stages: np.ndarray, movement: np.ndarray, x: np.ndarray, sfreq: float = SFREQ_HZ) -> tuple[Path, Path]:
    """Write night ``index`` as ``SC4ss1E0-PSG.edf`` + ``SC4ss1E?-Hypnogram.edf``; returns the paths.

    Each file is written under a temporary name and renamed, so a killed run leaves none half
    written.
    """
    import edfio
    import numpy as np

    prefix = recording_id(index, 1)
    start = START + dt.timedelta(days=index)
    recording = edfio.Recording(startdate=start.date())
    patient = edfio.Patient(code=subject_id(index), sex="X")
    lo, hi = PHYSICAL_RANGE_UV
    signal = edfio.EdfSignal(
        np.clip(x, lo, hi).astype(np.float64), sfreq, label=CHANNEL, physical_dimension="uV", physical_range=(lo, hi),
        transducer_type="Ag-AgCl electrodes", prefiltering="synthetic",
    )
    psg = edfio.Edf([signal], patient=patient, recording=recording, starttime=start.time(), data_record_duration=EPOCH_S)
    notes = [edfio.EdfAnnotation(o, d, t) for o, d, t in hypnogram_annotations(stages, movement, trailing_s=3 * 3600.0)]
    hyp = edfio.Edf([], patient=patient, recording=recording, starttime=start.time(), annotations=notes)
    paths = (folder / f"{prefix}E0-PSG.edf", folder / f"{prefix}E{SCORERS[index % len(SCORERS)]}-Hypnogram.edf")
    for edf, path in zip((psg, hyp), paths):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        edf.write(tmp)
        os.replace(tmp, path)
    return paths


def generator_digest() -> str:
    """Hash of the generator's code and stage-model numbers: any edit gives fresh nights."""
    from restbench_builtins.datasets import synth_eeg, synth_stage_model

    sha = hashlib.sha256()
    for path in (Path(__file__), Path(synth_eeg.__file__), Path(synth_stage_model.__file__), synth_stage_model.MODEL_FILE):
        sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def night_folder(cache_dir: Path, data_seed: int, hours: float) -> Path:
    """Folder the nights of one generator setting live in (keyed by everything they depend on)."""
    from restbench.api import fingerprint

    key = fingerprint(GENERATOR_VERSION, generator_digest(), data_seed, round(hours, 6), SFREQ_HZ)
    return Path(cache_dir) / "sleep-synth" / key


def ensure_nights(folder: Path, n_nights: int, data_seed: int, hours: float) -> list[Source]:
    """Generate the nights missing from ``folder``; return a source per night."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = []
    for k in range(n_nights):
        prefix = recording_id(k, 1)
        psg = folder / f"{prefix}E0-PSG.edf"
        hyp = folder / f"{prefix}E{SCORERS[k % len(SCORERS)]}-Hypnogram.edf"
        if not (psg.is_file() and hyp.is_file()):
            stages, movement, x = synth_night(data_seed, k, hours)
            psg, hyp = write_night(folder, k, stages, movement, x)
        sources.append(Source(recording=prefix, subject=subject_id(k), files={"psg": psg, "hypnogram": hyp}))
    return sources


class SleepSynth:
    """Synthetic single-channel sleep EEG in Sleep-EDF layout, generated on first use."""

    id = "sleep-synth"
    version = "1.0.0"
    description = "Embedded default: realistic synthetic Fpz-Cz sleep EEG written as Sleep-EDF files (no download)"
    citation = "restbench synthetic generator; stage statistics from Sleep-EDF Expanded (Kemp et al. 2000, ODC-By 1.0)"
    protocols = {"default": "one night per synthetic subject, 80/10/10 subject-wise split"}
    #: the dataset a run uses when none is named (the core picks the one marked default)
    default = True
    #: recorded in the data's info; a leaderboard made with another one is stale
    generator = f"restbench sleep-synth {GENERATOR_VERSION}"
    options = (
        # quick: 80 short nights give 8 validation and 8 test subjects, enough for subject-level intervals
        Option("n_nights", int, DEFAULT_NIGHTS, "nights to generate, one per subject (n_subjects caps it)",
               minimum=MIN_NIGHTS, maximum=MAX_NIGHTS, paper=NOT_IN_PAPER, profiles={"quick": 80}),
        # shorter nights under the fast run profiles
        Option("hours", float, DEFAULT_HOURS, "recording length per night in hours",
               minimum=MIN_HOURS, maximum=MAX_HOURS, profiles={"quick": 3.0, "smoke": 1.0}, paper=NOT_IN_PAPER),
        Option("data_seed", int, 0, "seed of the generated data (the subject split is fixed, so every method and training seed is scored on the same subjects)",
               minimum=0, paper=NOT_IN_PAPER),
    )

    def prepare(self, options: DatasetOptions) -> SleepData:
        """Generate (once, into the cache) and load the synthetic nights."""
        from restbench_builtins.datasets import synth_stage_model

        extra = fill_options(self.options, options.extra, self.id)
        if options.protocol not in (None, "default"):
            raise UsageError(f"dataset 'sleep-synth': unknown protocol {options.protocol!r}; valid protocols: default")
        n = extra["n_nights"]
        if options.n_subjects is not None:
            if options.n_subjects < 1:
                raise UsageError(f"n_subjects={options.n_subjects}: must be at least 1")
            n = min(n, options.n_subjects)
        hours = extra["hours"]
        folder = night_folder(options.cache_dir, extra["data_seed"], hours)
        sources = ensure_nights(folder, n, extra["data_seed"], hours)
        return load_sleep_edf_sources(
            self.id, sources, options,
            info={
                "protocol": "default",
                "generator": self.generator,
                "n_nights": n,
                "hours": hours,
                "data_seed": extra["data_seed"],
                "edf_dir": folder.relative_to(options.cache_dir).as_posix(),  # relative: run.json records no local path
                "stage_model_source": synth_stage_model.ATTRIBUTION,
            },
        )


@hookimpl
def register_datasets(register) -> None:
    register(SleepSynth())
