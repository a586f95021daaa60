"""Sleep-EDF Expanded, sleep-cassette study (plugin id ``sleep-edf``).

Reads ``SC4ssNE0-PSG.edf`` with its ``SC4ssNE?-Hypnogram.edf`` (paired on the ``SC4ssN``
prefix: the scorer letter varies) through MNE, channel ``EEG Fpz-Cz`` at 100 Hz, in microvolts.
Labels W/N1/N2/N3 (R&K 3+4)/REM; ``Sleep stage ?`` and ``Movement time`` epochs are excluded
(leaving gaps no window spans); 30 min of wake are kept before the first and after the last
sleep epoch; the hypnogram is cropped to the PSG.

:func:`read_sleep_edf_pair` reads one night; the ``sleep-synth`` dataset reuses it on the EDF
files it writes, so the embedded default goes through this loader too.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import numpy as np

from restbench import hookimpl
from restbench.api import DatasetOptions, PluginError, UsageError
from restbench.data.sleep_data import SleepData
from restbench.plugins.options import NOT_IN_PAPER, Option, fill_options
from restbench_builtins.datasets.common import (
    EPOCH_S,
    BadRecording,
    EpochRecording,
    Source,
    cut_epochs,
    epochs_to_keep,
    first_subjects,
    prepare_sources,
)
from restbench_builtins.datasets.edf_io import check_complete, read_channel_uv, read_edf_header

#: Bump when preprocessing changes what lands in the cache.
CODE_VERSION = "1"

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
UNSCORED, MOVEMENT = -1, -2
EXCLUDED_ANNOTATIONS = {"Sleep stage ?": UNSCORED, "Movement time": MOVEMENT}

# The sleep-cassette catalogue (PhysioNet sleep-edfx 1.0.0): subjects 0-82 without these five,
# two nights each except three missing nights: 78 subjects, 153 nights.
SC_ABSENT_SUBJECTS = frozenset({39, 68, 69, 78, 79})
SC_MISSING_NIGHTS = frozenset({(36, 1), (52, 1), (13, 2)})
PROTOCOLS = {
    "paper": "first 40 night-1 recordings in name order (the REST code), 80/10/10 subject-wise split",
    "sleep-edf-20": "subjects 0-19, both nights (39 nights), 80/10/10 subject-wise split",
    "sleep-edf-78": "every sleep-cassette night (78 subjects, 153 nights), 80/10/10 subject-wise split",
}

PSG_NAME = re.compile(r"^(SC4\d{3})E0-PSG\.edf$", re.IGNORECASE)
HYPNOGRAM_NAME = re.compile(r"^(SC4\d{3})E.-Hypnogram\.edf$", re.IGNORECASE)

CITATION = (
    "Kemp et al. 2000, IEEE-BME 47(9):1185-1194; Goldberger et al. 2000, PhysioNet "
    "(Sleep-EDF Database Expanded, ODC-By 1.0)"
)


# --------------------------------------------------------------------------- catalogue


def recording_id(subject: int, night: int) -> str:
    """``SC4ssN``: the prefix PSG and hypnogram share."""
    return f"SC4{subject:02d}{night}"


def subject_id(subject: int) -> str:
    return f"SC4{subject:02d}"


def sc_catalogue() -> list[tuple[int, int]]:
    """Every (subject, night) of the sleep-cassette study, in name order."""
    return [
        (s, n)
        for s in range(83)
        if s not in SC_ABSENT_SUBJECTS
        for n in (1, 2)
        if (s, n) not in SC_MISSING_NIGHTS
    ]


def protocol_recordings(protocol: str, n_subjects: int | None = None) -> list[tuple[int, int]]:
    """(subject, night) pairs of ``protocol``, capped to its first ``n_subjects`` subjects."""
    catalogue = sc_catalogue()
    if protocol == "paper":
        chosen = [(s, n) for s, n in catalogue if n == 1][:40]
    elif protocol == "sleep-edf-20":
        chosen = [(s, n) for s, n in catalogue if s < 20]
    elif protocol == "sleep-edf-78":
        chosen = catalogue
    else:
        raise UsageError(f"dataset 'sleep-edf': unknown protocol {protocol!r}; valid protocols: {', '.join(PROTOCOLS)}")
    keep = set(first_subjects([s for s, _ in chosen], n_subjects))
    return [(s, n) for s, n in chosen if s in keep]


# --------------------------------------------------------------------------- files


def find_files(root: Path) -> dict[str, dict[str, Path]]:
    """``SC4ssN`` prefix -> {"psg": path, "hypnogram": path} for files anywhere under ``root``."""
    found: dict[str, dict[str, Path]] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob("SC4*.edf")):
        for role, pattern in (("psg", PSG_NAME), ("hypnogram", HYPNOGRAM_NAME)):
            match = pattern.match(path.name)
            if match:
                # the first in sorted order wins when a file appears twice
                found.setdefault(match.group(1).upper(), {}).setdefault(role, path)
    return found


def pair_sources(found: dict[str, dict[str, Path]], prefixes: list[tuple[str, str]]) -> list[Source]:
    """Sources for ``(prefix, subject)`` pairs; a half pair becomes a source with a problem."""
    sources = []
    for prefix, subject in prefixes:
        files = found.get(prefix, {})
        problem = None
        if "psg" in files and "hypnogram" not in files:
            problem = (str(files["psg"]), f"PSG without hypnogram (expected {prefix}E?-Hypnogram.edf beside it)")
        elif "hypnogram" in files and "psg" not in files:
            problem = (str(files["hypnogram"]), f"hypnogram without PSG (expected {prefix}E0-PSG.edf beside it)")
        sources.append(Source(recording=prefix, subject=subject, files=dict(files), problem=problem))
    return sources


def default_data_root() -> Path:
    """Where MNE's ``sleep_physionet`` fetcher puts the files."""
    import mne

    base = mne.get_config("PHYSIONET_SLEEP_PATH") or mne.get_config("MNE_DATA") or "~/mne_data"
    return Path(base).expanduser() / "physionet-sleep-data"


# --------------------------------------------------------------------------- reading


def hypnogram_stages(path: Path) -> tuple[np.ndarray, datetime | None]:
    """Stage per 30-s epoch from a hypnogram EDF+, and the hypnogram's start time.

    Stages are 0..4, ``UNSCORED`` (-1) for ``Sleep stage ?`` and epochs no annotation covers,
    ``MOVEMENT`` (-2) for ``Movement time``. One annotation covers ``duration / 30`` epochs.
    """
    import mne

    header = read_edf_header(path)
    check_complete(header)
    try:
        annotations = mne.read_annotations(path)
    except Exception as exc:
        raise BadRecording(path, f"cannot read hypnogram annotations ({type(exc).__name__}: {exc})") from None
    events = []
    for onset, duration, text in zip(annotations.onset, annotations.duration, annotations.description):
        if text in STAGE_OF_ANNOTATION:
            code = STAGE_OF_ANNOTATION[text]
        elif text in EXCLUDED_ANNOTATIONS:
            code = EXCLUDED_ANNOTATIONS[text]
        elif text.startswith("Sleep stage"):
            raise BadRecording(path, f"unknown stage annotation {text!r}")
        else:
            continue  # other annotations (lights, events) carry no stage
        start = int(round(onset / EPOCH_S))
        events.append((start, max(1, int(round(duration / EPOCH_S))), code))
    if not events:
        raise BadRecording(path, "no 'Sleep stage' annotations: not a Sleep-EDF hypnogram")
    stage = np.full(max(s + n for s, n, _ in events), UNSCORED, dtype=np.int64)
    for start, n, code in events:
        stage[start : start + n] = code
    return stage, header.start


def trim_wake(stage: np.ndarray, edge_epochs: int) -> np.ndarray:
    """Copy of ``stage`` with everything outside [first sleep - edge, last sleep + edge] unscored."""
    sleep = np.flatnonzero(stage >= 1)
    out = np.full_like(stage, UNSCORED)
    if len(sleep):
        lo, hi = max(sleep[0] - edge_epochs, 0), min(sleep[-1] + edge_epochs, len(stage) - 1)
        out[lo : hi + 1] = stage[lo : hi + 1]
    return out


def read_sleep_edf_pair(
    psg: Path,
    hypnogram: Path,
    *,
    channel: str = CHANNEL,
    sfreq: float = SFREQ_HZ,
    allow_resample: bool = True,
    wake_edge_min: float = WAKE_EDGE_MIN,
) -> EpochRecording:
    """Read one Sleep-EDF night (PSG + hypnogram) into 30-s epochs.

    Returns an :class:`EpochRecording` with the channel in microvolts at ``sfreq``, stages
    0..4, and contiguity flags that are False after every excluded (``?``/movement) epoch.
    Raises :class:`BadRecording` naming the file on any problem.
    """
    psg, hypnogram = Path(psg), Path(hypnogram)
    stage, hyp_start = hypnogram_stages(hypnogram)
    x, header, notes = read_channel_uv(psg, (channel,), sfreq, allow_resample)
    if hyp_start is not None and header.start is not None and hyp_start != header.start:
        # align the hypnogram's epoch grid to the PSG when the two start at different times
        shift = int(round((hyp_start - header.start).total_seconds() / EPOCH_S))
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
    info: dict | None = None,
) -> SleepData:
    """SleepData from Sleep-EDF-layout sources (``psg`` + ``hypnogram`` files), cached."""

    def reader(src: Source) -> EpochRecording:
        return read_sleep_edf_pair(
            src.files["psg"], src.files["hypnogram"], channel=channel, sfreq=SFREQ_HZ,
            allow_resample=allow_resample, wake_edge_min=wake_edge_min,
        )

    params = {"channel": channel, "resample": allow_resample, "wake_edge_min": wake_edge_min}
    return prepare_sources(
        dataset_id, sources, reader, options, sfreq=SFREQ_HZ, params=params, code_version=CODE_VERSION,
        info={"channel": channel, "sfreq_hz": SFREQ_HZ, **(info or {})},
    )


# --------------------------------------------------------------------------- plugin


class SleepEDF:
    """Sleep-EDF Expanded sleep-cassette, single channel EEG Fpz-Cz at 100 Hz."""

    id = "sleep-edf"
    version = "1.0.0"
    description = "Sleep-EDF Expanded sleep-cassette, EEG Fpz-Cz 100 Hz (protocols: paper, sleep-edf-20, sleep-edf-78)"
    citation = CITATION
    protocols = PROTOCOLS
    options = (
        Option("channel", str, CHANNEL, "EEG channel to read ('EEG Pz-Oz' is the other one)", paper=CHANNEL),
        Option("resample", bool, True, "resample a channel not at 100 Hz, with a warning; false makes it an error",
               paper=NOT_IN_PAPER),
        Option("wake_edge_min", float, WAKE_EDGE_MIN, "minutes of wake kept before the first and after the last sleep epoch",
               minimum=0, paper=WAKE_EDGE_MIN),
    )

    def prepare(self, options: DatasetOptions) -> SleepData:
        """Load the protocol's recordings from ``options.data_dir`` (or MNE's folder), cached."""
        extra = fill_options(self.options, options.extra, self.id)
        protocol = options.protocol or "paper"
        wanted = protocol_recordings(protocol, options.n_subjects)
        root = Path(options.data_dir).expanduser() if options.data_dir is not None else default_data_root()
        found = find_files(root)
        missing = [(s, n) for s, n in wanted if len(found.get(recording_id(s, n), {})) < (2 if options.allow_download else 1)]
        if missing and options.allow_download:
            self._download(missing, root)
            found = find_files(root)
            missing = [(s, n) for s, n in wanted if recording_id(s, n) not in found]
        if missing:
            names = ", ".join(recording_id(s, n) for s, n in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise PluginError(
                f"dataset 'sleep-edf': {len(missing)} of {len(wanted)} recordings of protocol '{protocol}' are not in {root} "
                f"({names}); put the sleep-cassette files (SC4ssNE0-PSG.edf and SC4ssNE?-Hypnogram.edf from "
                "https://physionet.org/content/sleep-edfx/1.0.0/) in the data directory (--data-dir), "
                "allow the download (--download), or use fewer subjects (n_subjects)"
            )
        sources = pair_sources(found, [(recording_id(s, n), subject_id(s)) for s, n in wanted])
        return load_sleep_edf_sources(
            self.id, sources, options, channel=extra["channel"], allow_resample=extra["resample"],
            wake_edge_min=extra["wake_edge_min"],
            info={"protocol": protocol, "protocol_description": PROTOCOLS[protocol], "data_dir": str(root), "citation": CITATION},
        )

    @staticmethod
    def _download(missing: list[tuple[int, int]], root: Path) -> None:
        """Fetch the missing nights from PhysioNet with MNE (hash-checked) into ``root``."""
        from mne.datasets.sleep_physionet import age

        # MNE stores under <path>/physionet-sleep-data; pass the parent when root is that folder
        path = root.parent if root.name == "physionet-sleep-data" else root
        path.mkdir(parents=True, exist_ok=True)
        try:
            for night in sorted({n for _, n in missing}):
                subjects = sorted({s for s, n in missing if n == night})
                age.fetch_data(subjects=subjects, recording=[night], path=str(path), on_missing="warn")
        except Exception as exc:
            raise PluginError(f"dataset 'sleep-edf': download into {path} failed ({type(exc).__name__}: {exc})") from None


@hookimpl
def register_datasets(register) -> None:
    register(SleepEDF())
