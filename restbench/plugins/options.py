"""Typed options: what a plugin (or the core) lets a user set, and how values are checked.

Every plugin kind may declare ``options: tuple[Option, ...]``. The harness resolves each
selected plugin's options from, lowest first: the option's default, its per-profile default,
a ``--config`` file, then ``--set ID.NAME=VALUE``; every value is type- and range-checked
before anything is written, and the resolved values are recorded per plugin in ``run.json``
together with the ones that differ from the paper's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from restbench.errors import UsageError, did_you_mean

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


class _SameAsDefault:
    def __repr__(self) -> str:
        return "SAME_AS_DEFAULT"


class _NotInPaper:
    def __repr__(self) -> str:
        return "NOT_IN_PAPER"


#: ``Option.paper`` when the paper's value is the option's default (the usual case).
SAME_AS_DEFAULT: Any = _SameAsDefault()
#: ``Option.paper`` for an option the paper has no value for: it never counts as a deviation.
NOT_IN_PAPER: Any = _NotInPaper()

TYPES = (int, float, bool, str, list)


@dataclass(frozen=True)
class Option:
    """One setting a user can change.

    ``type`` is ``int``, ``float``, ``bool``, ``str`` or ``list`` (then ``item`` types the
    elements). ``profiles`` maps a run profile to its own default (e.g. fewer PGD steps under
    ``quick``). ``paper`` is the value the REST paper used (by default the option's default).
    ``minimum``/``maximum`` bound numbers (and list elements); ``choices`` lists allowed values;
    ``nullable`` admits ``null`` (JSON) as "not set".
    """

    name: str
    type: type
    default: Any
    help: str
    paper: Any = SAME_AS_DEFAULT
    profiles: Mapping[str, Any] = field(default_factory=dict)
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    nullable: bool = False
    item: type | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise TypeError(f"option {self.name}: type must be one of int, float, bool, str, list")

    @property
    def paper_value(self) -> Any:
        return self.default if self.paper is SAME_AS_DEFAULT else self.paper

    def default_for(self, profile: str | None) -> Any:
        return self.profiles.get(profile, self.default) if profile else self.default

    def type_name(self) -> str:
        name = "list" if self.type is list else self.type.__name__
        if self.type is list and self.item is not None:
            name = f"list[{self.item.__name__}]"
        return name + (" or null" if self.nullable else "")

    def to_dict(self) -> dict:
        """Plain-data view for ``restbench list KIND --options`` and run.json."""
        return {
            "name": self.name,
            "type": self.type_name(),
            "default": self.default,
            "profiles": dict(self.profiles),
            "paper": None if self.paper is NOT_IN_PAPER else self.paper_value,
            "in_paper": self.paper is not NOT_IN_PAPER,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "choices": list(self.choices) if self.choices is not None else None,
            "help": self.help,
        }

    # ------------------------------------------------------------------ checking

    def check(self, value: Any, where: str) -> Any:
        """``value`` converted to this option's type and checked against its bounds.

        Strings (from ``--set`` or a dataset option) are parsed; ``where`` names the option in
        the one-line :class:`UsageError`.
        """
        if isinstance(value, str) and value.strip() == "null":
            value = None
        if value is None:
            if self.nullable:
                return None
            raise UsageError(f"{where}: must be set (null is not allowed); {self.help}")
        value = self._convert(self.type, value, where)
        if self.type is list:
            if self.item is not None:
                value = [self._bounded(self._convert(self.item, v, where), where) for v in value]
        else:
            value = self._bounded(value, where)
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(json.dumps(c) for c in self.choices)
            raise UsageError(f"{where}: {json.dumps(value)} is not allowed; choose one of {allowed}")
        return value

    @staticmethod
    def _convert(kind: type, value: Any, where: str) -> Any:
        if kind is bool:
            return as_bool(value, where)
        if kind is int:
            if isinstance(value, bool):
                raise UsageError(f"{where}: expected an integer, got {value!r}")
            if isinstance(value, str):
                value = _parse_text(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if not isinstance(value, int):
                raise UsageError(f"{where}: expected an integer, got {value!r}")
            return value
        if kind is float:
            if isinstance(value, str):
                value = _parse_text(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"{where}: expected a number, got {value!r}")
            if not math.isfinite(value):
                raise UsageError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        if kind is str:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)  # a serial or name that happens to look like a number on the command line
            if not isinstance(value, str):
                raise UsageError(f"{where}: expected text, got {json.dumps(value)}")
            return value
        if kind is list:
            if isinstance(value, str):
                value = _parse_text(value)
                if isinstance(value, str):  # a comma-separated list, as shells make easy
                    value = [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, tuple):
                value = list(value)
            if not isinstance(value, list):
                raise UsageError(f"{where}: expected a list, got {json.dumps(value)}")
            return value
        raise UsageError(f"{where}: unsupported type {kind!r}")  # pragma: no cover - __post_init__ forbids it

    def _bounded(self, value: Any, where: str) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if self.minimum is not None and value < self.minimum:
                raise UsageError(f"{where}: {value!r} is below the minimum {self.minimum:g}")
            if self.maximum is not None and value > self.maximum:
                raise UsageError(f"{where}: {value!r} is above the maximum {self.maximum:g}")
        return value


def _parse_text(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, lists, true/null), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_value(text: str) -> Any:
    """A ``--set`` value as the user typed it; typing happens against the option it sets."""
    return _parse_text(text)


def options_of(obj: Any) -> tuple[Option, ...]:
    """The options a plugin object declares (none when it declares none)."""
    declared = getattr(obj, "options", None) or ()
    if not all(isinstance(o, Option) for o in declared):
        raise UsageError(f"plugin '{getattr(obj, 'id', obj)}': 'options' must be a tuple of restbench Option objects")
    return tuple(declared)


def resolve_options(
    declared: Iterable[Option], profile: str | None, given: Mapping[str, tuple[str, Any]], owner: str | None
) -> dict[str, Any]:
    """Resolved values of ``declared``: the profile's default, overridden by ``given``
    (name -> (where it was set, value)). ``owner`` is the plugin id (None for core knobs)."""
    declared = list(declared)
    by_name = {o.name: o for o in declared}
    prefix = f"{owner}." if owner else ""
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        where = given[unknown[0]][0]
        valid = ", ".join(prefix + name for name in by_name) or "(none)"
        what = f"plugin '{owner}' has no option" if owner else "unknown knob"
        hint = did_you_mean(unknown[0], by_name, shown=lambda name: prefix + name)
        raise UsageError(f"{where}: {what} '{unknown[0]}'{hint}; valid: {valid}")
    out = {}
    for option in declared:
        if option.name in given:
            where, value = given[option.name]
            out[option.name] = option.check(value, f"{where} {prefix}{option.name}")
        else:
            out[option.name] = option.check(option.default_for(profile), f"default of {prefix}{option.name}")
    return out


def deviations(declared: Iterable[Option], values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """One readable line per option whose value differs from the paper's."""
    out = []
    for option in declared:
        if option.paper is NOT_IN_PAPER or option.name not in values:
            continue
        if values[option.name] != option.paper_value:
            out.append(f"{prefix}{option.name}: {json.dumps(values[option.name])} "
                       f"(paper: {json.dumps(option.paper_value)})")
    return out


def fill_options(declared: Iterable[Option], values: Mapping[str, Any] | None, owner: str,
                 profile: str | None = None) -> dict[str, Any]:
    """For plugin code called directly (tests, notebooks): ``values`` checked against the
    plugin's declared options, with every missing one at its (profile) default. Inside a run the
    harness has already done this, and calling it again changes nothing."""
    given = {name: ("option", value) for name, value in (values or {}).items()}
    return resolve_options(declared, profile, given, owner)
