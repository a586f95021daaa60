"""The Sors et al. (2018) single-channel sleep-staging CNN, as the REST paper uses it.

Twelve blocks of Conv1d (stride 2, with bias) -> BatchNorm1d -> ReLU, no pooling, no dropout,
then flatten -> Linear(n, 100) -> BatchNorm1d(100) -> ReLU -> Linear(100, n_classes)
(docs/PROTOCOL.md, "Model"). The architecture is fixed by a plain-JSON ``spec`` holding the channel
count of every layer, so a channel-pruned network rebuilds exactly from spec + state_dict. The
network exposes its channel groups (:mod:`restbench.training.pruning`) so any channel compressor can
shrink it without knowing its layer names.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from restbench import hookimpl
from restbench.api import PluginError
from restbench.training.pruning import ChannelGroup, Member

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


class ConvBlock(nn.Module):
    """Conv1d -> BatchNorm1d -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=True)
        self.bn = nn.BatchNorm1d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Head(nn.Module):
    """flatten -> Linear -> BatchNorm1d -> ReLU -> Linear."""

    def __init__(self, in_features: int, hidden_units: int, n_classes: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_units)
        self.bn = nn.BatchNorm1d(hidden_units)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(hidden_units, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.bn(self.fc1(x.flatten(1)))))


class SorsNet(nn.Module):
    """The Sors CNN built from a spec. Input ``(n, 1, n_times)`` in microvolts; output logits
    ``(n, n_classes)``. Channel-prunable: see :meth:`channel_groups`."""

    def __init__(self, spec: dict) -> None:
        super().__init__()
        self.spec = copy.deepcopy(validate_spec(spec))
        blocks, in_ch = [], spec["in_channels"]
        for conv in spec["convs"]:
            blocks.append(ConvBlock(in_ch, conv["out_channels"], conv["kernel_size"], conv["stride"], conv["padding"]))
            in_ch = conv["out_channels"]
        self.blocks = nn.ModuleList(blocks)
        self.feature_length = feature_length(spec)
        self.head = Head(in_ch * self.feature_length, spec["hidden_units"], spec["n_classes"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    # ------------------------------------------------------------ channel pruning protocol

    def channel_groups(self) -> list[ChannelGroup]:
        """One group per BatchNorm layer: conv1..conv12 and the head's hidden layer ``fc1``.

        Each lists every state-dict tensor indexed by that layer's channels: the conv's
        out-channels and bias, the BN affine parameters and running statistics, and the
        consumer's inputs (next conv's in-channels; for the last conv the flatten -> Linear
        column blocks of ``feature_length`` columns; for ``fc1`` the columns of ``fc2``).
        Every BN is followed by a ReLU (``activation``), so surgery can fold a removed channel's
        constant output into the consumer's bias.
        """
        groups = []
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            p = f"blocks.{i}"
            members = [Member(f"{p}.conv.weight", 0), Member(f"{p}.conv.bias", 0)]
            members += [Member(f"{p}.bn.{t}", 0) for t in ("weight", "bias", "running_mean", "running_var")]
            if i + 1 < n:
                members.append(Member(f"blocks.{i + 1}.conv.weight", 1))
            else:
                members.append(Member("head.fc1.weight", 1, self.feature_length))
            groups.append(
                ChannelGroup(
                    name=f"conv{i + 1}",
                    size=block.conv.out_channels,
                    members=tuple(members),
                    gamma_key=f"{p}.bn.weight",
                    filter_key=f"{p}.conv.weight",
                    kind="conv",
                    activation="relu",
                )
            )
        members = [Member("head.fc1.weight", 0), Member("head.fc1.bias", 0)]
        members += [Member(f"head.bn.{t}", 0) for t in ("weight", "bias", "running_mean", "running_var")]
        members.append(Member("head.fc2.weight", 1))
        groups.append(
            ChannelGroup(
                name="fc1",
                size=self.head.fc1.out_features,
                members=tuple(members),
                gamma_key="head.bn.weight",
                filter_key="head.fc1.weight",
                kind="linear",
                activation="relu",
            )
        )
        return groups

    def channel_spec(self, spec: dict, kept: dict[str, int]) -> dict:
        """A copy of ``spec`` with the channel counts of the groups named in ``kept``."""
        new = copy.deepcopy(spec)
        for name, count in kept.items():
            if name == "fc1":
                new["hidden_units"] = int(count)
            elif name.startswith("conv") and name[4:].isdigit() and 1 <= int(name[4:]) <= len(new["convs"]):
                new["convs"][int(name[4:]) - 1]["out_channels"] = int(count)
            else:
                raise PluginError(f"sors2018: unknown channel group '{name}'")
        return new

    # ------------------------------------------------------------ efficiency

    def macs_per_window(self) -> int:
        """Multiply-accumulates of one forward pass (convs and linears; BN/ReLU excluded)."""
        return count_macs(self.spec)


def count_macs(spec: dict) -> int:
    """Multiply-accumulates per window for a spec (about 723 M for the paper's 12,000 inputs)."""
    n, in_ch, total = spec["n_times"], spec["in_channels"], 0
    for conv in spec["convs"]:
        n = conv_out_length(n, conv["kernel_size"], conv["padding"], conv["stride"])
        total += n * conv["out_channels"] * in_ch * conv["kernel_size"]
        in_ch = conv["out_channels"]
    total += in_ch * n * spec["hidden_units"] + spec["hidden_units"] * spec["n_classes"]
    return int(total)


class Sors2018:
    """Model plugin: the Sors et al. 2018 CNN used by every REST configuration."""

    id = "sors2018"
    version = "1.0.0"
    description = "Sors et al. 2018 CNN: 12 x (Conv1d stride 2 -> BN -> ReLU), Linear 100 -> BN -> Linear; channel-prunable"
    citation = "Sors et al. 2018, Biomedical Signal Processing and Control 42:107-114"
    default = True

    def build(
        self, n_times: int, sfreq: float, n_classes: int, spec: dict | None = None, width: float = 1.0
    ) -> tuple[nn.Module, dict]:
        """Return ``(SorsNet, spec)``: rebuilt from ``spec`` when given, else sized from the input."""
        if spec is None:
            if not width > 0:
                raise PluginError(f"sors2018: width must be positive, got {width!r}")
            spec = paper_spec(n_times, sfreq, n_classes, width)
        net = SorsNet(spec)
        return net, copy.deepcopy(net.spec)


@hookimpl
def register_models(register):
    register(Sors2018())
