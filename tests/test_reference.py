"""docs/REFERENCE.md is generated from the code (scripts/gen_reference.py): it must match."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_is_up_to_date():
    committed = (ROOT / "docs" / "REFERENCE.md").read_text()
    assert load_generator().render() == committed, (
        "docs/REFERENCE.md differs from the code: run scripts/gen_reference.py and commit the result")


def test_reference_covers_what_an_author_needs():
    text = (ROOT / "docs" / "REFERENCE.md").read_text()
    from restbench.api import KIND_PROTOCOLS
    from restbench.plugins import hookspecs

    for hook in hookspecs.REGISTRAR_HOOKS:
        assert f"### `{hook}(" in text
    for protocol in KIND_PROTOCOLS.values():
        assert f"### {protocol.__name__} (" in text
    for needed in ("restbench.training.loop.StepContext", "restbench.api.MethodContext", "microvolts",
                   "model.train()", "restbench.training.attacks.pgd", "loss_fn", "BandPass", "#### `clean+gaussian`",
                   "| `macro_f1` |", "| `latency_s_per_night_median` |", "methods: `rest-as`"):
        assert needed in text, needed
    assert "CONTRIBUTING" in text and "docs/REFERENCE.md" in (ROOT / "CONTRIBUTING.md").read_text()
