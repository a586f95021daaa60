"""Plain JSON for records: UTC timestamps, numpy/torch values as JSON, atomic JSON writes, and
reads that name the file when it is missing or malformed."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from restbench.errors import PluginError
from restbench.records.atomic import write_json_atomic as _write_json_atomic

# --------------------------------------------------------------------------- plain JSON


def utc_now() -> str:
    """The current UTC time as an ISO 8601 string with seconds (``2025-01-31T12:00:00+00:00``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def to_jsonable(obj: Any) -> Any:
    """Return ``obj`` as plain JSON data: numpy/torch scalars and arrays become Python numbers
    and lists, tuples become lists, ``Path`` becomes a string. Strings are never parsed into
    numbers and unknown objects are left for ``json`` to reject."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)  # an IntEnum or a bool subclass would otherwise dump oddly
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    # numpy scalars/arrays and torch tensors, without importing either
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_jsonable(obj.tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return to_jsonable(obj.item())
    return obj


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Replace the file at ``path`` with ``obj`` as indented JSON atomically; returns the path.

    numpy/torch numbers are converted first (:func:`to_jsonable`); NaN and infinity are refused
    (JSON has neither). The write itself is :func:`restbench.records.atomic.write_json_atomic`."""
    return _write_json_atomic(path, to_jsonable(obj))


def load_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a missing or malformed file is a :class:`PluginError` naming it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise PluginError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise PluginError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


# --------------------------------------------------------------------------- schemas
