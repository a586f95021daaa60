"""Reading EDF files: one EEG channel, with the checks raw files need, and EDF+ annotations.

MNE reads a truncated EDF without complaint (it returns fewer samples), so the header is parsed
here first and the file size checked against it. Channels are matched on normalised names so
spelling variants (``EEG(sec)``, ``EEG 2``, ``EEG sec``) resolve to the same channel.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from restbench_builtins.datasets.common import BadRecording

if TYPE_CHECKING:  # numpy is imported where a signal is read
    import numpy as np

_FIXED_HEADER_BYTES = 256
_SIGNAL_HEADER_BYTES = 256


@dataclass(frozen=True)
class EdfHeader:
    """The parts of an EDF(+) header restbench needs."""

    path: Path
    start: datetime | None  # recording start (None when the header's date is unreadable)
    n_records: int  # -1 when the writer did not know
    record_duration_s: float
    labels: tuple[str, ...]
    samples_per_record: tuple[int, ...]
    header_bytes: int

    def sfreq(self, label: str) -> float:
        """Sampling rate of channel ``label`` in Hz."""
        return self.samples_per_record[self.labels.index(label)] / self.record_duration_s

    @property
    def expected_bytes(self) -> int:
        """File size the header promises (2 bytes per sample)."""
        return self.header_bytes + self.n_records * 2 * sum(self.samples_per_record)

    @property
    def duration_s(self) -> float:
        return self.n_records * self.record_duration_s


def _parse_start(date: str, time: str) -> datetime | None:
    try:
        day, month, year = (int(p) for p in date.split("."))
        hour, minute, second = (int(p) for p in time.split("."))
    except ValueError:
        return None
    year += 1900 if year >= 85 else 2000  # EDF's two-digit year convention
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def read_edf_header(path: Path) -> EdfHeader:
    """Parse ``path``'s header; raise :class:`BadRecording` when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise BadRecording(path, "file not found")
    try:
        with open(path, "rb") as f:
            fixed = f.read(_FIXED_HEADER_BYTES).decode("latin-1")
            if len(fixed) < _FIXED_HEADER_BYTES:
                raise ValueError("shorter than an EDF header")
            ns = int(fixed[252:256])
            block = f.read(ns * _SIGNAL_HEADER_BYTES).decode("latin-1")
            if len(block) < ns * _SIGNAL_HEADER_BYTES:
                raise ValueError("signal headers cut short")
        labels = tuple(block[i * 16 : (i + 1) * 16].strip() for i in range(ns))
        off = ns * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
        samples = tuple(int(block[off + i * 8 : off + (i + 1) * 8]) for i in range(ns))
        return EdfHeader(
            path=path,
            start=_parse_start(fixed[168:176], fixed[176:184]),
            n_records=int(fixed[236:244]),
            record_duration_s=float(fixed[244:252]),
            labels=labels,
            samples_per_record=samples,
            header_bytes=int(fixed[184:192]),
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRecording(path, f"not a readable EDF file ({exc})") from None


def check_complete(header: EdfHeader) -> None:
    """Raise :class:`BadRecording` when the file is shorter than its header says (truncated)."""
    if header.n_records < 0:
        return
    size = header.path.stat().st_size
    if size < header.expected_bytes:
        raise BadRecording(
            header.path,
            f"truncated EDF: header promises {header.n_records} records ({header.expected_bytes} bytes) "
            f"but the file has {size} bytes; download it again",
        )


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


def normalise_label(label: str) -> str:
    """Channel name reduced to lower-case letters and digits (``EEG(sec)`` -> ``eegsec``)."""
    return re.sub(r"[^a-z0-9]", "", label.lower())


def find_channel(header: EdfHeader, aliases: tuple[str, ...]) -> str:
    """The header label matching one of ``aliases`` (exact first, then normalised)."""
    return match_channel(header.labels, aliases, header.path)


def match_channel(labels: tuple[str, ...] | list[str], aliases: tuple[str, ...], path: Path | str) -> str:
    """The label in ``labels`` (the channels of file ``path``, from any reader) matching one of
    ``aliases``: exact first, then normalised; :class:`BadRecording` listing them otherwise."""
    for alias in aliases:
        if alias in labels:
            return alias
    wanted = {normalise_label(a) for a in aliases}
    for label in labels:
        if normalise_label(label) in wanted:
            return label
    raise BadRecording(path, f"channel {aliases[0]!r} not found; channels in the file: {', '.join(labels)}")


def resample(x: np.ndarray, from_hz: float, to_hz: float) -> np.ndarray:
    """Polyphase resampling by the rational ratio ``to_hz / from_hz``."""
    from scipy.signal import resample_poly

    ratio = Fraction(to_hz / from_hz).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator)


def read_channel_uv(
    path: Path, aliases: tuple[str, ...], sfreq: float, allow_resample: bool = True, allow_upsample: bool = False
) -> tuple[np.ndarray, EdfHeader, list[str]]:
    """Read one EEG channel of an EDF in microvolts at ``sfreq`` Hz.

    Returns ``(signal float64 uV, header, notes)``; ``notes`` says what was done to the data
    (e.g. resampling). A higher sampling rate is resampled down with a warning, or rejected with
    :class:`BadRecording` when ``allow_resample`` is False. A lower rate is rejected unless
    ``allow_upsample`` (a dataset's ``lenient_input``): upsampling invents no EEG, so a channel
    recorded at e.g. 1 Hz is almost certainly the wrong channel or a damaged header.
    """
    import mne

    header = read_edf_header(path)
    check_complete(header)
    label = find_channel(header, aliases)
    file_hz = header.sfreq(label)
    notes: list[str] = []
    if abs(file_hz - sfreq) > 1e-6 and not allow_resample:
        raise BadRecording(
            path, f"channel {label!r} is sampled at {file_hz:g} Hz, expected {sfreq:g} Hz (resampling is off: resample=false)"
        )
    if file_hz < sfreq - 1e-6 and not allow_upsample:
        raise BadRecording(
            path,
            f"channel {label!r} is sampled at {file_hz:g} Hz, below the {sfreq:g} Hz the dataset needs; upsampling "
            "adds no information (lenient_input=true upsamples it anyway, with a note)",
        )
    try:
        raw = mne.io.read_raw_edf(path, include=[label], preload=False, verbose="error")
        x = raw.get_data(picks=[0])[0] * 1e6  # MNE returns volts
    except Exception as exc:  # MNE raises many kinds of errors on damaged files
        raise BadRecording(path, f"MNE cannot read the EDF ({type(exc).__name__}: {exc})") from None
    if abs(file_hz - sfreq) > 1e-6:
        message = f"{path.name}: channel {label!r} resampled from {file_hz:g} Hz to {sfreq:g} Hz"
        if file_hz < sfreq:
            message += " (upsampled: lenient_input)"
        warnings.warn(message, stacklevel=2)
        notes.append(message)
        x = resample(x, file_hz, sfreq)
    check_signal(x, path, label)
    return x, header, notes


def check_signal(x: np.ndarray, path: Path, label: str) -> None:
    """Raise :class:`BadRecording` on NaN/inf samples or a flat (constant) channel."""
    import numpy as np

    bad = ~np.isfinite(x)
    if bad.any():
        raise BadRecording(path, f"channel {label!r} holds {int(bad.sum())} NaN/inf samples")
    if len(x) == 0 or float(np.ptp(x)) < 1e-3:  # below a nanovolt of range: no EEG recorded
        raise BadRecording(path, f"channel {label!r} is flat (no signal)")
