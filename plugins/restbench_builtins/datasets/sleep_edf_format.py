"""The Sleep-EDF file format: reading a night (PSG + hypnogram EDF pair) into 30-s epochs.

Shared by the ``sleep-edf`` dataset (the files from PhysioNet) and the ``sleep-synth`` dataset
(which writes its nights in this format), so the embedded default goes through the same reader as
the real data. A night is ``SC4ssNE0-PSG.edf`` with its ``SC4ssNE?-Hypnogram.edf``; the channel is
read in microvolts at 100 Hz; labels are W/N1/N2/N3 (R&K 3+4)/REM, and ``Sleep stage ?`` and
``Movement time`` epochs are excluded (leaving gaps no window spans); 30 min of wake are kept
before the first and after the last sleep epoch; the hypnogram is cropped to the PSG.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from restbench.api import DatasetOptions
from restbench_builtins.datasets.common import (
    EPOCH_S,
    MOVEMENT,
    UNSCORED,
    BadRecording,
    EpochRecording,
    Source,
    cut_epochs,
    epochs_to_keep,
    prepare_sources,
    trim_wake,
)
from restbench_builtins.datasets.edf_io import check_complete, read_annotations, read_channel_uv, read_edf_header

if TYPE_CHECKING:  # numpy is imported where a night is read: listing the datasets must not import it
    import numpy as np

    from restbench.api import SleepData

#: Bump when preprocessing changes what lands in the cache.
#: 2: strict input checks (a store built by version 1 may hold input these checks refuse).
CODE_VERSION = "2"

CHANNEL = "EEG Fpz-Cz"
SFREQ_HZ = 100.0
WAKE_EDGE_MIN = 30.0

#: Hypnogram annotation -> stage index (W=0, N1=1, N2=2, N3=3, REM=4); R&K 3 and 4 merge into N3.
STAGE_OF_ANNOTATION = {
    "Sleep stage W": 0,
    "Sleep stage 1": 1,
    "Sleep stage 2": 2,
    "Sleep stage 3": 3,
    "Sleep stage 4": 3,
    "Sleep stage R": 4,
}
EXCLUDED_ANNOTATIONS = {"Sleep stage ?": UNSCORED, "Movement time": MOVEMENT}

#: A hypnogram must score (stage or movement) at least this share of its PSG's epochs.
MIN_COVERAGE = 0.5
#: Hypnogram and PSG header starts further apart than this are an error, not a realignment.
MAX_START_OFFSET_S = 24 * 3600.0
#: What the error messages suggest as the way out.
LENIENT_HINT = "lenient_input=true uses it anyway, with a note"


def recording_id(subject: int, night: int) -> str:
    """``SC4ssN``: the prefix PSG and hypnogram share."""
    return f"SC4{subject:02d}{night}"


def subject_id(subject: int) -> str:
    """``SC4ss``: the subject part of a night's prefix."""
    return f"SC4{subject:02d}"


def hypnogram_stages(path: Path, *, lenient: bool = False, notes: list[str] | None = None) -> tuple[np.ndarray, datetime | None]:
    """Stage per 30-s epoch from a hypnogram EDF+, and the hypnogram's start time.

    Stages are 0..4, ``UNSCORED`` (-1) for ``Sleep stage ?`` and epochs no annotation covers,
    ``MOVEMENT`` (-2) for ``Movement time``. One annotation covers ``duration / 30`` epochs.
    Any other annotation (``Stage 2``, ``Lights off``) raises :class:`BadRecording`, or with
    ``lenient`` is ignored with a note appended to ``notes``.
    """
    import numpy as np

    header = read_edf_header(path)
    check_complete(header)
    try:
        annotations = read_annotations(path)
    except Exception as exc:
        raise BadRecording(path, f"cannot read hypnogram annotations ({type(exc).__name__}: {exc})") from None
    events = []
    ignored: dict[str, int] = {}
    for onset, duration, text in annotations:
        if text in STAGE_OF_ANNOTATION:
            code = STAGE_OF_ANNOTATION[text]
        elif text in EXCLUDED_ANNOTATIONS:
            code = EXCLUDED_ANNOTATIONS[text]
        elif text.startswith("Sleep stage"):
            raise BadRecording(path, f"unknown stage annotation {text!r}")
        else:
            ignored[text] = ignored.get(text, 0) + 1
            continue
        start = int(round(onset / EPOCH_S))
        events.append((start, max(1, int(round(duration / EPOCH_S))), code))
    if ignored:
        listing = ", ".join(f"{text!r} x{n}" if n > 1 else repr(text) for text, n in ignored.items())
        if not lenient:
            raise BadRecording(
                path, f"unknown annotation {listing}: a Sleep-EDF hypnogram holds only 'Sleep stage W/1/2/3/4/R/?' "
                      f"and 'Movement time' (lenient_input=true ignores the others, with a note)",
            )
        if notes is not None:
            notes.append(f"{Path(path).name}: ignored annotation {listing} (lenient_input)")
    if not events:
        raise BadRecording(path, "no 'Sleep stage' annotations: not a Sleep-EDF hypnogram")
    stage = np.full(max(s + n for s, n, _ in events), UNSCORED, dtype=np.int64)
    for start, n, code in events:
        stage[start : start + n] = code
    return stage, header.start


def read_sleep_edf_pair(
    psg: Path,
    hypnogram: Path,
    *,
    channel: str = CHANNEL,
    sfreq: float = SFREQ_HZ,
    allow_resample: bool = True,
    wake_edge_min: float = WAKE_EDGE_MIN,
    lenient: bool = False,
) -> EpochRecording:
    """Read one Sleep-EDF night (PSG + hypnogram) into 30-s epochs.

    Returns an :class:`EpochRecording` with the channel in microvolts at ``sfreq``, stages
    0..4, and contiguity flags that are False after every excluded (``?``/movement) epoch.
    Raises :class:`BadRecording` naming the file on any problem. ``lenient`` (the dataset's
    ``lenient_input``) turns the questionable-input checks (unknown annotations, upsampling,
    a start more than 24 h from the PSG's, a hypnogram scoring under half the PSG) into notes.
    """
    import numpy as np

    psg, hypnogram = Path(psg), Path(hypnogram)
    hyp_notes: list[str] = []
    stage, hyp_start = hypnogram_stages(hypnogram, lenient=lenient, notes=hyp_notes)
    x, header, notes = read_channel_uv(psg, (channel,), sfreq, allow_resample, allow_upsample=lenient)
    notes = hyp_notes + notes
    if hyp_start is not None and header.start is not None and hyp_start != header.start:
        offset_s = (hyp_start - header.start).total_seconds()
        if abs(offset_s) > MAX_START_OFFSET_S:
            # a wrong date in one header, not a later start: "realigning" would shift by months
            message = (f"header start {hyp_start.isoformat(' ')} is {abs(offset_s) / 3600:.0f} h "
                       f"{'after' if offset_s > 0 else 'before'} the start {header.start.isoformat(' ')} of {psg.name}")
            if not lenient:
                raise BadRecording(hypnogram, f"{message}; more than {MAX_START_OFFSET_S / 3600:.0f} h apart, so one "
                                              f"header is wrong ({LENIENT_HINT}: both taken to start together)")
            notes.append(f"{hypnogram.name}: {message}; taken to start with the PSG (lenient_input)")
        else:
            # align the hypnogram's epoch grid to the PSG when the two start at different times
            shift = int(round(offset_s / EPOCH_S))
            stage = np.concatenate([np.full(shift, UNSCORED), stage]) if shift > 0 else stage[-shift:]
            notes.append(f"{hypnogram.name}: starts {shift} epochs after the PSG; realigned")
    n_psg = int(len(x) // round(EPOCH_S * sfreq))
    late_sleep = np.flatnonzero(stage[n_psg:] >= 1)
    if len(late_sleep):
        raise BadRecording(
            hypnogram,
            f"labels and signal lengths disagree: sleep is scored until {(n_psg + late_sleep[-1] + 1) * EPOCH_S:.0f} s "
            f"but {psg.name} ends at {n_psg * EPOCH_S:.0f} s",
        )
    scored = int(np.sum(stage[:n_psg] != UNSCORED))
    if n_psg and scored < MIN_COVERAGE * n_psg:
        message = (f"scores {scored} of the {n_psg} epochs of {psg.name} ({100 * scored / n_psg:.0f}%, "
                   f"at least {100 * MIN_COVERAGE:.0f}% expected)")
        if not lenient:
            raise BadRecording(hypnogram, f"partial hypnogram: {message}; {LENIENT_HINT}")
        notes.append(f"{hypnogram.name}: partial hypnogram: {message} (lenient_input)")
    stage = trim_wake(stage[:n_psg], int(round(wake_edge_min * 60 / EPOCH_S)))
    keep, contiguous = epochs_to_keep(stage, n_psg)
    if not np.any(stage[keep] >= 1):
        raise BadRecording(hypnogram, f"no sleep epochs scored within the {n_psg * EPOCH_S:.0f} s of {psg.name}")
    return EpochRecording(
        signal=cut_epochs(x, sfreq, keep),
        labels=stage[keep].astype(np.int64),
        contiguous=contiguous,
        epoch_index=keep,
        notes=notes,
    )


def load_sleep_edf_sources(
    dataset_id: str,
    sources: list[Source],
    options: DatasetOptions,
    *,
    channel: str = CHANNEL,
    allow_resample: bool = True,
    wake_edge_min: float = WAKE_EDGE_MIN,
    lenient: bool = False,
    info: dict | None = None,
) -> SleepData:
    """SleepData from Sleep-EDF-layout sources (``psg`` + ``hypnogram`` files), cached."""

    def reader(src: Source) -> EpochRecording:
        return read_sleep_edf_pair(
            src.files["psg"], src.files["hypnogram"], channel=channel, sfreq=SFREQ_HZ,
            allow_resample=allow_resample, wake_edge_min=wake_edge_min, lenient=lenient,
        )

    params = {"channel": channel, "resample": allow_resample, "wake_edge_min": wake_edge_min, "lenient_input": lenient}
    return prepare_sources(
        dataset_id, sources, reader, options, sfreq=SFREQ_HZ, params=params, code_version=CODE_VERSION,
        info={"channel": channel, "sfreq_hz": SFREQ_HZ, **(info or {})},
    )
