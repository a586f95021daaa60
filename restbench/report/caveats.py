"""What a reader must know before trusting a number, said the same way in every report.

- A collapsed training phase (restbench.training.health): its method's numbers describe a failed
  training. Marked :data:`HEALTH_MARKER` after the method's name and listed under "Training health".
- A latency timed while the machine was busy: an upper bound, marked :data:`BUSY_MARKER`.
- An exported graph whose check against its PyTorch model failed: its size and latency are real,
  its predictions are not the PyTorch model's (:data:`EXPORT_NOTE`).
"""

from __future__ import annotations

from restbench.report.tables import Table

#: Put after the name of a method with a collapsed training phase.
HEALTH_MARKER = "⚠"
#: Under a summary table that has such a method.
HEALTH_NOTE = (f"{HEALTH_MARKER}: a training phase of this method collapsed (the model did not learn to tell the "
               "stages apart); see Training health.")
#: In a leaderboard that has such an entry.
ENTRY_HEALTH_NOTE = (f"{HEALTH_MARKER}: a training phase of this entry collapsed (the model did not learn to tell "
                     "the stages apart); its numbers describe a failed training. See Training health.")

#: After a latency measured while the machine was busy (the record's ``busy``).
BUSY_MARKER = "(busy)"
BUSY_NOTE = (f"{BUSY_MARKER}: measured while the machine was busy (spread, other processes or load average; "
             "see Latency measured on a busy machine): an upper bound rather than the model's latency.")

EXPORT_NOTE = ("An exported graph below disagreed with its PyTorch model on held-out windows: its file size and "
               "latency are measured, but it does not compute what the robustness columns describe.")


def health_flags(tables: dict[str, Table]) -> list[dict]:
    """Every collapsed (method, seed, phase) of ``tables`` once, in table order."""
    seen: dict[tuple, dict] = {}
    for table in tables.values():
        for h in table.health:
            seen.setdefault((h["dataset"], h["model"], h["method"], h["seed"], h["phase"]), h)
    return list(seen.values())


def health_lines(tables: dict[str, Table]) -> list[str]:
    """The "Training health" warning: a heading line, then one line per collapsed phase
    (``method seed S phase: reasons``); empty when nothing is flagged."""
    flags = health_flags(tables)
    if not flags:
        return []
    head = (f"{len(flags)} training phase(s) collapsed (training loss near the label-prior entropy, one class "
            "dominating the validation predictions, or validation macro-F1 at chance): their numbers describe a "
            "failed training, not the method.")
    return [head] + [f"{h['label']} seed {h['seed']} {h['phase']}: {'; '.join(h['reasons'])}" for h in flags]


def busy_lines(tables: dict[str, Table]) -> list[str]:
    """The latency figures taken on a busy machine, one line each (empty when none)."""
    return [f"{b['label']} seed {b['seed']} on {b['runner']} {b['variant']}: {'; '.join(b['reasons'])}"
            for table in tables.values() for b in table.busy]


def entry_name(entry: dict) -> str:
    """A leaderboard entry's key, with the health marker when a training phase of it collapsed."""
    return f"{entry['key']} {HEALTH_MARKER}" if entry.get("flags") else entry["key"]


__all__ = [
    "BUSY_MARKER",
    "BUSY_NOTE",
    "ENTRY_HEALTH_NOTE",
    "EXPORT_NOTE",
    "HEALTH_MARKER",
    "HEALTH_NOTE",
    "busy_lines",
    "entry_name",
    "health_flags",
    "health_lines",
]
