"""TFLite export (fp32 and int8) in the tflite plugin, its check against PyTorch and inference through the
interpreter. The core's format-agnostic check is tested without TFLite in test_exporters.py."""

import copy
import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

if importlib.util.find_spec("litert_torch") is None or importlib.util.find_spec("ai_edge_litert") is None:
    pytest.skip("TFLite export needs litert-torch and ai-edge-litert", allow_module_level=True)

from restbench.api import PluginError, UsageError  # noqa: E402
from restbench.deploy.export import torch_logits  # noqa: E402
from restbench_builtins.tflite_graphs import (  # noqa: E402
    TFLiteModel,
    check_tflite,
    export_tflite,
    interpreter_runtime,
    predict_tflite,
)

N_TIMES = 256


def make_windows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic microvolt windows whose class sets the dominant frequency (a learnable task)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    t = np.arange(N_TIMES) / 100.0
    freq = np.array([2.0, 5.0, 9.0, 14.0, 20.0])[y]
    x = 40.0 * np.sin(2 * np.pi * freq[:, None] * t + rng.uniform(0, 6.3, (n, 1)))
    x += rng.normal(0, 5.0, (n, N_TIMES))
    return x[:, None, :].astype(np.float32), y


def tiny_net() -> nn.Module:
    """Conv1d -> BN -> ReLU (x2) -> Linear: the layer types of the Sors network."""
    return nn.Sequential(
        nn.Conv1d(1, 8, 7, stride=2, padding=3),
        nn.BatchNorm1d(8),
        nn.ReLU(),
        nn.Conv1d(8, 16, 5, stride=2, padding=2),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * (N_TIMES // 4), 5),
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A briefly trained tiny model, exported once to fp32 (batch 1) and int8."""
    torch.manual_seed(0)
    model = tiny_net()
    x, y = make_windows(256, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for step in range(60):
        idx = torch.arange(step * 32, step * 32 + 32) % len(xt)
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
        opt.step()
    model.train()  # export must not depend on (or change) the caller's mode
    out = tmp_path_factory.mktemp("tflite")
    fp32 = export_tflite(model, torch.from_numpy(x[:1]), out / "tiny_fp32.tflite")
    int8 = export_tflite(model, x[:1], out / "tiny_int8.tflite", quantize="int8", calibration=x[:64])
    held_out, held_y = make_windows(64, seed=2)
    return {"model": model, "fp32": fp32, "int8": int8, "windows": held_out, "labels": held_y, "dir": out}


def test_export_writes_files_and_keeps_module_mode(exported):
    assert exported["model"].training
    assert exported["fp32"].is_file() and exported["int8"].is_file()
    # int8 weights take about a quarter of the fp32 bytes
    assert exported["int8"].stat().st_size < 0.6 * exported["fp32"].stat().st_size
    # written through a temporary file that was renamed into place
    assert sorted(p.name for p in exported["dir"].iterdir()) == ["tiny_fp32.tflite", "tiny_int8.tflite"]


def test_fp32_check_passes_with_tiny_difference(exported):
    result = check_tflite(exported["model"], exported["fp32"], exported["windows"])
    assert result["passed"] and result["variant"] == "fp32"
    assert result["n_windows"] == 64
    assert result["max_abs_diff"] < 1e-4 * max(1.0, result["logit_scale"])
    assert result["top1_agreement"] == 1.0
    assert result["runtime"] == "ai-edge-litert"
    assert set(result["thresholds"]) == {"max_rel_diff", "min_top1_agreement"}


def test_int8_graph_is_full_integer_batch_one_and_agrees(exported):
    graph = TFLiteModel(exported["int8"])
    assert graph.quantized and graph.variant == "int8"
    assert graph.batch == 1 and graph.input_shape == (1, 1, N_TIMES)
    result = check_tflite(exported["model"], exported["int8"], exported["windows"])
    assert result["passed"] and result["variant"] == "int8"
    assert result["top1_agreement"] >= 0.95
    # int8 is not bit-exact, but close to the float logits
    assert 0 < result["max_abs_diff"] < 0.2 * result["logit_scale"]
    # and the trained task survives quantisation
    preds = predict_tflite(exported["int8"], exported["windows"]).argmax(1)
    assert np.mean(preds == exported["labels"]) >= 0.8


def test_predict_pads_fixed_batch_graph(exported, tmp_path):
    model = exported["model"]
    path = export_tflite(model, exported["windows"][:3], tmp_path / "batch3.tflite")
    assert TFLiteModel(path).batch == 3
    windows = exported["windows"][:7]  # 3 + 3 + 1 (padded)
    logits = predict_tflite(path, windows)
    assert logits.shape == (7, 5) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, torch_logits(model, windows), rtol=1e-4, atol=1e-4)


def test_failing_check_raises_one_line_or_reports(exported):
    other = copy.deepcopy(exported["model"])
    with torch.no_grad():
        other[-1].weight.mul_(-1.0)  # flips the logits: a different model
    with pytest.raises(PluginError) as err:
        check_tflite(other, exported["fp32"], exported["windows"])
    message = str(err.value)
    assert "\n" not in message and "tiny_fp32.tflite" in message and "max abs logit difference" in message
    report = check_tflite(other, exported["fp32"], exported["windows"], report_only=True)
    assert report["passed"] is False and report["top1_agreement"] < 0.5
    # a stricter agreement threshold than achievable fails the int8 check too
    with pytest.raises(PluginError, match="top-1 agreement"):
        check_tflite(exported["model"], exported["int8"], exported["windows"], min_top1_agreement=1.01)


def test_bad_arguments_are_usage_errors(exported, tmp_path):
    model, x = exported["model"], exported["windows"]
    with pytest.raises(UsageError, match="quantize"):
        export_tflite(model, x[:1], tmp_path / "m.tflite", quantize="int4")
    with pytest.raises(UsageError, match="calibration"):
        export_tflite(model, x[:1], tmp_path / "m.tflite", quantize="int8")
    with pytest.raises(UsageError, match="calibration windows have shape"):
        export_tflite(model, x[:1], tmp_path / "m.tflite", quantize="int8", calibration=x[:, :, :100])
    with pytest.raises(UsageError, match="expects"):
        predict_tflite(exported["fp32"], x[:, :, :100])
    with pytest.raises(PluginError, match="does not exist"):
        predict_tflite(tmp_path / "missing.tflite", x)


def test_unconvertible_model_is_a_plugin_error(tmp_path):
    class DataDependent(nn.Module):
        def forward(self, x):
            return x[x > 0].reshape(1, -1)[:, :3] if bool(x.sum() > 0) else x[:, 0, :3]

    with pytest.raises(PluginError, match="TFLite export to bad.tflite failed"):
        export_tflite(DataDependent(), torch.ones(1, 1, 8), tmp_path / "bad.tflite")
    assert list(tmp_path.iterdir()) == []  # neither a partial file nor a temporary one


def test_failed_write_keeps_the_previous_file(exported, tmp_path, monkeypatch):
    """A conversion that dies while writing leaves the old file (a resumed run must not reuse
    half a graph) and no temporary file."""
    import litert_torch

    target = tmp_path / "model.tflite"
    target.write_bytes(exported["fp32"].read_bytes())

    def convert_then_die(*args, **kwargs):
        class Edge:
            def export(self, path):
                with open(path, "wb") as fh:
                    fh.write(b"TFL3 half a flatbuffer")
                raise RuntimeError("disk full")

        return Edge()

    monkeypatch.setattr(litert_torch, "convert", convert_then_die)
    with pytest.raises(PluginError, match="model.tflite failed"):
        export_tflite(exported["model"], exported["windows"][:1], target)
    assert target.read_bytes() == exported["fp32"].read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["model.tflite"]


def test_interpreter_runtime():
    cls, name, version = interpreter_runtime()
    assert name == "ai-edge-litert" and version[0].isdigit()
    assert hasattr(cls, "allocate_tensors")
