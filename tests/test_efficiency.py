"""Efficiency counts (params, size, MACs, FLOPs) and the shared latency helpers."""

import math
import os
import time

import pytest
import torch
from torch import nn

from restbench.api import UsageError
from restbench.plugins.options import Option
from restbench.deploy.efficiency import (
    LATENCY_OPTIONS,
    LatencyOptions,
    MachineProbe,
    MachineSample,
    busy_reasons,
    count_flops,
    count_macs,
    count_params,
    efficiency_report,
    host_cpu,
    measure_latency,
    others_cpu_share,
    size_kb,
    stored_numel,
)

# (in, out, kernel, padding) of Sors conv1..conv12, all stride 2 (docs/PROTOCOL.md "Model")
SORS_CONVS = (
    [(1, 128, 7, 3)] + [(128, 128, 7, 3)] * 5 + [(128, 256, 7, 3)] + [(256, 256, 5, 2)] * 3 + [(256, 256, 3, 1)] * 2
)


def sors_by_hand(n_times: int, n_classes: int = 5) -> dict:
    """Params, MACs and stored floats of the Sors network, from the layer shapes alone."""
    length, params, macs, bn_channels = n_times, 0, 0, 0
    for c_in, c_out, k, p in SORS_CONVS:
        length = (length + 2 * p - k) // 2 + 1  # L_out = floor((L + 2p - k) / 2) + 1
        params += c_in * c_out * k + c_out  # weight + bias
        params += 2 * c_out  # BN gamma, beta
        macs += c_out * length * c_in * k
        bn_channels += c_out
    features = 256 * length
    params += features * 100 + 100 + 2 * 100 + 100 * n_classes + n_classes
    macs += features * 100 + 100 * n_classes
    bn_channels += 100
    return {"params": params, "macs": macs, "stored": params + 2 * bn_channels, "features": features}


class Tiny(nn.Module):
    """Conv1d(1->4, k5, s2, p2) -> BN -> ReLU -> Conv1d(4->6, k3, s1, p0, groups=2) -> flatten -> Linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(1, 4, 5, stride=2, padding=2)
        self.bn = nn.BatchNorm1d(4)
        self.c2 = nn.Conv1d(4, 6, 3, groups=2)
        self.fc = nn.Linear(6 * 48, 3)

    def forward(self, x):
        x = self.c2(torch.relu(self.bn(self.c1(x))))
        return self.fc(x.flatten(1))


def test_tiny_counts_match_layer_shapes():
    m = Tiny()
    # c1: L=100 -> 50; c2: 50 -> 48, each output sees 4/2 channels x 3 taps
    macs = 4 * 50 * 1 * 5 + 6 * 48 * 2 * 3 + 3 * 6 * 48
    assert count_macs(m, (1, 1, 100)) == macs
    assert count_macs(m, (3, 1, 100)) == 3 * macs  # batch counted
    assert count_flops(m, (1, 1, 100)) == 2 * macs
    params = (4 * 5 + 4) + 2 * 4 + (6 * 2 * 3 + 6) + (6 * 48 * 3 + 3)
    assert count_params(m) == params
    # running mean/var are stored, num_batches_tracked (int64) is not
    assert stored_numel(m) == params + 2 * 4
    assert size_kb(m) == pytest.approx((params + 8) * 4 / 1024)


def test_counting_leaves_module_untouched():
    m = Tiny().train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    efficiency_report(m, (1, 100))
    assert m.training
    for key, value in m.state_dict().items():
        assert torch.equal(value, before[key]), key  # BN statistics not updated


def test_layer_called_twice_counts_twice():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def forward(self, x):
            return self.fc(self.fc(x))

    assert count_macs(Twice(), (2, 8)) == 2 * 2 * 64
    assert count_flops(Twice(), (2, 8)) == 2 * 2 * 2 * 64


def test_report_fields_and_night_scaling():
    r = efficiency_report(Tiny(), (1, 1, 100), windows_per_night=10)
    assert r["input_shape"] == [1, 1, 100]
    assert r["mflops"] == pytest.approx(2 * r["macs"] / 1e6)
    assert r["macs_per_night"] == 10 * r["macs"]
    assert r["mflops_per_night"] == pytest.approx(10 * r["mflops"])
    assert "FlopCounterMode" in r["note"] and "num_batches_tracked" in r["note"]
    assert all(isinstance(r[k], int) for k in ("params", "macs", "macs_per_night"))
    assert efficiency_report(Tiny(), (1, 100))["macs"] == r["macs"]  # batch dim optional


@pytest.fixture(scope="module")
def sors_model():
    from restbench_builtins.models import sors2018 as sors  # a built-in: a broken import must fail, not skip

    module, _spec = sors.Sors2018().build(12000, 100.0, 5)
    return module


def test_sors_sleep_edf_pinned(sors_model):
    hand = sors_by_hand(12000)
    assert hand["features"] == 768
    assert hand["params"] == 2_264_485  # docs/PROTOCOL.md
    assert hand["macs"] == 722_662_900  # "about 723 M"
    r = efficiency_report(sors_model, (1, 12000))
    assert r["params"] == hand["params"]
    assert r["macs"] == hand["macs"]
    assert r["mflops"] == pytest.approx(2 * hand["macs"] / 1e6)  # 1,445 vs the paper's 1,451
    assert r["size_kb"] == pytest.approx(hand["stored"] * 4 / 1024)
    assert r["size_kb"] == pytest.approx(8864.43, abs=0.01)  # paper: 8,896 KB (file container)
    # why size counts stored tensors (BN running statistics too), not parameters alone:
    # it is the definition closer to the paper's Table 5
    assert abs(r["size_kb"] - 8896) < abs(r["params"] * 4 / 1024 - 8896)
    assert r["macs_per_night"] == 1080 * hand["macs"]


def test_sors_shhs_by_hand():
    from restbench_builtins.models import sors2018 as sors

    module, _ = sors.Sors2018().build(15000, 125.0, 5)
    hand = sors_by_hand(15000)
    assert hand["params"] == 2_290_085
    assert count_params(module) == hand["params"]
    assert count_macs(module, (1, 1, 15000)) == hand["macs"]
    assert round(hand["macs"] / 1e6) == 904


# --------------------------------------------------------------------------- latency helpers


def test_latency_options_validation():
    opts = LatencyOptions.parse({"repetitions": "7", "variants": "fp32, int8", "night_windows": 12}, "x")
    assert (opts.repetitions, opts.variants, opts.timed_windows) == (7, ("fp32", "int8"), 12)
    assert LatencyOptions.parse(None, "x").timed_windows == 1080
    assert LatencyOptions.parse(None, "x", windows_per_night=960).timed_windows == 960
    with pytest.raises(UsageError, match="plugin 'x' has no option 'repeats'"):
        LatencyOptions.parse({"repeats": 3}, "x")
    with pytest.raises(UsageError, match=r"x\.threads: 0 is below the minimum 1"):
        LatencyOptions.parse({"threads": 0}, "x")
    with pytest.raises(UsageError, match="integer"):
        LatencyOptions.parse({"repetitions": "many"}, "x")
    serial = Option("serial", str, None, "adb serial", nullable=True)
    assert LatencyOptions.parse({"serial": "a"}, "x", declared=(*LATENCY_OPTIONS, serial)).repetitions == 10


def test_measure_latency_times_and_scales_nights():
    calls = []

    def run(x):
        calls.append(x)
        time.sleep(0.002)

    opts = LatencyOptions(repetitions=3, night_windows=6, warmup=2, windows_per_night=60)
    r = measure_latency(run, ["a", "b"], opts, windows_per_call=2)
    # 2 warm-up calls + 3 repetitions x ceil(6 / 2) calls
    assert len(calls) == 2 + 3 * 3
    assert r["latency_s_per_window_median"] >= 0.001  # 2 ms call / 2 windows
    assert r["latency_s_per_window_p90"] >= r["latency_s_per_window_median"]
    # a night of 60 windows = 30 calls of >= 2 ms
    assert r["latency_s_per_night_median"] >= 0.06
    assert r["latency_s_per_night_median"] == pytest.approx(60 * r["latency_s_per_window_median"], rel=0.5)
    assert r["extra"]["windows_timed_per_repetition"] == 6
    assert "scaled" in r["extra"]["night_method"]
    assert len(r["extra"]["latency_s_per_night_all"]) == 3
    assert all(math.isfinite(v) for v in r["extra"]["latency_s_per_night_all"])


def test_host_cpu_names_the_machine():
    text = host_cpu()
    assert "logical CPUs" in text and len(text) > 20


class ScriptedClock:
    """A clock that each call of the timed function advances by the next scripted duration."""

    def __init__(self, durations):
        self.now, self.durations = 100.0, list(durations)

    def __call__(self):
        return self.now

    def run(self, _x):
        self.now += self.durations.pop(0)


class ReplayProbe:
    """Stands in for MachineProbe: replays a 'before' and an 'after' sample (100 ticks/s)."""

    def __init__(self, before, after):
        self.samples = [before, after]

    def sample(self):
        return self.samples.pop(0)

    @staticmethod
    def clock_ticks():
        return 100


def quiet_probe(load=0.1):
    # 2 CPUs for 1 s = 200 ticks; 100 busy ticks, all of them this process's own 1 s of CPU
    return ReplayProbe(MachineSample(0.0, load, 1000, 5000, 10.0), MachineSample(1.0, load, 1100, 5200, 11.0))


def test_measure_latency_min_median_p90_spread_and_load_recorded():
    # warm-up 2 calls, then 4 repetitions x 5 calls: 19 calls of 1 ms and one of 10 ms
    timed = [0.001] * 19 + [0.010]
    clock = ScriptedClock([0.5, 0.5] + timed)
    opts = LatencyOptions(repetitions=4, night_windows=5, warmup=2, windows_per_night=10)
    r = measure_latency(clock.run, [0], opts, clock=clock, probe=quiet_probe())
    assert r["latency_s_per_window_min"] == pytest.approx(0.001)
    assert r["latency_s_per_window_median"] == pytest.approx(0.001)
    assert r["latency_s_per_window_p90"] == pytest.approx(0.001)  # one slow call of 20 is above p90
    assert r["latency_spread"] == pytest.approx(0.0, abs=1e-9)
    # nights: 5 calls scaled to 10 windows; the last repetition holds the 10 ms call
    assert sorted(r["extra"]["latency_s_per_night_all"]) == pytest.approx([0.01, 0.01, 0.01, 0.028])
    assert r["latency_s_per_night_min"] == pytest.approx(0.01)
    assert r["latency_s_per_night_median"] == pytest.approx(0.01)
    assert r["latency_s_per_night_p90"] == pytest.approx(0.01 + 0.7 * 0.018)  # linear: index 0.9 x 3 = 2.7
    assert r["load_avg_1min_before"] == 0.1 and r["load_avg_1min_after"] == 0.1
    assert r["others_cpu_share"] == pytest.approx(0.0)
    assert r["busy"] is False and r["busy_reasons"] == []
    assert r["extra"]["timed_calls"] == 20 and r["extra"]["warmup_calls"] == 2


def test_measure_latency_flags_a_busy_machine_by_spread_others_and_load():
    opts = LatencyOptions(repetitions=2, night_windows=5, warmup=0, windows_per_night=10)
    # every third call is interrupted (4x slower): p90 sees it, the minimum does not
    clock = ScriptedClock([0.004 if i % 3 == 2 else 0.001 for i in range(10)])
    r = measure_latency(clock.run, [0], opts, clock=clock, probe=quiet_probe())
    assert r["latency_s_per_window_min"] == pytest.approx(0.001)
    assert r["latency_spread"] == pytest.approx(3.0)
    assert r["busy"] and len(r["busy_reasons"]) == 1 and "spread" in r["busy_reasons"][0]
    # steady calls, but other processes took 150 of 200 ticks (75 %) and the load average is high
    busy_probe = ReplayProbe(MachineSample(0.0, 3.5, 1000, 5000, 10.0), MachineSample(1.0, 3.9, 1200, 5200, 10.5))
    clock = ScriptedClock([0.001] * 10)
    r = measure_latency(clock.run, [0], opts, clock=clock, probe=busy_probe)
    assert r["others_cpu_share"] == pytest.approx(0.75)
    assert r["latency_spread"] == pytest.approx(0.0, abs=1e-9) and r["busy"]
    text = " ".join(r["busy_reasons"])
    assert "75%" in text and ("load average 3.90" in text) == (3.9 - 1 > r["usable_cpus"])


def test_busy_reasons_thresholds():
    opts = LatencyOptions(busy_spread=0.5, busy_others_cpu=0.5, busy_load=1.0)
    assert busy_reasons(0.5, 0.5, 3.0, 3.0, threads=1, cpus=2, options=opts) == []  # at the limits: quiet
    assert busy_reasons(None, None, None, None, threads=1, cpus=2, options=opts) == []  # nothing known
    assert len(busy_reasons(0.51, None, None, None, 1, 2, opts)) == 1
    assert len(busy_reasons(None, 0.51, None, None, 1, 2, opts)) == 1
    # the load average less the timing's own threads, against tasks per usable CPU
    assert busy_reasons(None, None, 3.1, 1.0, 1, 2, opts) and not busy_reasons(None, None, 3.1, 1.0, 2, 2, opts)
    assert busy_reasons(None, None, 0.0, 5.0, 1, 4, LatencyOptions(busy_load=0.75))


def test_others_cpu_share_from_counters():
    before = MachineSample(0.0, None, 1000, 5000, 10.0)
    # 400 ticks on all CPUs, 300 busy, of which this process used 1 s = 100 ticks
    assert others_cpu_share(before, MachineSample(1.0, None, 1300, 5400, 11.0), 100) == pytest.approx(0.5)
    # own time beyond the busy ticks (counter granularity) clamps at 0
    assert others_cpu_share(before, MachineSample(1.0, None, 1050, 5400, 11.0), 100) == 0.0
    assert others_cpu_share(before, MachineSample(0.01, None, 1005, 5010, 10.0), 100) is None  # too short
    assert others_cpu_share(MachineSample(0.0, None, None, None, 0.0), before, 100) is None


def test_machine_probe_reads_this_machine(tmp_path):
    sample = MachineProbe().sample()
    assert sample.own_cpu_s >= 0 and sample.wall_s > 0
    if os.path.exists("/proc/stat"):
        assert 0 <= sample.busy_ticks <= sample.total_ticks
    stat = tmp_path / "stat"
    stat.write_text("cpu  10 0 5 80 5 0 0 0 0 0\ncpu0 10 0 5 80 5 0 0 0 0 0\n")
    fake = MachineProbe(str(stat)).sample()
    assert (fake.busy_ticks, fake.total_ticks) == (15, 100)  # idle and iowait are not busy
    assert MachineProbe(str(tmp_path / "missing")).sample().busy_ticks is None
