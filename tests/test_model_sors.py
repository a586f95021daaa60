"""The sors2018 model plugin: exact paper sizes, spec round trip, weights-only checkpoints."""

import io
import json

import pytest
import torch

from restbench.api import Model, PluginError
from restbench.plugins.registry import Registry
from restbench_builtins.models import sors2018
from restbench_builtins.models.sors2018 import Sors2018
from restbench_builtins.models.sors2018_spec import count_macs


def n_params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("n_times,sfreq,expected,features", [(12000, 100.0, 2_264_485, 768), (15000, 125.0, 2_290_085, 1024)])
def test_paper_parameter_counts(n_times, sfreq, expected, features):
    net, spec = Sors2018().build(n_times, sfreq, 5)
    assert n_params(net) == expected
    assert net.head.fc1.in_features == features
    convs = [b.conv for b in net.blocks]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.padding[0], c.stride[0]) for c in convs] == (
        [(1, 128, 7, 3, 2)] + [(128, 128, 7, 3, 2)] * 5 + [(128, 256, 7, 3, 2)] + [(256, 256, 5, 2, 2)] * 3
        + [(256, 256, 3, 1, 2)] * 2
    )
    assert all(c.bias is not None for c in convs)
    assert (net.head.fc1.out_features, net.head.bn.num_features, net.head.fc2.out_features) == (100, 100, 5)


def test_macs_match_protocol():
    _, spec = Sors2018().build(12000, 100.0, 5)
    assert abs(count_macs(spec) / 1e6 - 723) < 1
    _, spec = Sors2018().build(15000, 125.0, 5)
    assert abs(count_macs(spec) / 1e6 - 904) < 1


def test_width_and_forward_shape():
    net, spec = Sors2018().build(3000, 100.0, 5, width=1 / 16)
    assert [c["out_channels"] for c in spec["convs"]] == [8] * 6 + [16] * 6
    assert spec["hidden_units"] == 6
    x = torch.randn(3, 1, 3000)
    assert net(x).shape == (3, 5)
    # very small widths never reach zero channels
    _, tiny = Sors2018().build(3000, 100.0, 5, width=1e-4)
    assert min(c["out_channels"] for c in tiny["convs"]) == 1 and tiny["hidden_units"] == 1


def test_spec_is_plain_json_and_rebuilds_exactly():
    torch.manual_seed(0)
    net, spec = Sors2018().build(2000, 100.0, 5, width=1 / 8)
    spec = json.loads(json.dumps(spec))
    spec["convs"][3]["out_channels"] = 5  # a heterogeneous (pruned-like) spec
    spec["hidden_units"] = 7
    net, spec2 = Sors2018().build(1, 1.0, 2, spec=spec)  # n_times/sfreq/n_classes ignored with a spec
    assert spec2 == spec and net.blocks[3].conv.out_channels == 5 and net.blocks[4].conv.in_channels == 5
    net.eval()
    buf = io.BytesIO()
    torch.save({"state_dict": net.state_dict(), "spec": spec2}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    again, _ = Sors2018().build(0, 0.0, 0, spec=ckpt["spec"])
    again.load_state_dict(ckpt["state_dict"])
    again.eval()
    x = torch.randn(2, 1, 2000)
    assert torch.equal(net(x), again(x))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda s: s.update(arch="other"),
        lambda s: s.update(n_times=0),
        lambda s: s.update(spec_version=99),
        lambda s: s["convs"][0].update(out_channels=0),
        lambda s: s.update(convs=[]),
    ],
)
def test_bad_spec_is_a_plugin_error(mutate):
    _, spec = Sors2018().build(1000, 100.0, 5, width=1 / 16)
    mutate(spec)
    with pytest.raises(PluginError):
        Sors2018().build(1000, 100.0, 5, spec=spec)


def test_registers_as_model_plugin():
    registry = Registry()
    status = registry.add_plugin(sors2018)
    assert status.status == "ok", status.error
    model = registry.get("models", "sors2018")
    assert isinstance(model, Model)
