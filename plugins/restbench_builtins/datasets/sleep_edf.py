"""Sleep-EDF Expanded, sleep-cassette study (plugin id ``sleep-edf``).

Reads ``SC4ssNE0-PSG.edf`` with its ``SC4ssNE?-Hypnogram.edf`` (paired on the ``SC4ssN``
prefix: the scorer letter varies) through MNE, channel ``EEG Fpz-Cz`` at 100 Hz, in microvolts.
Labels W/N1/N2/N3 (R&K 3+4)/REM; ``Sleep stage ?`` and ``Movement time`` epochs are excluded
(leaving gaps no window spans); 30 min of wake are kept before the first and after the last
sleep epoch; the hypnogram is cropped to the PSG.

Input is checked strictly: an annotation that is neither a sleep stage nor ``Movement time``,
a channel recorded below 100 Hz (upsampling), two hypnograms (or PSGs) for one night, a
hypnogram scoring less than half of its PSG, and a hypnogram whose header start is more than
24 h from its PSG's are errors naming the file. The ``lenient_input`` option turns each into a
note in the dataset's ``info["notes"]`` (shown in run.json) and uses the input anyway.

:func:`read_sleep_edf_pair` reads one night; the ``sleep-synth`` dataset reuses it on the EDF
files it writes, so the embedded default goes through this loader too.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from restbench import hookimpl
from restbench.api import DatasetOptions, PluginError, UsageError
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

if TYPE_CHECKING:  # numpy is imported where a night is read: listing the datasets must not import it
    import numpy as np

    from restbench.data.sleep_data import SleepData

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
UNSCORED, MOVEMENT = -1, -2
EXCLUDED_ANNOTATIONS = {"Sleep stage ?": UNSCORED, "Movement time": MOVEMENT}

#: A hypnogram must score (stage or movement) at least this share of its PSG's epochs.
MIN_COVERAGE = 0.5
#: Hypnogram and PSG header starts further apart than this are an error, not a realignment.
MAX_START_OFFSET_S = 24 * 3600.0
#: What the error messages suggest as the way out.
LENIENT_HINT = "lenient_input=true uses it anyway, with a note"

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
#: Candidate file names for :func:`find_all_files` (any case of the extension: ``.edf``, ``.EDF``).
FILE_GLOB = "[Ss][Cc]4*.[Ee][Dd][Ff]"
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


def find_all_files(root: Path) -> dict[str, dict[str, list[Path]]]:
    """``SC4ssN`` prefix -> {"psg": [paths], "hypnogram": [paths]} for files anywhere under
    ``root`` (names matched in any case, ``.EDF`` included); each list in sorted order."""
    found: dict[str, dict[str, list[Path]]] = {}
    if not root.is_dir():
        return found
    for path in sorted(root.rglob(FILE_GLOB)):
        for role, pattern in (("psg", PSG_NAME), ("hypnogram", HYPNOGRAM_NAME)):
            match = pattern.match(path.name)
            if match and path.is_file():
                found.setdefault(match.group(1).upper(), {}).setdefault(role, []).append(path)
    return found


def find_files(root: Path) -> dict[str, dict[str, Path]]:
    """``SC4ssN`` prefix -> {"psg": path, "hypnogram": path}: the first of each role in sorted
    order. :func:`pair_sources` given :func:`find_all_files` instead refuses duplicates."""
    return {prefix: {role: paths[0] for role, paths in roles.items()} for prefix, roles in find_all_files(root).items()}


def pair_sources(
    found: dict[str, dict[str, Path | list[Path]]], prefixes: list[tuple[str, str]], *, lenient: bool = False
) -> list[Source]:
    """Sources for ``(prefix, subject)`` pairs; a half pair becomes a source with a problem.

    ``found`` maps a prefix to one path per role (:func:`find_files`) or a list of them
    (:func:`find_all_files`). Two files of one role for one night (two hypnograms, say) are a
    problem naming both, or with ``lenient`` the first in sorted order plus a note.
    """
    sources = []
    for prefix, subject in prefixes:
        candidates = {role: (v if isinstance(v, list) else [v]) for role, v in found.get(prefix, {}).items()}
        files = {role: paths[0] for role, paths in candidates.items()}
        problem, notes = None, []
        for role, paths in candidates.items():
            if len(paths) < 2:
                continue
            what = "hypnograms" if role == "hypnogram" else "PSG files"
            listing = " and ".join(str(p) for p in paths)
            if lenient:
                notes.append(f"{prefix}: {len(paths)} {what} for one night ({listing}); used {paths[0].name} (lenient_input)")
            elif problem is None:
                problem = (str(paths[0]), f"{len(paths)} {what} for night {prefix}: {listing}; keep one "
                                          f"(lenient_input=true uses the first, {paths[0].name})")
        if problem is None and "psg" in files and "hypnogram" not in files:
            problem = (str(files["psg"]), f"PSG without hypnogram (expected {prefix}E?-Hypnogram.edf beside it)")
        elif problem is None and "hypnogram" in files and "psg" not in files:
            problem = (str(files["hypnogram"]), f"hypnogram without PSG (expected {prefix}E0-PSG.edf beside it)")
        sources.append(Source(recording=prefix, subject=subject, files=files, problem=problem, notes=notes))
    return sources


def default_data_root() -> Path:
    """Where MNE's ``sleep_physionet`` fetcher puts the files."""
    import mne

    base = mne.get_config("PHYSIONET_SLEEP_PATH") or mne.get_config("MNE_DATA") or "~/mne_data"
    return Path(base).expanduser() / "physionet-sleep-data"


# --------------------------------------------------------------------------- reading


def read_annotations(path: Path) -> list[tuple[float, float, str]]:
    """``(onset s, duration s, text)`` of every annotation in an EDF+ file.

    MNE reads them; it picks its reader by the file's suffix and knows only ``.edf``, so a file
    named ``*.EDF`` is read with edfio (the two agree on every real Sleep-EDF hypnogram).
    """
    path = Path(path)
    if path.suffix == ".edf":
        import mne

        a = mne.read_annotations(path)
        return [(float(o), float(d), str(t)) for o, d, t in zip(a.onset, a.duration, a.description)]
    import edfio

    return [(float(a.onset), float(a.duration or 0.0), str(a.text)) for a in edfio.read_edf(path).annotations]


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


def trim_wake(stage: np.ndarray, edge_epochs: int) -> np.ndarray:
    """Copy of ``stage`` with everything outside [first sleep - edge, last sleep + edge] unscored."""
    import numpy as np

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
        Option("lenient_input", bool, False,
               "use questionable input (annotations other than sleep stages, a channel below 100 Hz, two hypnograms "
               "for a night, a hypnogram scoring under half the PSG or starting over 24 h from it) with a note in "
               "run.json instead of an error", paper=NOT_IN_PAPER),
    )

    def prepare(self, options: DatasetOptions) -> SleepData:
        """Load the protocol's recordings from ``options.data_dir`` (or MNE's folder), cached."""
        extra = fill_options(self.options, options.extra, self.id)
        protocol = options.protocol or "paper"
        wanted = protocol_recordings(protocol, options.n_subjects)
        root = Path(options.data_dir).expanduser() if options.data_dir is not None else default_data_root()
        found = find_all_files(root)
        missing = [(s, n) for s, n in wanted if len(found.get(recording_id(s, n), {})) < (2 if options.allow_download else 1)]
        if missing and options.allow_download:
            self._download(missing, root)
            found = find_all_files(root)
            missing = [(s, n) for s, n in wanted if recording_id(s, n) not in found]
        if missing:
            names = ", ".join(recording_id(s, n) for s, n in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise UsageError(
                f"dataset 'sleep-edf': {len(missing)} of {len(wanted)} recordings of protocol '{protocol}' are not in {root} "
                f"({names}); put the sleep-cassette files (SC4ssNE0-PSG.edf and SC4ssNE?-Hypnogram.edf from "
                "https://physionet.org/content/sleep-edfx/1.0.0/) in the data directory (--data-dir), "
                "allow the download (--download), or use fewer subjects (n_subjects)"
            )
        sources = pair_sources(found, [(recording_id(s, n), subject_id(s)) for s, n in wanted], lenient=extra["lenient_input"])
        return load_sleep_edf_sources(
            self.id, sources, options, channel=extra["channel"], allow_resample=extra["resample"],
            wake_edge_min=extra["wake_edge_min"], lenient=extra["lenient_input"],
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
