"""The plain-JSON spec of the Sors et al. (2018) network: its layer sizes, checks and counts.

A spec holds the channel count of every layer, so a channel-pruned network rebuilds exactly from
spec + state_dict. The plugin module (:mod:`.sors2018`) writes specs and the network module
(:mod:`.sors2018_net`) builds from them; both import this module and neither imports the other
at module level, so there is no import circle between them.
"""

from __future__ import annotations

from restbench.api import PluginError

ARCH = "sors2018"
SPEC_VERSION = 1

#: (out_channels, kernel_size, padding) of conv1..conv12 at width 1 (stride 2 everywhere).
PAPER_CONVS: tuple[tuple[int, int, int], ...] = (
    ((128, 7, 3),) * 6 + ((256, 7, 3),) + ((256, 5, 2),) * 3 + ((256, 3, 1),) * 2
)
PAPER_HIDDEN_UNITS = 100
STRIDE = 2


def conv_out_length(n: int, kernel: int, padding: int, stride: int = STRIDE) -> int:
    """Output length of a Conv1d (dilation 1)."""
    return (n + 2 * padding - kernel) // stride + 1


def feature_length(spec: dict) -> int:
    """Samples per channel after the last conv: the flatten -> Linear column block size."""
    n = int(spec["n_times"])
    for conv in spec["convs"]:
        n = conv_out_length(n, conv["kernel_size"], conv["padding"], conv["stride"])
    return n


def paper_spec(n_times: int, sfreq: float, n_classes: int, width: float = 1.0) -> dict:
    """The spec for the paper's network sized from the input; ``width`` scales every channel
    count and the hidden units (rounded, at least 1)."""

    def scaled(c: int) -> int:
        return max(1, int(round(c * width)))

    return {
        "arch": ARCH,
        "spec_version": SPEC_VERSION,
        "n_times": int(n_times),
        "sfreq": float(sfreq),
        "n_classes": int(n_classes),
        "in_channels": 1,
        "convs": [
            {"out_channels": scaled(c), "kernel_size": k, "stride": STRIDE, "padding": p}
            for c, k, p in PAPER_CONVS
        ],
        "hidden_units": scaled(PAPER_HIDDEN_UNITS),
    }


def validate_spec(spec: dict) -> dict:
    """Return ``spec`` when it describes a buildable Sors network, else raise PluginError."""

    def bad(why: str) -> PluginError:
        return PluginError(f"sors2018 spec: {why}; rebuild it with the sors2018 model plugin (build without spec)")

    if not isinstance(spec, dict) or spec.get("arch") != ARCH:
        raise bad(f"arch is {spec.get('arch') if isinstance(spec, dict) else spec!r}, expected '{ARCH}'")
    if spec.get("spec_version") != SPEC_VERSION:
        raise bad(f"spec_version {spec.get('spec_version')!r} is not {SPEC_VERSION}")
    for key in ("n_times", "n_classes", "in_channels", "hidden_units"):
        if not isinstance(spec.get(key), int) or spec[key] < 1:
            raise bad(f"'{key}' must be a positive integer")
    convs = spec.get("convs")
    if not isinstance(convs, list) or not convs:
        raise bad("'convs' must be a non-empty list")
    for i, conv in enumerate(convs, 1):
        for key in ("out_channels", "kernel_size", "stride", "padding"):
            value = conv.get(key) if isinstance(conv, dict) else None
            if not isinstance(value, int) or value < (0 if key == "padding" else 1):
                raise bad(f"conv{i} '{key}' must be a {'non-negative' if key == 'padding' else 'positive'} integer")
    if feature_length(spec) < 1:
        raise bad(f"n_times {spec['n_times']} is too short for {len(convs)} stride-2 convolutions")
    return spec


def count_macs(spec: dict) -> int:
    """Multiply-accumulates per window for a spec (about 723 M for the paper's 12,000 inputs)."""
    n, in_ch, total = spec["n_times"], spec["in_channels"], 0
    for conv in spec["convs"]:
        n = conv_out_length(n, conv["kernel_size"], conv["padding"], conv["stride"])
        total += n * conv["out_channels"] * in_ch * conv["kernel_size"]
        in_ch = conv["out_channels"]
    total += in_ch * n * spec["hidden_units"] + spec["hidden_units"] * spec["n_classes"]
    return int(total)
