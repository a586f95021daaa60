"""Your own recordings: a folder of EEG files and their hypnograms (plugin id ``edf-folder``).

``restbench run --dataset edf-folder --data-dir FOLDER --set edf-folder.channel='EEG C4-A1'``

Recordings are the files under FOLDER (searched recursively) with one of ``extensions``
(default: EDF, EDF+, BDF, GDF, FIF, BrainVision ``.vhdr``, EEGLAB ``.set``: what MNE reads). A
recording's id is its path under FOLDER without the extension (``night1``, ``site-a/p07``).

Hypnogram, the first found of:

1. a companion file beside the recording, named like it plus one of ``hypnogram_suffixes``
   (case ignored): ``p07-hypnogram.edf`` (EDF+ annotations), ``p07.txt`` / ``p07.csv`` /
   ``p07-hypnogram.csv`` (one stage per 30-s epoch from the recording's start). Files named so are
   hypnograms, never recordings; two for one recording are an error;
2. sleep-stage annotations in the recording itself (EDF+ ``Sleep stage W`` ... or ``W``, ``N2``,
   ``REM``; other annotations such as arousals are ignored).

A text/CSV hypnogram holds one 30-s epoch per line; ``#`` starts a comment. With several fields
(comma, semicolon or tab separated) the stage is the column headed ``stage``, ``sleep_stage``,
``label``, ``hypnogram`` or ``annotation`` when there is a header line, else the last field.
Stages are words (``W``/``Wake``, ``N1``/``S1``/``Stage 1``, ``N2``, ``N3``, ``S3``, ``S4``,
``R``/``REM``, ``Sleep stage ?``, ``Movement time``) or numbers: R&K codes by default (0 W, 1-4,
5 REM, 6 movement, 9 unscored), AASM codes with ``stage_codes=aasm`` (0 W, 1 N1, 2 N2, 3 N3,
4 REM). R&K stages map to AASM: S3 and S4 are N3. Movement and unscored epochs are dropped (no
window spans the gap).

Signal: channel ``channel`` (matched ignoring case, spaces and punctuation; alternatives
separated by ``|``) in microvolts (MNE reads volts), resampled with MNE (polyphase) to ``sfreq``
(100 Hz, what the built-in model expects). A channel recorded below ``sfreq`` is refused unless
``allow_upsample``. Hypnogram and signal must agree in length to within
``length_tolerance_epochs`` 30-s epochs (a text hypnogram) or score no sleep past the signal's
end (annotations); the longer one is cropped.

Subjects: ``subject_pattern``, a regular expression matched at the start of each recording's
file name without extension, gives its subject: the group named ``subject``, else the first
group, else the whole match. The default takes the whole name (every night its own subject);
for ``sub-01_night2.edf`` use ``^(sub-\\d+)`` so one subject's nights stay in one split.

Split: subject-wise, 80/10/10, deterministic in the data seed the run hands the dataset
(:func:`restbench.data.sleep_data.subject_split`), or read from ``split_file``: JSON
``{"train": [...], "val": [...], "test": [...]}`` of subject ids (every loaded subject in
exactly one split; a relative path is looked up in the current directory, then in FOLDER).

A file that cannot be used stops the run with one line naming it and what to do (``--skip-bad``
skips it and lists it in run.json instead). Heavy libraries (numpy, MNE) are imported inside
functions: every CLI call imports every plugin.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from restbench.api import NOT_IN_PAPER, DatasetOptions, Option, PluginError, UsageError, fill_options, hookimpl
from restbench_builtins.datasets.common import EPOCH_S, MOVEMENT, UNSCORED

if TYPE_CHECKING:
    import numpy as np

    from restbench.api import SleepData
    from restbench_builtins.datasets.common import EpochRecording, Source

ID = "edf-folder"
#: Bump when preprocessing changes what lands in the cache.
CODE_VERSION = "1"

EXTENSIONS = [".edf", ".bdf", ".gdf", ".fif", ".vhdr", ".set"]
HYPNOGRAM_SUFFIXES = ["-hypnogram.edf", "_hypnogram.edf", ".hypnogram.edf", "-hypnogram.txt", "_hypnogram.txt",
                      "-hypnogram.csv", "_hypnogram.csv", ".txt", ".csv", ".tsv"]
#: Readers that can open just the one channel (``include=``), so mixed sampling rates stay apart.
_EDF_FAMILY = {".edf": "read_raw_edf", ".bdf": "read_raw_bdf", ".gdf": "read_raw_gdf"}

#: Stage words (lower case, after removing a ``sleep stage`` / ``stage`` prefix) -> stage code.
STAGE_WORDS = {
    "w": 0, "wake": 0, "awake": 0,
    "n1": 1, "s1": 1,
    "n2": 2, "s2": 2,
    "n3": 3, "s3": 3, "s4": 3, "n4": 3, "sws": 3,
    "r": 4, "rem": 4, "sr": 4,
    "?": UNSCORED, "u": UNSCORED, "unscored": UNSCORED, "unknown": UNSCORED, "nan": UNSCORED, "-": UNSCORED,
    "a": UNSCORED, "artifact": UNSCORED, "artefact": UNSCORED,
    "m": MOVEMENT, "mt": MOVEMENT, "movement": MOVEMENT, "movement time": MOVEMENT,
}
#: Numeric stage codes per convention; R&K's 3 and 4 are both N3.
STAGE_CODES = {
    "rk": {0: 0, 1: 1, 2: 2, 3: 3, 4: 3, 5: 4, 6: MOVEMENT, 7: UNSCORED, 9: UNSCORED, -1: UNSCORED},
    "aasm": {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 6: MOVEMENT, 7: UNSCORED, 9: UNSCORED, -1: UNSCORED},
}
#: Stage words an EDF+ annotation may be without a "sleep stage" prefix (not "A", "M", "U": events use them).
ANNOTATION_WORDS = frozenset({"w", "wake", "n1", "n2", "n3", "n4", "s1", "s2", "s3", "s4", "r", "rem", "?", "unscored",
                              "movement", "movement time"})
NUMBER = r"[-+]?\d+(\.0+)?"
STAGE_COLUMNS = ("stage", "sleep_stage", "sleep stage", "sleepstage", "label", "hypnogram", "annotation", "scoring")
#: An annotation hypnogram must score (stage or movement) at least this share of the signal's epochs.
MIN_COVERAGE = 0.5
#: A companion hypnogram's header start further than this from the recording's is an error.
MAX_START_OFFSET_S = 24 * 3600.0


# --------------------------------------------------------------------------- stage labels


def stage_code(token: str, codes: str = "rk", annotation: bool = False) -> int | None:
    """The stage code (0..4, ``UNSCORED``, ``MOVEMENT``) of one label, or None when it is not a
    stage label. Numbers are read with ``codes``. An ``annotation`` (an EDF+ event, which may
    also be an arousal or a note) counts only when it says ``sleep stage``/``stage`` or is an
    unambiguous stage word. A number after "stage" is R&K (AASM has no stage 4)."""
    text = token.strip().strip('"').strip("'").lower()
    stripped = re.sub(r"^(sleep[\s_-]*)?stage[\s_:-]*", "", text).strip()
    prefixed = stripped != text
    text = re.sub(r"[\s_-]*sleep$", "", stripped).strip()
    if annotation and not prefixed and text not in ANNOTATION_WORDS:
        return None
    if text in STAGE_WORDS:
        return STAGE_WORDS[text]
    if re.fullmatch(NUMBER, text):
        return STAGE_CODES["rk" if annotation or prefixed else codes].get(int(float(text)))  # "stage 4" is R&K
    return None


def read_text_hypnogram(path: Path, codes: str) -> np.ndarray:
    """Stage code per 30-s epoch of a text/CSV hypnogram (see the module docstring)."""
    import numpy as np

    from restbench_builtins.datasets.common import BadRecording

    try:
        lines = Path(path).read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError as exc:
        raise BadRecording(path, f"cannot read the hypnogram ({exc.strerror or exc})") from None
    rows = [(n, line.strip()) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise BadRecording(path, "empty hypnogram: one sleep stage per 30-s epoch expected, one per line")
    delimiter = next((d for d in ("\t", ";", ",") if d in rows[0][1]), None)

    def fields(line: str) -> list[str]:
        return [f.strip() for f in line.split(delimiter)] if delimiter else [line]

    column = -1
    first = fields(rows[0][1])
    if stage_code(first[column], codes) is None and not re.fullmatch(NUMBER, first[column].strip()):
        names = [f.lower().strip('"') for f in first]
        column = next((names.index(c) for c in STAGE_COLUMNS if c in names), -1)
        rows = rows[1:]  # a header line
    stages = []
    for number, line in rows:
        parts = fields(line)
        token = parts[column] if -len(parts) <= column < len(parts) else ""
        code = stage_code(token, codes)
        if code is None:
            raise BadRecording(path, f"line {number}: {token!r} is not a sleep stage (W, N1, N2, N3, S4, REM, ?, "
                                     f"movement, or a {codes.upper()} code); fix the line or set stage_codes")
        stages.append(code)
    return np.asarray(stages, dtype=np.int64)


def stages_from_annotations(events: list[tuple[float, float, str]], path: Path, offset_s: float = 0.0) -> np.ndarray | None:
    """Stage code per 30-s epoch from ``(onset s, duration s, text)`` annotations, onsets shifted
    by ``offset_s`` to the recording's start; epochs no stage covers are ``UNSCORED``. None when
    no annotation is a sleep stage (other annotations, e.g. arousals, are ignored)."""
    import numpy as np

    from restbench_builtins.datasets.common import BadRecording

    spans = []
    for onset, duration, text in events:
        code = stage_code(text, annotation=True)
        if code is None:
            if re.match(r"^\s*sleep[\s_-]*stage", text, re.IGNORECASE):
                raise BadRecording(path, f"unknown sleep-stage annotation {text!r}; use W, 1, 2, 3, 4, R, N1, N2, N3 "
                                         "or ? (R&K 3 and 4 become N3)")
            continue
        start = int(round((onset + offset_s) / EPOCH_S))
        spans.append((start, max(1, int(round(duration / EPOCH_S))), code))
    spans = [(max(s, 0), n - (max(s, 0) - s), c) for s, n, c in spans if s + n > 0]  # before the recording: cut
    if not spans:
        return None
    stage = np.full(max(s + n for s, n, _ in spans), UNSCORED, dtype=np.int64)
    for start, n, code in spans:
        stage[start : start + n] = code
    return stage


# --------------------------------------------------------------------------- files


def _suffix_of(path: Path, suffixes: list[str]) -> str | None:
    name = path.name.lower()
    return next((s for s in sorted(suffixes, key=len, reverse=True) if name.endswith(s.lower()) and len(name) > len(s)), None)


def find_recordings(root: Path, extensions: list[str], hypnogram_suffixes: list[str]) -> tuple[list[Source], list[str]]:
    """One :class:`Source` per recording under ``root`` (files ``recording`` and, when found,
    ``hypnogram``), in path order, and the hypnogram files no recording claims."""
    from restbench_builtins.datasets.common import Source

    exts = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    recordings, hypnograms = [], {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        suffix = _suffix_of(path, hypnogram_suffixes)
        if suffix is not None:
            stem = path.name[: len(path.name) - len(suffix)]
            hypnograms.setdefault((path.parent, stem.lower()), []).append(path)
        elif path.suffix.lower() in exts:
            recordings.append(path)
    sources, claimed = [], set()
    for path in recordings:
        key = (path.parent, path.stem.lower())
        found = hypnograms.get(key, [])
        claimed.add(key)
        files = {"recording": path}
        problem = None
        if len(found) > 1:
            problem = (str(path), f"{len(found)} hypnograms for one recording ({', '.join(p.name for p in found)}); "
                                  "keep one")
        elif found:
            files["hypnogram"] = found[0]
        rec_id = path.relative_to(root).with_suffix("").as_posix()
        sources.append(Source(recording=rec_id, subject="", files=files, problem=problem))
    orphans = [str(p) for key, paths in sorted(hypnograms.items(), key=str) if key not in claimed for p in paths]
    return sources, orphans


def subject_of(recording_file: Path, pattern: re.Pattern) -> str:
    """The subject id ``pattern`` gives for a recording file (see the module docstring)."""
    stem = recording_file.stem
    match = pattern.match(stem)
    if match is None:
        raise UsageError(f"dataset '{ID}': {recording_file}: its name {stem!r} does not match subject_pattern "
                         f"{pattern.pattern!r}; change the pattern (--set {ID}.subject_pattern=...) or move the file "
                         "out of the data directory")
    if "subject" in pattern.groupindex:
        subject = match.group("subject")
    else:
        subject = match.group(1) if pattern.groups else match.group(0)
    if not subject:
        raise UsageError(f"dataset '{ID}': {recording_file}: subject_pattern {pattern.pattern!r} matches an empty "
                         "subject id; make its group match at least one character")
    return subject


def read_split_file(value: str, root: Path) -> tuple[Path, dict[str, list[str]]]:
    """The split file's path and its ``{"train", "val", "test"}`` lists of subject ids."""
    path = Path(value).expanduser()
    if not path.is_absolute() and not path.is_file() and (root / path).is_file():
        path = root / path
    where = f"dataset '{ID}': split_file {path}"
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{where}: file not found; give a JSON file of subject ids per split") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{where}: not a readable JSON file ({exc}); expected "
                         '{"train": [...], "val": [...], "test": [...]}') from None
    if not isinstance(loaded, dict) or set(loaded) != {"train", "val", "test"} or not all(
            isinstance(v, list) and all(isinstance(s, (str, int)) for s in v) for v in loaded.values()):
        raise UsageError(f'{where}: expected exactly {{"train": [...], "val": [...], "test": [...]}} with lists of '
                         "subject ids")
    split = {name: [str(s) for s in loaded[name]] for name in ("train", "val", "test")}
    seen: dict[str, str] = {}
    for name, subjects in split.items():
        for subject in subjects:
            if subject in seen:
                raise UsageError(f"{where}: subject {subject!r} is in both {seen[subject]} and {name}; "
                                 "a subject belongs to one split")
            seen[subject] = name
    return path, split


def split_from_file(path: Path, wanted: dict[str, list[str]], notes: list[str]):
    """A ``split`` function for :func:`prepare_sources`: the file's split restricted to the loaded
    subjects; a loaded subject the file does not name, or an empty split, is an error."""

    def split(recording_subjects: list[str]) -> dict[str, list[str]]:
        loaded = set(recording_subjects)
        listed = {s for subjects in wanted.values() for s in subjects}
        missing = sorted(loaded - listed)
        if missing:
            raise UsageError(f"dataset '{ID}': split_file {path} does not name subject(s) {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}; add each to train, val or test")
        absent = sorted(listed - loaded)
        if absent:
            notes.append(f"split_file {path.name}: {len(absent)} listed subject(s) not loaded "
                         f"({', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''})")
        out = {name: sorted(s for s in subjects if s in loaded) for name, subjects in wanted.items()}
        empty = [name for name, subjects in out.items() if not subjects]
        if empty:
            raise UsageError(f"dataset '{ID}': split_file {path}: no loaded subject in {', '.join(empty)}; every split "
                             "needs at least one")
        return out

    return split


# --------------------------------------------------------------------------- reading


def read_recording_channel(path: Path, channels: tuple[str, ...], sfreq: float, allow_upsample: bool):
    """One channel of a recording in microvolts at ``sfreq`` Hz.

    Returns ``(signal float64 uV, annotations [(onset s from the first sample, duration s,
    text)], start datetime or None, notes)``. Raises :class:`BadRecording` naming the file.
    """
    import mne

    from restbench_builtins.datasets.common import BadRecording
    from restbench_builtins.datasets.edf_io import check_complete, check_signal, match_channel, read_edf_header

    suffix = path.suffix.lower()
    if suffix == ".edf":  # MNE reads a truncated EDF without complaint
        try:
            check_complete(read_edf_header(path))
        except BadRecording as exc:
            hint = "" if "again" in exc.reason else "; replace it with a readable copy or remove it"
            raise BadRecording(path, exc.reason + hint) from None
    reader = getattr(mne.io, _EDF_FAMILY[suffix]) if suffix in _EDF_FAMILY else mne.io.read_raw
    try:
        raw = reader(path, preload=False, verbose="error")
    except Exception as exc:  # MNE raises many kinds of errors on damaged or foreign files
        raise BadRecording(path, f"MNE cannot read it ({type(exc).__name__}: {_first_line(exc)}); check the file is "
                                 "complete and in a format MNE reads, or remove it") from None
    try:
        label = match_channel(list(raw.ch_names), channels, path)
    except BadRecording as exc:
        raise BadRecording(path, f"{exc.reason}; set the channel with --set {ID}.channel=NAME") from None
    notes: list[str] = []
    try:
        if suffix in _EDF_FAMILY:  # open just this channel: its own rate, not the file's highest
            raw = reader(path, include=[label], preload=False, verbose="error")
        else:
            raw.pick([label])
        file_hz = float(raw.info["sfreq"])
        if file_hz < sfreq - 1e-6 and not allow_upsample:
            raise BadRecording(path, f"channel {label!r} is sampled at {file_hz:g} Hz, below the {sfreq:g} Hz the "
                                     f"model needs; upsampling adds no information (--set {ID}.allow_upsample=true "
                                     "does it anyway, with a note)")
        raw.load_data(verbose="error")
        if abs(file_hz - sfreq) > 1e-6:
            raw.resample(sfreq, method="polyphase", verbose="error")
            notes.append(f"{path.name}: channel {label!r} resampled from {file_hz:g} Hz to {sfreq:g} Hz with MNE")
        x = raw.get_data(picks=[0])[0] * 1e6  # MNE returns volts
    except BadRecording:
        raise
    except Exception as exc:
        raise BadRecording(path, f"MNE cannot read channel {label!r} ({type(exc).__name__}: {_first_line(exc)}); "
                                 "check the file is complete, or remove it") from None
    check_signal(x, path, label)
    annotations = raw.annotations
    # with a measurement date, onsets count from it, and the data from first_samp on
    shift = raw.first_time if annotations.orig_time is not None else 0.0
    events = [(float(o) - shift, float(d), str(t)) for o, d, t in zip(annotations.onset, annotations.duration,
                                                                      annotations.description)]
    start = raw.info.get("meas_date")
    return x, events, (start.replace(tzinfo=None) if start is not None else None), notes


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def read_hypnogram_file(path: Path, codes: str, rec_start, rec_name: str) -> tuple[np.ndarray, str, list[str]]:
    """Stage codes per epoch from a companion hypnogram, its kind (``text`` or ``annotations``)
    and notes. An EDF+ companion is aligned to the recording by the two header starts."""
    from restbench_builtins.datasets.common import BadRecording

    if path.suffix.lower() not in (".edf", ".bdf"):
        return read_text_hypnogram(path, codes), "text", []
    from restbench_builtins.datasets.edf_io import check_complete, read_annotations, read_edf_header

    header = read_edf_header(path)
    check_complete(header)
    try:
        events = read_annotations(path)
    except Exception as exc:
        raise BadRecording(path, f"cannot read its EDF+ annotations ({type(exc).__name__}: {_first_line(exc)}); "
                                 "write the hypnogram as EDF+ annotations or one stage per line in a text file") from None
    offset, notes = 0.0, []
    if header.start is not None and rec_start is not None and header.start != rec_start:
        offset = (header.start - rec_start).total_seconds()
        if abs(offset) > MAX_START_OFFSET_S:
            raise BadRecording(path, f"starts {abs(offset) / 3600:.0f} h {'after' if offset > 0 else 'before'} "
                                     f"{rec_name}: one of the two headers has a wrong date; fix it")
        notes.append(f"{path.name}: starts {offset:+.0f} s from {rec_name}; aligned")
    stage = stages_from_annotations(events, path, offset)
    if stage is None:
        raise BadRecording(path, "no sleep-stage annotations (e.g. 'Sleep stage W', 'N2', 'REM'); not a hypnogram")
    return stage, "annotations", notes


def fit_to_signal(stage: np.ndarray, n_signal: int, kind: str, tolerance: int, hyp: Path, rec: Path) -> np.ndarray:
    """``stage`` cropped or padded (unscored) to ``n_signal`` epochs, after checking the two agree."""
    import numpy as np

    from restbench_builtins.datasets.common import BadRecording

    signal_s = n_signal * EPOCH_S
    if kind == "text":
        if abs(len(stage) - n_signal) > tolerance:
            raise BadRecording(hyp, f"labels and signal lengths disagree: {len(stage)} epochs scored "
                                    f"({len(stage) * EPOCH_S:.0f} s) but {rec.name} holds {n_signal} full 30-s epochs "
                                    f"({signal_s:.0f} s); one stage per 30-s epoch from the recording's start expected "
                                    f"(length_tolerance_epochs={tolerance})")
    else:
        scored = np.flatnonzero(stage != UNSCORED)
        late = scored[scored >= n_signal + tolerance]
        if len(late):
            raise BadRecording(hyp, f"labels and signal lengths disagree: stages are scored until "
                                    f"{(late[-1] + 1) * EPOCH_S:.0f} s but {rec.name} ends at {signal_s:.0f} s")
        covered = int(np.sum(stage[:n_signal] != UNSCORED))
        if n_signal and covered < MIN_COVERAGE * n_signal:
            raise BadRecording(hyp, f"labels and signal lengths disagree: the hypnogram scores {covered} of the "
                                    f"{n_signal} epochs of {rec.name} ({100 * covered / n_signal:.0f}%, at least "
                                    f"{100 * MIN_COVERAGE:.0f}% expected); is it this recording's?")
    out = np.full(n_signal, UNSCORED, dtype=np.int64)
    out[: min(n_signal, len(stage))] = stage[:n_signal]
    return out


def read_recording(src: Source, extra: dict[str, Any]) -> EpochRecording:
    """One recording and its hypnogram as 30-s epochs (see the module docstring)."""
    import numpy as np

    from restbench_builtins.datasets.common import BadRecording, EpochRecording, cut_epochs, epochs_to_keep, trim_wake

    rec = src.files["recording"]
    sfreq = float(extra["sfreq"])
    channels = tuple(c.strip() for c in str(extra["channel"]).split("|") if c.strip())
    x, events, start, notes = read_recording_channel(rec, channels, sfreq, extra["allow_upsample"])
    n_signal = int(len(x) // round(EPOCH_S * sfreq))
    if "hypnogram" in src.files:
        hyp = src.files["hypnogram"]
        stage, kind, hyp_notes = read_hypnogram_file(hyp, extra["stage_codes"], start, rec.name)
        notes += hyp_notes
    else:
        hyp, kind = rec, "annotations"
        stage = stages_from_annotations(events, rec)
        if stage is None:
            expected = ", ".join(f"{rec.stem}{s}" for s in extra["hypnogram_suffixes"][:3])
            raise BadRecording(rec, f"no hypnogram: no companion file ({expected}, ...: hypnogram_suffixes) beside it "
                                    "and no sleep-stage annotations in it; add one")
    stage = fit_to_signal(stage, n_signal, kind, int(extra["length_tolerance_epochs"]), hyp, rec)
    if extra["wake_edge_min"] is not None:
        stage = trim_wake(stage, int(round(extra["wake_edge_min"] * 60 / EPOCH_S)))
    keep, contiguous = epochs_to_keep(stage, n_signal)
    if not len(keep):
        raise BadRecording(hyp, f"no scored epoch within the {n_signal * EPOCH_S:.0f} s of {rec.name}")
    return EpochRecording(signal=cut_epochs(x, sfreq, keep), labels=stage[keep].astype(np.int64),
                          contiguous=contiguous, epoch_index=keep, notes=notes)


# --------------------------------------------------------------------------- plugin


class EdfFolder:
    """A folder of your own recordings (EDF/BDF/... with EDF+ or text hypnograms)."""

    id = ID
    version = "1.0.0"
    description = "Your own recordings: a folder of EDF/BDF (anything MNE reads) with EDF+ or text/CSV hypnograms"
    citation = None
    options = (
        Option("channel", str, "EEG Fpz-Cz", "EEG channel to read, by name (case, spaces and punctuation ignored); "
               "alternatives separated by '|' are tried in order", paper=NOT_IN_PAPER),
        Option("sfreq", float, 100.0, "sampling rate in Hz the model gets; other rates are resampled with MNE "
               "(100 Hz: what the built-in model expects)", minimum=1.0, paper=NOT_IN_PAPER),
        Option("allow_upsample", bool, False, "use a channel recorded below sfreq (upsampled, with a note) instead of "
               "refusing it", paper=NOT_IN_PAPER),
        Option("subject_pattern", str, "(.+)", "regular expression matched at the start of each recording's file name "
               "(no extension); its group 'subject' (else its first group, else the match) is the subject id, e.g. "
               r"'^(sub-\d+)' for sub-01_night2.edf", paper=NOT_IN_PAPER),
        Option("split_file", str, None, 'JSON file {"train": [...], "val": [...], "test": [...]} of subject ids '
               "(null: a seeded 80/10/10 subject-wise split)", nullable=True, paper=NOT_IN_PAPER),
        Option("extensions", list, EXTENSIONS, "file extensions that are recordings", item=str, paper=NOT_IN_PAPER),
        Option("hypnogram_suffixes", list, HYPNOGRAM_SUFFIXES, "a recording NAME.EXT's hypnogram is NAME + one of these "
               "(case ignored); .edf/.bdf: EDF+ annotations, else text/CSV with one stage per 30-s epoch",
               item=str, paper=NOT_IN_PAPER),
        Option("stage_codes", str, "rk", "numeric stages in text hypnograms: rk (0 W, 1-4, 5 REM, 6 movement, "
               "9 unscored) or aasm (0 W, 1 N1, 2 N2, 3 N3, 4 REM)", choices=("rk", "aasm"), paper=NOT_IN_PAPER),
        Option("length_tolerance_epochs", int, 1, "30-s epochs by which a text hypnogram may be longer or shorter "
               "than the signal (the longer is cropped)", minimum=0, paper=NOT_IN_PAPER),
        Option("wake_edge_min", float, None, "keep only this many minutes of wake before the first and after the "
               "last sleep epoch (null: every scored epoch)", nullable=True, minimum=0, paper=NOT_IN_PAPER),
    )

    def prepare(self, options: DatasetOptions) -> SleepData:
        """Find the recordings under ``options.data_dir``, read them (cached) and split them by subject."""
        from restbench_builtins.datasets.common import first_subjects, prepare_sources

        extra = fill_options(self.options, options.extra, self.id)
        if options.protocol not in (None, "default"):
            raise UsageError(f"dataset '{ID}': no protocols; drop --protocol {options.protocol}")
        if options.data_dir is None or not Path(options.data_dir).expanduser().is_dir():
            where = "" if options.data_dir is None else f" at {options.data_dir}"
            raise UsageError(f"dataset '{ID}': no data directory{where}; pass the folder of your recordings "
                              "with --data-dir")
        root = Path(options.data_dir).expanduser()
        suffixes = [str(s) for s in extra["hypnogram_suffixes"]]
        clash = [s for s in suffixes if s.lower() in {e.lower() for e in extra["extensions"]}]
        if clash:
            raise UsageError(f"dataset '{ID}': hypnogram suffix {clash[0]!r} is also a recording extension; use a "
                             "suffix such as '-hypnogram.edf'")
        try:
            pattern = re.compile(extra["subject_pattern"])
        except re.error as exc:
            raise UsageError(f"dataset '{ID}': subject_pattern {extra['subject_pattern']!r} is not a regular "
                             f"expression ({exc})") from None
        sources, orphans = find_recordings(root, extra["extensions"], suffixes)
        if not sources:
            raise PluginError(f"dataset '{ID}': no recordings ({', '.join(extra['extensions'])}) under {root}; put "
                              "your files in the data directory (--data-dir) or set extensions")
        for src in sources:
            src.subject = subject_of(src.files["recording"], pattern)
        keep = set(first_subjects([s.subject for s in sources], options.n_subjects))
        sources = [s for s in sources if s.subject in keep]
        notes = [f"hypnogram without a recording, not used: {p}" for p in orphans]
        split, split_info = None, {}
        if extra["split_file"] is not None:
            path, wanted = read_split_file(extra["split_file"], root)
            split = split_from_file(path, wanted, notes)
            split_info = {"split_file": str(path)}

        def reader(src: Source) -> EpochRecording:
            return read_recording(src, extra)

        params = {k: v for k, v in extra.items() if k != "split_file"}  # the split is not in the epochs
        try:
            data = prepare_sources(self.id, sources, reader, options, sfreq=float(extra["sfreq"]), params=params,
                                   code_version=CODE_VERSION, split=split,
                                   info={"data_dir": str(root), "channel": extra["channel"], "sfreq_hz": extra["sfreq"],
                                         **split_info})
        except UsageError:
            raise
        except PluginError as exc:  # a bad input file: the user's to fix
            raise UsageError(str(exc)) from None
        data.info["notes"] = [*data.info.get("notes", []), *notes]
        return data


@hookimpl
def register_datasets(register) -> None:
    register(EdfFolder())
