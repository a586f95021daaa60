"""The Sors et al. (2018) single-channel sleep-staging CNN, as the REST paper uses it.

Twelve blocks of Conv1d (stride 2, with bias) -> BatchNorm1d -> ReLU, no pooling, no dropout,
then flatten -> Linear(n, 100) -> BatchNorm1d(100) -> ReLU -> Linear(100, n_classes)
(docs/PROTOCOL.md, "Model"). The architecture is fixed by a plain-JSON ``spec`` holding the channel
count of every layer (:mod:`.sors2018_spec`), so a channel-pruned network rebuilds exactly from
spec + state_dict. The network exposes its channel groups (:mod:`restbench.training.pruning`) so any
channel compressor can shrink it without knowing its layer names.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from restbench.api import ModelInput, Option, PluginError, hookimpl
from restbench_builtins.models.sors2018_spec import paper_spec

if TYPE_CHECKING:  # the network (torch) lives in sors2018_net, imported when one is built
    from torch import nn

#: Names defined in :mod:`restbench_builtins.models.sors2018_net`, importable from here too.
_NET_NAMES = ("ConvBlock", "Head", "SorsNet")


def __getattr__(name: str) -> Any:
    if name in _NET_NAMES:
        from restbench_builtins.models import sors2018_net

        return getattr(sors2018_net, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Sors2018:
    """Model plugin: the Sors et al. 2018 CNN used by every REST configuration."""

    id = "sors2018"
    description = "Sors et al. 2018 CNN: 12 x (Conv1d stride 2 -> BN -> ReLU), Linear 100 -> BN -> Linear; channel-prunable"
    citation = "Sors et al. 2018, Biomedical Signal Processing and Control 42:107-114"
    default = True
    version = "1.1.0"
    #: 4 x 30 s of one EEG channel (12,000 samples at 100 Hz), at whatever rate the data has
    inputs = ModelInput(n_chans=1, context_epochs=4, sfreq=None)
    # the core `width` knob sets this option (profiles shrink the network with it)
    options = (
        Option("width", float, 1.0, "channel multiplier of every layer (set by the core width knob unless given "
               "as sors2018.width)", minimum=0.01, maximum=4.0, paper=1.0, profiles={"quick": 0.125, "smoke": 0.0625}),
    )

    def build(
        self, n_times: int, sfreq: float, n_classes: int, spec: dict | None = None, width: float | None = None,
        options: dict | None = None,
    ) -> tuple[nn.Module, dict]:
        """Return ``(SorsNet, spec)``: rebuilt from ``spec`` when given, else sized from the input
        and ``width`` (the keyword, else ``options["width"]``, else 1.0)."""
        from restbench_builtins.models.sors2018_net import SorsNet

        if spec is None:
            if width is None:
                width = float((options or {}).get("width", 1.0))
            if not width > 0:
                raise PluginError(f"sors2018: width must be positive, got {width!r}")
            spec = paper_spec(n_times, sfreq, n_classes, width)
        net = SorsNet(spec)
        return net, copy.deepcopy(net.spec)


@hookimpl
def register_models(register):
    register(Sors2018())
