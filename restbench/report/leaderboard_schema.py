"""The leaderboard.json schema (``restbench/schema/leaderboard.schema.json``) and its checks."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from restbench.plugins.contract import PluginError

#: The version of leaderboard.json's format a build writes.
LEADERBOARD_SCHEMA_VERSION = "1.1"  # 1.1: frontier, claims, per-subject cells, ratio columns


def _validator():
    from jsonschema import Draft202012Validator

    schema = json.loads(resources.files("restbench").joinpath("schema", "leaderboard.schema.json").read_text("utf-8"))
    return Draft202012Validator(schema)


def schema_problems(data: Any) -> list[str]:
    """Every schema violation of a leaderboard.json, one line each with the field's path."""
    out = []
    for error in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path).lstrip(".")
        out.append(f"schema: {where or '(top level)'}: {error.message[:200]}")
    return out


def check_leaderboard_schema(data: dict) -> None:
    """Refuse leaderboard.json content that violates the schema (its first violation, one line)."""
    problems = schema_problems(data)
    if problems:
        raise PluginError(f"invalid leaderboard.json: {problems[0]}")


__all__ = ["LEADERBOARD_SCHEMA_VERSION", "check_leaderboard_schema", "schema_problems"]
