"""Write docs/REFERENCE.md from the code, so the reference cannot drift from it.

    .venv/bin/python scripts/gen_reference.py          # rewrite docs/REFERENCE.md
    .venv/bin/python scripts/gen_reference.py --check  # exit 1 when the file is out of date

Sources: the hookspecs' docstrings (restbench/plugins/hookspecs.py), the protocols and context
objects of restbench/plugins/contract.py (importable from restbench.api) and restbench/training/loop.py, the signatures and docstrings of the
reusable parts (inspect), the built-in plugins' declared options, and every field of
restbench/schema/record.schema.json. tests/test_reference.py fails when the committed file differs.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "REFERENCE.md"


def _doc(obj) -> str:
    return inspect.cleandoc(inspect.getdoc(obj) or "(no docstring)")


def _sig(name: str, fn) -> str:
    return f"{name}{inspect.signature(fn)}"


def _code(text: str) -> list[str]:
    return ["```python", text, "```", ""]


def _value(value) -> str:
    text = repr(value)
    if " at 0x" in text:
        text = type(value).__name__
    return f"`{text}`".replace("|", "\\|")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def hooks() -> list[str]:
    from restbench.plugins import hookspecs

    lines = ["## Hooks", "", "A plugin module implements any of these with `@restbench.hookimpl` "
             "(restbench/plugins/hookspecs.py).", ""]
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if name.startswith("register_"):
            lines += [f"### `{_sig(name, fn)}`", "", _doc(fn), ""]
    return lines


def _members(cls) -> list[str]:
    lines = []
    hints = {k: v for k, v in getattr(cls, "__annotations__", {}).items()}
    own = [k for k in hints if k not in ("id", "version", "description", "citation")]
    if own:
        lines += ["Attributes: " + ", ".join(f"`{k}: {hints[k]}`" for k in own) + ".", ""]
    for name, value in vars(cls).items():
        if callable(value) and not name.startswith("_"):
            lines += _code(f"def {_sig(name, value)}")
            if inspect.getdoc(value):
                lines += [_doc(value), ""]
    return lines


def _dataclass(cls) -> list[str]:
    rows = ["| field | type | default |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = _value(f.default)
        elif f.default_factory in (list, dict, tuple, set):  # type: ignore[misc]
            default = _value(f.default_factory())  # type: ignore[misc]
        elif f.default_factory is not dataclasses.MISSING:  # e.g. the cache dir, from the environment
            default = "computed when created"
        else:
            default = "required"
        rows.append(f"| `{f.name}` | `{_cell(f.type)}` | {default} |")
    return rows + [""]


def interfaces() -> list[str]:
    from restbench import api
    from restbench.training import loop

    lines = ["## Interfaces", "", "Every object also carries `id` (kebab-case), `version`, `description` (one line) "
             "and `citation` (a string or None), and may declare `options` (a tuple of "
             "`restbench.plugins.options.Option`), `default = True` (picked when none is named) and "
             "`in_all = False` (left out of `--methods all` / `--corruptions all`).", ""]
    for kind, protocol in api.KIND_PROTOCOLS.items():
        lines += [f"### {protocol.__name__} ({kind})", "", _doc(protocol), ""] + _members(protocol)
    lines += ["## Context and result objects", ""]
    for cls in (api.MethodContext, api.Phase, api.Recipe, loop.StepContext, api.Severity, api.DatasetOptions,
                api.CompressionReport, api.Artifact, api.ExportedVariant, api.LatencyReport):
        public = "restbench.api" if cls.__module__ == "restbench.plugins.contract" else cls.__module__
        lines += [f"### `{public}.{cls.__name__}`", "", _doc(cls), ""] + _dataclass(cls)
        methods = [(n, v) for n, v in vars(cls).items() if callable(v) and not n.startswith("_")]
        for name, value in methods:
            lines += _code(f"def {_sig(name, value)}") + [_doc(value), ""]
    lines += ["### `restbench.training.loop.default_step` (the built-in step)", ""]
    lines += _code(_sig("default_step", loop.default_step)) + [_doc(loop.default_step), ""]
    return lines


def reusable() -> list[str]:
    from restbench.deploy.transforms import BandPass
    from restbench.training import attacks, augment, regularizers, selection

    lines = ["## Reusable parts", "", "Import them inside your functions (they import torch).", ""]
    for where, obj in (("restbench.training.attacks", attacks.pgd),):
        lines += [f"### `{where}.{obj.__name__}`", ""] + _code(_sig(obj.__name__, obj)) + [_doc(obj), ""]
    classes = [("restbench.training.augment", augment.GaussianNoise), ("restbench.training.augment", augment.PGDAdversarial),
               ("restbench.training.regularizers", regularizers.SpectralRegularizer),
               ("restbench.training.regularizers", regularizers.BNSparsity),
               ("restbench.deploy.transforms", BandPass)]
    for where, cls in classes:
        lines += [f"### `{where}.{cls.__name__}`", ""] + _code(_sig(cls.__name__, cls.__init__).replace("(self, ", "("))
        lines += [_doc(cls), ""]
        for name, value in vars(cls).items():
            if callable(value) and not name.startswith("_"):
                lines += [f"- `{_sig(name, value)}`" + (f": {inspect.getdoc(value).splitlines()[0]}"
                                                        if inspect.getdoc(value) else "")]
        lines += [""]
    lines += ["### Selection criteria (`restbench.training.selection`)", "",
              "`Phase(selection=NAME, selection_options={...})`; each criterion scores the validation subset "
              "after every epoch and the best epoch's weights are kept.", ""]
    for name, crit in sorted(selection.CRITERIA.items()):
        lines += [f"#### `{name}`", "", _doc(type(crit)), ""] + _code(_sig("score", crit.score))
    return lines


def _option_rows(options) -> list[str]:
    from restbench.plugins.options import NOT_IN_PAPER, SAME_AS_DEFAULT

    rows = ["| option | type | default | per profile | paper | help |", "|---|---|---|---|---|---|"]
    for o in options:
        if o.paper is SAME_AS_DEFAULT:
            paper = "same as default"
        elif o.paper is NOT_IN_PAPER:
            paper = "not in paper"
        else:
            paper = _value(o.paper)
        profiles = ", ".join(f"{k}: {_value(v)}" for k, v in sorted(o.profiles.items())) or "-"
        bounds = []
        if o.minimum is not None:
            bounds.append(f">= {o.minimum:g}")
        if o.maximum is not None:
            bounds.append(f"<= {o.maximum:g}")
        if o.choices:
            bounds.append("one of " + ", ".join(map(str, o.choices)))
        if o.nullable:
            bounds.append("may be null")
        kind = o.type.__name__ + (f"[{o.item.__name__}]" if o.item else "")
        help_text = o.help + (f" ({'; '.join(bounds)})" if bounds else "")
        rows.append(f"| `{o.name}` | {kind} | {_value(o.default)} | {_cell(profiles)} | {_cell(paper)} | "
                    f"{_cell(help_text)} |")
    return rows + [""]


def builtin_options() -> list[str]:
    from restbench.api import KINDS
    from restbench.plugins.registry import Registry
    from restbench.run import profiles

    lines = ["## Options", "", "Set with `--set NAME=VALUE` (core knobs) or `--set ID.NAME=VALUE` (a plugin's), or "
             "from `--config`; `restbench list KIND --options` shows the installed plugins' options.", ""]
    core = getattr(profiles, "KNOBS", None) or getattr(profiles, "CORE_OPTIONS", None)
    if core:
        lines += ["### Core knobs (restbench.run.profiles)", ""] + _option_rows(core)
    registry = Registry()
    registry.load_entry_points()
    for kind in KINDS:
        for obj_id, obj in sorted(registry.all(kind).items()):
            if not type(obj).__module__.startswith("restbench_builtins"):
                continue  # built-ins only: the reference must not depend on what else is installed
            declared = getattr(obj, "options", None)
            if not declared or callable(declared):
                continue
            lines += [f"### {kind}: `{obj_id}`", "", obj.description, ""] + _option_rows(declared)
    return lines


def _type(spec: dict, defs: dict) -> str:
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name, {})
        return {"name": "string", "unit_interval": "number 0..1", "nonneg": "number >= 0", "nonneg_int": "integer >= 0",
                "nonneg_or_null": "number >= 0 or null", "matrix5_unit": "5x5 numbers 0..1",
                "matrix5_counts": "5x5 integers >= 0"}.get(name, _type(target, defs) if target else name)
    if "anyOf" in spec:
        return " or ".join(_type(s, defs) for s in spec["anyOf"])
    if "enum" in spec:
        return "one of " + ", ".join(map(str, spec["enum"]))
    kind = spec.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else kind


def record_fields() -> list[str]:
    schema = json.loads((ROOT / "restbench" / "schema" / "record.schema.json").read_text())
    defs = schema["$defs"]
    lines = ["## Results records (results.jsonl)", "", schema["description"], "",
             "From restbench/schema/record.schema.json; units are in each description.", ""]

    def table(title: str, part: dict) -> list[str]:
        required = set(part.get("required", []))
        rows = [f"### {title}", ""]
        if part.get("description"):
            rows += [part["description"], ""]
        rows += ["| field | required | type | description |", "|---|---|---|---|"]
        for name, spec in part.get("properties", {}).items():
            rows.append(f"| `{name}` | {'yes' if name in required else 'no'} | {_cell(_type(spec, defs))} | "
                        f"{_cell(spec.get('description', ''))} |")
        return rows + [""]

    lines += table("Every record", schema)
    for name in ("robustness", "efficiency", "latency", "training"):
        lines += table(f"record_type = {name}", defs[name])
    lines += table("training: health", defs["health"])
    return lines


def render() -> str:
    head = ["<!-- Generated by scripts/gen_reference.py from the code; do not edit by hand. -->", "",
            "# restbench reference", "",
            "Everything a plugin author calls or implements, generated from the code: the hooks, the interfaces "
            "with their context objects, the reusable parts, the built-in plugins' options and every field of a "
            "results record. Start with CONTRIBUTING.md.", "",
            "- [Hooks](#hooks)", "- [Interfaces](#interfaces)", "- [Context and result objects](#context-and-result-objects)",
            "- [Reusable parts](#reusable-parts)", "- [Options](#options)",
            "- [Results records](#results-records-resultsjsonl)", ""]
    body = head + hooks() + interfaces() + reusable() + builtin_options() + record_fields()
    return "\n".join(line.rstrip() for line in "\n".join(body).split("\n")).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run scripts/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
