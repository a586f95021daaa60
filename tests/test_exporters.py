"""Exporters are plugins: deployed variants (and which of them are evaluated under corruption)
come from register_exporters, not from branches in the pipeline."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from restbench import hookimpl
from restbench.api import ExportedVariant
from restbench.cli import cli
from restbench.plugins.options import NOT_IN_PAPER, Option, fill_options
from restbench.plugins.testing import registry_with


class HalfPrecision:
    """A third-party exporter: the deployed pipeline stored and run in float16 on the CPU."""

    id = "half-precision"
    version = "0.1.0"
    description = "float16 copy of the deployed pipeline"
    citation = None
    options = (Option("robustness", str, "paper", "corruptions to evaluate it under", choices=("all", "paper"),
                      paper=NOT_IN_PAPER),)

    def available(self):
        return True, ""

    def export(self, module, calibration, check_windows, folder, stem, options):
        opts = fill_options(self.options, options, self.id)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{stem}-fp16.pt"
        torch.save(copy.deepcopy(module).half().state_dict(), path)
        self.module = copy.deepcopy(module).half().eval()
        agree = float((self.logits(check_windows).argmax(1) == module(torch.from_numpy(check_windows)).argmax(1).numpy()).mean())
        return [ExportedVariant("torch-fp16", path, path.stat().st_size / 1024,
                                {"passed": agree >= 0.9, "top1_agreement": agree, "max_abs_diff": 0.0}, opts["robustness"])]

    def logits(self, windows):
        with torch.no_grad():
            return self.module(torch.from_numpy(np.asarray(windows)).half()).float().numpy()

    def predict(self, variant, windows):
        return self.logits(windows)


class Plugin:
    @hookimpl
    def register_exporters(self, register):
        register(HalfPrecision())


def test_a_third_party_exporter_adds_an_evaluated_variant(tmp_path):
    with registry_with(Plugin()):
        result = CliRunner().invoke(cli, [
            "run", "--profile", "smoke", "--methods", "sors", "--corruptions", "gaussian,emg",
            "--exporters", "half-precision", "--runners", "", "-q", "--run-dir", str(tmp_path / "run")])
        assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    variants = {(r["variant"], r["corruption"]) for r in records if r["record_type"] == "robustness"}
    # the exporter asked for the paper suite: gaussian yes, the wearable-artifact emg no
    assert ("torch-fp16", "clean") in variants and ("torch-fp16", "gaussian") in variants
    assert ("torch-fp16", "emg") not in variants and ("torch", "emg") in variants
    (efficiency,) = [r for r in records if r["record_type"] == "efficiency"]
    assert efficiency["torch_fp16_size_kb"] > 0 and efficiency["export_check"]["torch-fp16"]["passed"]
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["exporters"] == ["half-precision"] and info["options"]["half-precision"] == {"robustness": "paper"}


def test_conformance_passes_a_working_exporter_and_fails_broken_ones():
    from restbench.plugins.testing import check_object

    assert check_object("exporters", HalfPrecision()) == []

    class WrongShape(HalfPrecision):
        id = "wrong-shape"

        def predict(self, variant, windows):
            return self.logits(windows)[:, :3]

    class NoFile(HalfPrecision):
        id = "no-file"

        def export(self, *args):
            (variant,) = super().export(*args)
            variant.path.unlink()
            return [variant]

    class Unavailable(HalfPrecision):
        id = "unavailable"

        def available(self):
            return False, "needs a converter that is not installed"

    assert any("predict gave shape" in p for p in check_object("exporters", WrongShape()))
    assert any("does not exist" in p for p in check_object("exporters", NoFile()))
    result = check_object("exporters", Unavailable())
    assert result == [] and result.skipped == ["skipped: exporter unavailable: needs a converter that is not installed"]


# --------------------------------------------------------------------------- restbench export CHECKPOINT


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small sors2018 checkpoint of a sleep-synth job (three half-hour nights: quick to prepare)."""
    from restbench.plugins.registry import get_registry
    from restbench.run.checkpoints import save_checkpoint

    root = tmp_path_factory.mktemp("export")
    net, spec = get_registry().get("models", "sors2018").build(12000, 100.0, 5, width=0.0625)
    path = root / "sors-seed0-abc123.pt"
    save_checkpoint(path, "sors2018", spec, net, method="sors", seed=0, key="abc123", dataset="sleep-synth",
                    knobs={"n_subjects": 3}, dataset_options={"n_nights": 3, "hours": 0.5})
    return path, root / "cache"


class Choosy(HalfPrecision):
    """An exporter with a ``variants`` option, as ``--no-int8`` expects: one file per variant."""

    id = "choosy"
    options = (Option("variants", list, ["fp16", "int8"], "files to write", item=str, paper=NOT_IN_PAPER),)

    def export(self, module, calibration, check_windows, folder, stem, options):
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for name in fill_options(self.options, options, self.id)["variants"]:
            path = folder / f"{stem}-{name}.pt"
            torch.save(copy.deepcopy(module).half().state_dict(), path)
            out.append(ExportedVariant(f"{self.id}-{name}", path, path.stat().st_size / 1024, {"passed": True}))
        return out


class Failing(HalfPrecision):
    id = "failing"

    def export(self, *args):
        (variant,) = super().export(*args)
        variant.check = {**variant.check, "passed": False, "top1_agreement": 0.5, "n_windows": 8}
        return [variant]


class Unwritable(HalfPrecision):
    id = "unwritable"

    def export(self, module, calibration, check_windows, folder, stem, options):
        return [ExportedVariant(f"{self.id}-int8", folder / f"{stem}-int8.pt", 0.0, None,
                                failed="the converter rejects this graph")]


class Unavailable(HalfPrecision):
    id = "unavailable"

    def available(self):
        return False, "needs a converter that is not installed"


class StandIns:
    @hookimpl
    def register_exporters(self, register):
        for exporter in (HalfPrecision(), Choosy(), Failing(), Unwritable(), Unavailable()):
            register(exporter)


def export(checkpoint, out, *args):
    path, cache = checkpoint
    with registry_with(StandIns()):
        return CliRunner().invoke(cli, ["export", str(path), "--out", str(out), "--cache-dir", str(cache), *args])


def test_checkpoint_export_goes_through_the_named_exporter_and_writes_afresh(checkpoint, tmp_path):
    stale = tmp_path / f"{checkpoint[0].stem}-fp16.pt"
    stale.write_bytes(b"an earlier export")  # exporters reuse files; a checkpoint export must not
    result = export(checkpoint, tmp_path, "--exporters", "half-precision")
    assert result.exit_code == 0, (result.output, result.exception)
    report = json.loads(result.output)
    assert report["checkpoint"] == str(checkpoint[0]) and list(report["files"]) == ["torch-fp16"]
    entry = report["files"]["torch-fp16"]
    assert entry["path"] == str(stale) and entry["check"]["passed"] and entry["failed"] is None
    assert stale.read_bytes() != b"an earlier export" and entry["size_kb"] == stale.stat().st_size / 1024
    assert sorted(p.name for p in tmp_path.iterdir()) == [stale.name]  # no staging folder left


def test_variant_keys_drop_the_exporter_prefix_and_no_int8_drops_int8(checkpoint, tmp_path):
    both = export(checkpoint, tmp_path / "both", "--exporters", "choosy")
    assert both.exit_code == 0, (both.output, both.exception)
    assert list(json.loads(both.output)["files"]) == ["fp16", "int8"]
    fp16 = export(checkpoint, tmp_path / "fp16", "--exporters", "choosy", "--no-int8")
    assert fp16.exit_code == 0, (fp16.output, fp16.exception)
    assert list(json.loads(fp16.output)["files"]) == ["fp16"]
    assert [p.name for p in (tmp_path / "fp16").iterdir()] == [f"{checkpoint[0].stem}-fp16.pt"]


def test_several_exporters_write_a_folder_each_and_keep_full_variant_names(checkpoint, tmp_path):
    result = export(checkpoint, tmp_path, "--exporters", "half-precision,choosy", "--no-int8")
    assert result.exit_code == 0, (result.output, result.exception)
    files = json.loads(result.output)["files"]
    assert list(files) == ["torch-fp16", "choosy-fp16"]
    assert Path(files["torch-fp16"]["path"]).parent == tmp_path / "half-precision"
    assert Path(files["choosy-fp16"]["path"]).parent == tmp_path / "choosy"


@pytest.mark.parametrize("exporters, message", [
    ("", "--exporters: no exporter chosen"),
    ("unavailable", "exporter unavailable unavailable: needs a converter that is not installed"),
    ("half-precision,unavailable", "exporter unavailable unavailable"),
    ("failing", "export check failed for"),
    ("unwritable", "int8: the converter rejects this graph"),
])
def test_checkpoint_export_problems_are_one_line_errors(checkpoint, tmp_path, exporters, message):
    from restbench.api import PluginError

    result = export(checkpoint, tmp_path, "--exporters", exporters)
    assert result.exit_code != 0 and isinstance(result.exception, PluginError), (result.output, result.exception)
    assert message in str(result.exception) and "\n" not in str(result.exception)


# --------------------------------------------------------------------------- the core's format-agnostic check


class TorchFile:
    """A stand-in format for the core's export loop: a pickled module, loaded back for inference."""

    runtime, runtime_version = "torch", torch.__version__

    def __init__(self, path, variant="fp32"):
        self.module, self.variant = torch.load(path, weights_only=False), variant

    def predict(self, windows):
        with torch.no_grad():
            return self.module(torch.from_numpy(np.asarray(windows))).numpy()


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 5)).eval()


def test_export_checked_writes_checks_and_reports_a_rejected_variant(tmp_path):
    from restbench.deploy.export import export_checked

    def convert(module, sample, path, variant, calibration):
        assert tuple(sample.shape) == (1, 1, 16) and (calibration is not None) == (variant == "int8")
        if variant == "int8":
            path.write_bytes(b"half a file")
            raise RuntimeError("no int8 kernel for Linear\nC++ stack trace ...")
        torch.save(module, path)

    windows = np.random.default_rng(0).normal(0, 30, (8, 1, 16)).astype(np.float32)
    files = export_checked(tiny_model(), windows, windows, tmp_path, "tiny", convert=convert, load=TorchFile,
                           suffix=".pt")
    assert files["fp32"]["check"]["passed"] and files["fp32"]["check"]["runtime"] == "torch"
    assert files["fp32"]["path"] == str(tmp_path / "tiny-fp32.pt") and files["fp32"]["failed"] is None
    assert files["int8"] == {"path": None, "size_kb": None, "check": None,
                             "failed": "the int8 graph does not run (RuntimeError: no int8 kernel for Linear)"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-fp32.pt"]  # the half file is gone


def test_check_export_fails_a_graph_that_disagrees_in_one_line(tmp_path):
    from restbench.api import PluginError
    from restbench.deploy.export import check_export, check_summary

    model, other = tiny_model(), tiny_model()
    with torch.no_grad():
        other[1].weight.mul_(-1.0)  # flips the logits: another model
    torch.save(other, tmp_path / "other.pt")
    windows = np.random.default_rng(1).normal(0, 30, (16, 1, 16)).astype(np.float32)
    with pytest.raises(PluginError, match="export check failed for other.pt \\(fp32, 16 windows\\): max abs logit"):
        check_export(model, TorchFile(tmp_path / "other.pt"), windows, name="other.pt")
    report = check_export(model, TorchFile(tmp_path / "other.pt"), windows, name="other.pt", report_only=True)
    assert report["passed"] is False and report["thresholds"] == {"max_rel_diff": 1e-3, "min_top1_agreement": 0.99}
    assert check_summary(report).endswith("(needs 0.99) on 16 windows")


def test_the_packages_exporters_and_runners_declare_are_recorded_and_compared():
    from importlib import metadata

    from restbench.records.provenance import declared_packages, provenance
    from restbench.studies.reproduce import environment

    class Declaring(HalfPrecision):
        id = "declaring"
        packages = ("rich",)  # stands for a converter's runtime

    class Plugin:
        @hookimpl
        def register_exporters(self, register):
            register(Declaring())

    with registry_with(Plugin()) as registry:
        declared = declared_packages(registry)
        prov = provenance(registry)
    builtin = [name for kind in ("exporters", "runners") for obj in registry.all(kind).values()
               for name in getattr(obj, "packages", ())]
    assert set(declared) == {"rich", *builtin} and len(declared) == len(set(declared))
    assert prov["packages"]["rich"] == metadata.version("rich")
    assert environment(prov, declared)["packages"]["rich"] == metadata.version("rich")
    assert "rich" not in environment(prov)["packages"]  # a number that does not depend on it
