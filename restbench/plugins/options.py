"""Parsing of plugin options given on the command line as text (``key=value``)."""

from __future__ import annotations

from typing import Any

from restbench.errors import UsageError

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def as_bool(value: Any, where: str) -> bool:
    """``value`` as a boolean (a bool, or one of the usual words); ``where`` names the option
    in the one-line error, e.g. ``"dataset option resample"``."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise UsageError(f"{where}: expected true or false, got {value!r}")
