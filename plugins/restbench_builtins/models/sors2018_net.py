"""The Sors et al. (2018) network as torch modules, built from a spec (:mod:`.sors2018_spec`).

Kept apart from the plugin module so that registering the ``sors2018`` model (every CLI call
does) does not import torch; :meth:`restbench_builtins.models.sors2018.Sors2018.build` imports
this module when it builds a network.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from restbench.api import ChannelGroup, Member, PluginError
from restbench_builtins.models.sors2018_spec import count_macs, feature_length, validate_spec


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
