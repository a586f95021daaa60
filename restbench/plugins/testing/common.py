"""What every conformance check shares: the toy sizes, :class:`CheckResult`, the identity and
options checks, tiny networks and toy batches.

Every check exercises the object for real, on the toy data and tiny models, in well under a few
seconds. It returns a :class:`CheckResult`: the problems found (one line each, empty when the
object conforms) and what could not run on this machine (``result.skipped``).
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from restbench.plugins.contract import (
    STAGES,
    PluginError,
    validate_id,
)
from restbench.plugins.testing.toys import make_sleep_data

#: Run profile whose option defaults the checks use (short attacks, short nights).
PROFILE = "smoke"
#: Toy windows: 4 epochs of 30 s at 10 Hz; the Sleep-EDF shape is checked for models too.
N_TIMES, SFREQ, N_CLASSES = 1200, 10.0, len(STAGES)
EPOCH_S = 30.0
#: Relative slack of the corruption severity-order check (distortion may dip this much).
SEVERITY_TOLERANCE = 0.02
#: Largest factor between a runner's per-night median and per-window median x windows_per_night.
NIGHT_TOLERANCE = 3.0
#: What the runner check asks for (names a runner does not declare are left out).
RUNNER_OPTIONS = {"repetitions": 5, "warmup": 3, "night_windows": 20, "windows_per_night": 200, "threads": 1}
#: Words in a PluginError that mean "needs files this machine does not have": reported as skipped.
_NEEDS_FILES = ("not found", "data-dir", "data directory", "download", "export", "file")


class CheckResult(list):
    """The problems found with a plugin object: a list of one-line strings, so ``== []`` when
    it conforms, plus ``skipped``: parts that could not run here, each ``"skipped: <reason>"``
    (a runner whose device is absent, a dataset whose files are not on this machine)."""

    def __init__(self, problems: Iterable[str] = (), skipped: Iterable[str] = ()) -> None:
        super().__init__(problems)
        self.skipped: list[str] = list(skipped)

    def skip(self, reason: str) -> "CheckResult":
        self.skipped.append(f"skipped: {reason}")
        return self

    def merge(self, other: Iterable[str]) -> "CheckResult":
        self.extend(other)
        self.skipped.extend(getattr(other, "skipped", ()))
        return self


def _declared_options(obj) -> tuple:
    declared = getattr(obj, "options", None)
    if declared is None or callable(declared):  # a method named options is not a declaration
        return ()
    return tuple(declared)


def profile_knobs(profile: str = PROFILE) -> dict:
    """The core knobs of a run profile (the checks' default: ``smoke``), as a method's
    :class:`MethodContext` receives them."""
    from restbench.run import profiles

    return profiles.resolve(profile)


def plugin_options(obj, overrides: dict | None = None, profile: str | None = PROFILE) -> dict | None:
    """The options the harness hands ``obj`` under ``profile``: every option it declares at its
    (profile) default, with ``overrides`` for the names it declares (others are dropped).
    None when ``obj`` declares no options."""
    declared = _declared_options(obj)
    if not declared:
        return None
    from restbench.plugins.options import fill_options

    names = {o.name for o in declared}
    given = {k: v for k, v in (overrides or {}).items() if k in names}
    return fill_options(declared, given, getattr(obj, "id", "plugin"), profile)


def _check_options(obj) -> list[str]:
    """Declared options are Option objects, named once, whose defaults pass their own checks."""
    declared = getattr(obj, "options", None)
    if declared is None or callable(declared):
        return []
    from restbench.plugins.options import Option

    if not isinstance(declared, (tuple, list)) or not all(isinstance(o, Option) for o in declared):
        return ["options must be a tuple of restbench.plugins.options.Option"]
    problems = []
    names = [o.name for o in declared]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"options declares {', '.join(twice)} more than once")
    for option in declared:
        for profile in (None, *option.profiles):
            try:
                option.check(option.default_for(profile), f"option {option.name}")
            except Exception as exc:
                where = f" under profile {profile}" if profile else ""
                problems.append(f"option {option.name}: its default{where} fails its own check: {exc}")
    return problems


def _check_identity(obj) -> list[str]:
    problems = []
    try:
        validate_id(getattr(obj, "id", None))
    except PluginError as exc:
        problems.append(str(exc))
    if not isinstance(getattr(obj, "version", None), str) or not obj.version:
        problems.append("version must be a non-empty string")
    desc = getattr(obj, "description", None)
    if not isinstance(desc, str) or not desc.strip() or "\n" in desc.strip():
        problems.append("description must be one non-empty line")
    if getattr(obj, "citation", None) is not None and not isinstance(obj.citation, str):
        problems.append("citation must be a string or None")
    return problems


def _tiny_model(n_times: int = N_TIMES):
    """A 65-parameter network mapping ``(n, 1, n_times)`` to 5 logits (with BatchNorm,
    so BN-aware parts are exercised too)."""
    import torch

    return torch.nn.Sequential(torch.nn.Conv1d(1, 4, 7, stride=4, padding=3), torch.nn.BatchNorm1d(4),
                               torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(),
                               torch.nn.Linear(4, N_CLASSES))


def _toy_batch(n: int = 6):
    """``n`` toy windows spread over the toy data (one includes N3's large slow waves), their
    labels, and the data (for its training stats and sampling rate)."""
    import torch

    data = make_sleep_data(n_subjects=3, epochs_per_subject=12)
    ends = data.window_end[np.linspace(0, len(data.window_end) - 1, n).astype(int)]
    x, y = data.get(ends)
    return torch.from_numpy(x), torch.from_numpy(y), data


def _count(module) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def _shapes(module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _name(part) -> str:
    try:
        return str(part.config().get("name") or type(part).__name__)
    except Exception:
        return type(part).__name__
