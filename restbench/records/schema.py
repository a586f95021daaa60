"""The record and run.json layouts: their version, record types, and validation against the JSON
Schemas in ``restbench/schema/`` (draft 2020-12) with errors that name the field."""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

from restbench.errors import PluginError
from restbench.records.jsonio import to_jsonable

#: Version of the record and run.json layout. Minor bumps add optional fields only;
#: the schemas accept any ``1.x``.
SCHEMA_VERSION = "1.1"

RECORD_TYPES: tuple[str, ...] = ("robustness", "efficiency", "latency", "training")

RUN_STATUSES: tuple[str, ...] = ("running", "complete", "failed")

_CUSTOM_TYPE = re.compile(r"^x-[a-z0-9]+(?:-[a-z0-9]+)*$")



@lru_cache(maxsize=None)
def load_schema(name: str) -> dict:
    """The JSON Schema ``restbench/schema/<name>.schema.json`` (``name``: "record" or "run")."""
    text = resources.files("restbench").joinpath("schema", f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def _validator(name: str):
    from jsonschema import Draft202012Validator  # imported on first validation only

    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _field_path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _describe_error(error) -> str:
    """One line naming the field and what is wrong with it."""
    where = _field_path(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [p for p in error.validator_value if p not in error.instance and repr(p) in error.message]
        name = missing[0] if missing else error.message.split("'")[1]
        full = f"{where}.{name}" if where else name
        return f"missing field '{full}'"
    value = json.dumps(error.instance, default=str)
    if len(value) > 60:
        value = value[:57] + "..."
    if error.validator == "type":
        return f"field '{where}' is {value}, expected type {error.validator_value}"
    if error.validator == "const":
        return f"field '{where}' is {value}, expected {json.dumps(error.validator_value)}"
    if error.validator == "enum":
        return f"field '{where}' is {value}, expected one of {json.dumps(error.validator_value)}"
    if where:
        return f"field '{where}': {error.message}"
    return error.message


def _first_error(name: str, instance: Any) -> tuple[str, int] | None:
    from jsonschema.exceptions import best_match

    errors = list(_validator(name).iter_errors(instance))
    if not errors:
        return None
    return _describe_error(best_match(errors)), len(errors)


def _non_finite(obj: Any, path: tuple = ()) -> tuple | None:
    """Path of the first NaN/inf float in ``obj``, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path
    if isinstance(obj, dict):
        for k, v in obj.items():
            found = _non_finite(v, path + (k,))
            if found is not None:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found = _non_finite(v, path + (i,))
            if found is not None:
                return found
    return None


def _check(name: str, what: str, instance: Any) -> None:
    if not isinstance(instance, dict):
        raise PluginError(f"invalid {what}: expected a JSON object, got {type(instance).__name__}")
    bad = _non_finite(instance)
    if bad is not None:
        raise PluginError(
            f"invalid {what}: field '{_field_path(bad)}' is {instance_at(instance, bad)!r}; "
            "JSON has no NaN/inf: store a finite number or null"
        )
    found = _first_error(name, instance)
    if found is not None:
        message, count = found
        more = f" (and {count - 1} more problem{'s' if count > 2 else ''})" if count > 1 else ""
        raise PluginError(f"invalid {what}: {message}{more}")


def instance_at(obj: Any, path: tuple) -> Any:
    """The value at ``path`` (keys and indices) inside ``obj``."""
    for part in path:
        obj = obj[part]
    return obj


def validate_record(record: dict) -> dict:
    """Check one results record against ``record.schema.json`` plus the checks a schema cannot
    express (confusion rows sum to 1, counts add up to ``n_windows``).

    numpy/torch numbers and tuples are accepted (they are checked in their JSON form). Returns
    the record as plain JSON data (what :meth:`RunDir.append` writes); raises
    :class:`PluginError` with a one-line message naming the field.
    """
    record = to_jsonable(record)
    kind = record.get("record_type") if isinstance(record, dict) else None
    known = isinstance(kind, str) and (kind in RECORD_TYPES or _CUSTOM_TYPE.match(kind) is not None)
    what = f"{kind} record" if known else "record"
    if isinstance(record, dict) and "record_type" in record and not known:
        raise PluginError(
            f"invalid record: field 'record_type' is {json.dumps(kind, default=str)}, expected one of "
            f"{', '.join(RECORD_TYPES)} (or a custom type starting with 'x-')"
        )
    _check("record", what, record)
    if record["record_type"] == "robustness":
        for i, row in enumerate(record["confusion"]):
            total = sum(row)
            if abs(total - 1.0) > 1e-4 and total != 0:
                raise PluginError(
                    f"invalid {what}: field 'confusion[{i}]' sums to {total:.6g}; "
                    "rows must be normalised (sum 1, or 0 for a stage absent from the test set)"
                )
        counted = sum(sum(row) for row in record["confusion_counts"])
        if counted != record["n_windows"]:
            raise PluginError(
                f"invalid {what}: field 'confusion_counts' adds up to {counted} windows "
                f"but 'n_windows' is {record['n_windows']}"
            )
        ci = record["macro_f1_ci95"]
        if ci is not None and ci[0] > ci[1]:
            raise PluginError(f"invalid {what}: field 'macro_f1_ci95' has lower bound {ci[0]} above upper {ci[1]}")
    return record


def validate_run(run_info: dict) -> dict:
    """Check run.json content against ``run.schema.json``; returns it as plain JSON data or
    raises :class:`PluginError` naming the field."""
    run_info = to_jsonable(run_info)
    _check("run", "run.json", run_info)
    return run_info
