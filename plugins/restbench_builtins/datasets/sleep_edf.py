"""Sleep-EDF Expanded, sleep-cassette study (plugin id ``sleep-edf``).

Finds ``SC4ssNE0-PSG.edf`` with its ``SC4ssNE?-Hypnogram.edf`` (paired on the ``SC4ssN``
prefix: the scorer letter varies) and reads each night through MNE, channel ``EEG Fpz-Cz`` at
100 Hz, in microvolts (:mod:`.sleep_edf_format`). Labels W/N1/N2/N3 (R&K 3+4)/REM;
``Sleep stage ?`` and ``Movement time`` epochs are excluded (leaving gaps no window spans); 30 min
of wake are kept before the first and after the last sleep epoch; the hypnogram is cropped to the
PSG.

Input is checked strictly: an annotation that is neither a sleep stage nor ``Movement time``,
a channel recorded below 100 Hz (upsampling), two hypnograms (or PSGs) for one night, a
hypnogram scoring less than half of its PSG, and a hypnogram whose header start is more than
24 h from its PSG's are errors naming the file. The ``lenient_input`` option turns each into a
note in the dataset's ``info["notes"]`` (shown in run.json) and uses the input anyway.

:func:`restbench_builtins.datasets.sleep_edf_format.read_sleep_edf_pair` reads one night; the
``sleep-synth`` dataset reuses it on the EDF files it writes, so the embedded default goes through
this loader too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from restbench.api import NOT_IN_PAPER, DatasetOptions, Option, PluginError, UsageError, fill_options, hookimpl
from restbench_builtins.datasets.common import Source, first_subjects
from restbench_builtins.datasets.sleep_edf_format import (
    CHANNEL,
    WAKE_EDGE_MIN,
    load_sleep_edf_sources,
    recording_id,
    subject_id,
)

if TYPE_CHECKING:
    from restbench.api import SleepData

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
            # a data directory that holds many copies (e.g. a cache folder) names three, not all
            listing = " and ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
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
