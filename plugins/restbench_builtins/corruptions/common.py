"""What the built-in corruptions share: identity, severities and option checking
(:class:`CorruptionBase`), and moving a batch to numpy and back (:func:`to_numpy`, :func:`like`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from restbench.api import Option, PluginError, Severity, UsageError, fill_options

if TYPE_CHECKING:  # numpy and torch are imported where a batch is corrupted, not to list corruptions
    import numpy as np
    import torch

LEVEL_NAMES = ("low", "medium", "high")


def severities(values: tuple[float, ...], unit: str) -> tuple[Severity, ...]:
    """The standard low / medium / high severities for three values in ``unit``."""
    return tuple(Severity(level=i + 1, name=LEVEL_NAMES[i], value=float(v), unit=unit) for i, v in enumerate(values))


def to_numpy(x: torch.Tensor) -> np.ndarray:
    """A float32 numpy copy of a batch (any device), for numpy-side corruption."""
    import torch

    if not isinstance(x, torch.Tensor):
        raise PluginError(f"corruptions take a torch.Tensor batch, got {type(x).__name__}")
    return x.detach().to("cpu", torch.float32).numpy().copy()


def like(values: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    """``values`` as a float32 tensor on ``x``'s device."""
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).to(x.device)


class CorruptionBase:
    """Identity, severity lookup and option checking shared by the built-in corruptions.

    Subclasses set ``id``, ``version``, ``description``, ``citation``, ``severities``,
    ``suite`` and declare their settings as typed ``options`` (restbench.plugins.options).
    """

    id: str = ""
    version: str = "1.0.0"
    description: str = ""
    citation: str | None = None
    severities: tuple[Severity, ...] = ()
    needs_model: bool = False
    suite: str = "paper"
    options: tuple[Option, ...] = ()

    def severity(self, severity: Severity | int | str) -> Severity:
        """The registered severity matching a ``Severity``, level or name (UsageError if none)."""
        key = severity.level if isinstance(severity, Severity) else severity
        for s in self.severities:
            if key == s.level or key == s.name:
                if isinstance(severity, Severity) and severity.value != s.value:
                    raise UsageError(
                        f"corruption '{self.id}': severity {s.name} has value {s.value} {s.unit}, got {severity.value}"
                    )
                return s
        valid = ", ".join(f"{s.level}/{s.name}" for s in self.severities)
        raise UsageError(f"corruption '{self.id}': unknown severity {key!r}; valid: {valid}")

    def resolved(self, options: dict | None) -> dict[str, Any]:
        """This corruption's declared options, checked, with defaults filled in."""
        return fill_options(self.options, options, self.id)
