"""Sleep Heart Health Study, visit 1 (plugin id ``shhs``), from a local NSRR copy.

NSRR access needs a data-use agreement, so this dataset never downloads. It reads
``polysomnography/edfs/shhs1/shhs1-NNNNNN.edf`` with its NSRR XML annotations
(``annotations-events-nsrr/shhs1/shhs1-NNNNNN-nsrr.xml``) or, in older copies, Profusion XML
(``annotations-events-profusion/shhs1/shhs1-NNNNNN-profusion.xml``). Channel ``EEG`` (C4-A1) at
125 Hz by default; ``channel=EEG(sec)`` selects C3-A2 under any of its spellings. Stages 3 and 4
merge into N3; unscored and movement epochs are excluded (no window spans the gap). 100 subjects
are drawn at random (seeded) from the sorted ids, as the paper did.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING

from restbench.api import NOT_IN_PAPER, DatasetOptions, Option, PluginError, UsageError, fill_options, hookimpl
from restbench_builtins.datasets.common import (
    EPOCH_S,
    UNSCORED,
    BadRecording,
    EpochRecording,
    Source,
    cut_epochs,
    epochs_to_keep,
    prepare_sources,
    trim_wake,
)
from restbench_builtins.datasets.edf_io import normalise_label, read_channel_uv

if TYPE_CHECKING:  # numpy is imported where a night is read: listing the datasets must not import it
    import numpy as np

    from restbench.api import SleepData

#: Bump when preprocessing changes what lands in the cache.
#: 2: a channel below 125 Hz is refused unless lenient_input (version 1 upsampled it).
CODE_VERSION = "2"

SFREQ_HZ = 125.0
DEFAULT_SUBJECTS = 100
CHANNEL = "EEG"
#: Spellings of the two EEG derivations seen across SHHS copies (matched after normalisation).
CHANNEL_ALIASES = {
    "eeg": ("EEG", "EEG1", "EEG 1"),  # C4-A1
    "eegsec": ("EEG(sec)", "EEG 2", "EEG2", "EEG sec", "EEG(SEC)"),  # C3-A2
}
CHANNEL_ALIASES["eeg1"] = CHANNEL_ALIASES["eeg"]
CHANNEL_ALIASES["eeg2"] = CHANNEL_ALIASES["eegsec"]

#: Stage code (NSRR concept number / Profusion integer) -> stage index; None = excluded.
STAGE_OF_CODE = {0: 0, 1: 1, 2: 2, 3: 3, 4: 3, 5: 4, 6: None, 9: None}

EDF_NAME = re.compile(r"^shhs1-(\d+)\.edf$", re.IGNORECASE)
NSRR_NAME = re.compile(r"^shhs1-(\d+)-nsrr\.xml$", re.IGNORECASE)
PROFUSION_NAME = re.compile(r"^shhs1-(\d+)-profusion\.xml$", re.IGNORECASE)

CITATION = (
    "Quan et al. 1997, Sleep 20(12):1077-1085; Zhang et al. 2018, JAMIA 25(10):1351-1358 (NSRR); "
    "data from the National Sleep Research Resource under its data-use agreement"
)


# --------------------------------------------------------------------------- annotations


def _xml_root(path: Path) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise BadRecording(path, f"cannot parse XML ({exc})") from None


def _epoch_length(root: ET.Element, path: Path) -> None:
    text = root.findtext("EpochLength")
    if text is not None and abs(float(text) - EPOCH_S) > 1e-6:
        raise BadRecording(path, f"epoch length {text} s; only 30-s scoring is supported")


def _stage_of(code: int, path: Path) -> int:
    if code not in STAGE_OF_CODE:
        raise BadRecording(path, f"unknown sleep stage code {code}")
    stage = STAGE_OF_CODE[code]
    return UNSCORED if stage is None else stage


def read_nsrr_stages(path: Path) -> np.ndarray:
    """Stage per 30-s epoch from NSRR XML (``<ScoredEvent>`` with ``EventType`` ``Stages|Stages``).

    One event spans ``Duration / 30`` epochs; unscored/movement and uncovered epochs are -1.
    """
    import numpy as np

    path = Path(path)
    root = _xml_root(path)
    if root.tag != "PSGAnnotation":
        raise BadRecording(path, f"not NSRR XML (root <{root.tag}>, expected <PSGAnnotation>)")
    _epoch_length(root, path)
    events = []
    for event in root.iter("ScoredEvent"):
        if (event.findtext("EventType") or "").strip() != "Stages|Stages":
            continue
        concept = (event.findtext("EventConcept") or "").strip()
        try:
            code = int(concept.rsplit("|", 1)[-1])
            start, duration = float(event.findtext("Start")), float(event.findtext("Duration"))
        except (TypeError, ValueError):
            raise BadRecording(path, f"malformed stage event {concept!r}") from None
        events.append((int(round(start / EPOCH_S)), max(1, int(round(duration / EPOCH_S))), _stage_of(code, path)))
    if not events:
        raise BadRecording(path, "no 'Stages|Stages' events")
    stage = np.full(max(s + n for s, n, _ in events), UNSCORED, dtype=np.int64)
    for start, n, code in events:
        stage[start : start + n] = code
    return stage


def read_profusion_stages(path: Path) -> np.ndarray:
    """Stage per 30-s epoch from Profusion XML (``<SleepStages>``: one integer per epoch)."""
    import numpy as np

    path = Path(path)
    root = _xml_root(path)
    if root.tag != "CMPStudyConfig":
        raise BadRecording(path, f"not Profusion XML (root <{root.tag}>, expected <CMPStudyConfig>)")
    _epoch_length(root, path)
    try:
        codes = [int(e.text) for e in root.iter("SleepStage")]
    except (TypeError, ValueError):
        raise BadRecording(path, "non-integer <SleepStage> value") from None
    if not codes:
        raise BadRecording(path, "no <SleepStage> values")
    return np.array([_stage_of(c, path) for c in codes], dtype=np.int64)


# --------------------------------------------------------------------------- reading


def channel_aliases(channel: str) -> tuple[str, ...]:
    """Names ``channel`` may appear under (the name itself first)."""
    return (channel,) + CHANNEL_ALIASES.get(normalise_label(channel), ())


def read_shhs_pair(
    edf: Path,
    annotations: Path,
    *,
    channel: str = CHANNEL,
    sfreq: float = SFREQ_HZ,
    allow_resample: bool = True,
    wake_edge_min: float | None = None,
    lenient: bool = False,
) -> EpochRecording:
    """Read one SHHS night (EDF + NSRR or Profusion XML) into 30-s epochs in microvolts.

    Raises :class:`BadRecording` naming the file on any problem, including annotations that
    score more than one epoch past the end of the signal and a channel recorded below ``sfreq``
    (upsampled with a note when ``lenient``).
    """
    import numpy as np

    edf, annotations = Path(edf), Path(annotations)
    stage = read_profusion_stages(annotations) if annotations.name.lower().endswith("-profusion.xml") else read_nsrr_stages(annotations)
    x, _, notes = read_channel_uv(edf, channel_aliases(channel), sfreq, allow_resample, allow_upsample=lenient)
    n_sig = int(len(x) // round(EPOCH_S * sfreq))
    scored = np.flatnonzero(stage >= 0)
    # the last, partial epoch of a recording is often scored: tolerate one epoch
    if len(scored) and scored[-1] > n_sig:
        raise BadRecording(
            annotations,
            f"labels and signal lengths disagree: stages are scored until {(scored[-1] + 1) * EPOCH_S:.0f} s "
            f"but {edf.name} holds {n_sig * EPOCH_S:.0f} s",
        )
    stage = stage[:n_sig]
    if wake_edge_min is not None:
        stage = trim_wake(stage, int(round(wake_edge_min * 60 / EPOCH_S)))
    keep, contiguous = epochs_to_keep(stage, n_sig)
    if len(keep) == 0:
        raise BadRecording(annotations, "no scored epochs within the recording")
    return EpochRecording(
        signal=cut_epochs(x, sfreq, keep), labels=stage[keep], contiguous=contiguous, epoch_index=keep, notes=notes
    )


# --------------------------------------------------------------------------- files


def find_files(root: Path) -> dict[str, dict[str, Path]]:
    """Subject id -> {"edf": path, "annotations": path} found anywhere under ``root``.

    NSRR XML is preferred to Profusion XML when both exist.
    """
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(root.rglob("[Ss][Hh][Hh][Ss]1-*")):
        for role, pattern in (("edf", EDF_NAME), ("nsrr", NSRR_NAME), ("profusion", PROFUSION_NAME)):
            match = pattern.match(path.name)
            if match:
                found.setdefault(match.group(1), {}).setdefault(role, path)
    out = {}
    for sid, files in found.items():
        entry = {}
        if "edf" in files:
            entry["edf"] = files["edf"]
        if "nsrr" in files or "profusion" in files:
            entry["annotations"] = files.get("nsrr", files.get("profusion"))
        out[sid] = entry
    return out


def choose_subjects(ids: list[str], n: int, seed: int) -> list[str]:
    """``n`` ids drawn without replacement with ``seed`` from the sorted ids (sorted result)."""
    import numpy as np

    ordered = sorted(ids)
    if n >= len(ordered):
        return ordered
    picked = np.random.default_rng(seed).choice(len(ordered), size=n, replace=False)
    return sorted(ordered[i] for i in picked)


# --------------------------------------------------------------------------- plugin


class SHHS:
    """SHHS visit 1, single EEG channel at 125 Hz, from a local NSRR copy."""

    id = "shhs"
    version = "1.0.0"
    description = "Sleep Heart Health Study visit 1 (local NSRR copy), EEG C4-A1 125 Hz, 100 random subjects"
    citation = CITATION
    protocols = {"paper": "100 subjects drawn with subject_seed from the sorted ids, 80/10/10 subject-wise split"}
    options = (
        Option("channel", str, CHANNEL,
               "EEG channel: 'EEG' (C4-A1) or 'EEG(sec)' (C3-A2; also matches 'EEG 2', 'EEG2', 'EEG sec')",
               paper=CHANNEL),
        Option("resample", bool, True, "resample a channel not at 125 Hz, with a warning; false makes it an error",
               paper=NOT_IN_PAPER),
        Option("subject_seed", int, 0, "seed of the random choice of subjects", minimum=0, paper=NOT_IN_PAPER),
        Option("wake_edge_min", float, None, "keep only this many minutes of wake around sleep (null: the whole night)",
               minimum=0, nullable=True),
        Option("lenient_input", bool, False,
               "upsample a channel recorded below 125 Hz, with a note in run.json, instead of refusing it",
               paper=NOT_IN_PAPER),
    )

    def prepare(self, options: DatasetOptions) -> SleepData:
        """Load the chosen subjects from ``options.data_dir`` (never downloads), cached."""
        extra = fill_options(self.options, options.extra, self.id)
        if options.protocol not in (None, "paper"):
            raise UsageError(f"dataset 'shhs': unknown protocol {options.protocol!r}; valid protocols: paper")
        where = (
            "SHHS needs a local NSRR copy (https://sleepdata.org/datasets/shhs, data-use agreement; restbench never "
            "downloads it): pass its folder holding polysomnography/edfs/shhs1/*.edf and "
            "polysomnography/annotations-events-nsrr/shhs1/*-nsrr.xml as the data directory (--data-dir)"
        )
        if options.data_dir is None or not Path(options.data_dir).expanduser().is_dir():
            raise UsageError(f"dataset 'shhs': no data directory{'' if options.data_dir is None else f' at {options.data_dir}'}; {where}")
        root = Path(options.data_dir).expanduser()
        found = find_files(root)
        if not found:
            raise PluginError(f"dataset 'shhs': no shhs1-*.edf or shhs1-*.xml files under {root}; {where}")
        n = options.n_subjects if options.n_subjects is not None else DEFAULT_SUBJECTS
        if n < 1:
            raise UsageError(f"n_subjects={n}: must be at least 1")
        chosen = choose_subjects(list(found), n, extra["subject_seed"])
        sources = []
        for sid in chosen:
            files = found[sid]
            problem = None
            if "edf" not in files:
                problem = (str(files["annotations"]), f"annotations without EDF (expected shhs1-{sid}.edf in polysomnography/edfs/shhs1)")
            elif "annotations" not in files:
                problem = (str(files["edf"]), f"EDF without annotations (expected shhs1-{sid}-nsrr.xml in annotations-events-nsrr/shhs1)")
            sources.append(Source(recording=f"shhs1-{sid}", subject=sid, files=files, problem=problem))

        def reader(src: Source) -> EpochRecording:
            return read_shhs_pair(
                src.files["edf"], src.files["annotations"], channel=extra["channel"], sfreq=SFREQ_HZ,
                allow_resample=extra["resample"], wake_edge_min=extra["wake_edge_min"], lenient=extra["lenient_input"],
            )

        params = {"channel": extra["channel"], "resample": extra["resample"], "wake_edge_min": extra["wake_edge_min"],
                  "lenient_input": extra["lenient_input"]}
        notes = [] if len(chosen) == n else [f"only {len(chosen)} subjects found; {n} requested"]
        return prepare_sources(
            self.id, sources, reader, options, sfreq=SFREQ_HZ, params=params, code_version=CODE_VERSION,
            info={
                "protocol": "paper", "channel": extra["channel"], "sfreq_hz": SFREQ_HZ, "data_dir": str(root),
                "subject_seed": extra["subject_seed"], "subjects_available": len(found), "chosen_subjects": chosen,
                "selection_notes": notes, "citation": CITATION,
            },
        )


@hookimpl
def register_datasets(register) -> None:
    register(SHHS())
