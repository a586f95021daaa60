"""Exporters are plugins: deployed variants (and which of them are evaluated under corruption)
come from register_exporters, not from branches in the pipeline."""

import copy
import json

import numpy as np
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
