"""Progress display and the run log: a rich progress bar per phase, or nothing in quiet mode.

Every message also goes to the run directory's ``log.txt``, so a quiet CI run still leaves a
readable trace.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


def quiet_by_default() -> bool:
    return os.environ.get("RESTBENCH_QUIET", "") not in ("", "0") or os.environ.get("CI", "") == "true"


class Reporter:
    """Prints phase progress and writes every line to ``log_path``."""

    def __init__(self, console: Console | None = None, quiet: bool = False, log_path: Path | None = None):
        self.console = console or Console(stderr=True)
        self.quiet = quiet
        self.log_path = log_path
        self._progress: Progress | None = None
        self._task = None
        self._depth = 0  # a phase opened inside another one advances the outer bar

    def log(self, message: str) -> None:
        if self.log_path is not None:
            with open(self.log_path, "a") as fh:
                fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
        if not self.quiet:
            if self._progress is not None:
                self._progress.console.print(message, markup=False, highlight=False)
            else:
                self.console.print(message, markup=False, highlight=False)

    def phase(self, title: str, total: int) -> "Reporter":
        """Start a progress bar of ``total`` steps (epochs x batches); use as a context manager.
        Inside another phase it starts nothing (the outer bar goes on)."""
        self._depth += 1
        if self._depth > 1:
            return self
        self.log(f"start {title}")
        if not self.quiet:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console, transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(title, total=total, status="")
        return self

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth > 0:
            return
        if self._progress is not None:
            self._progress.stop()
        self._progress, self._task = None, None

    def training_callback(self, event: str, info: dict) -> None:
        """Adapter for :func:`restbench.training.loop.train_phase`'s ``progress`` argument."""
        if event == "batch" and self._progress is not None:
            self._progress.update(self._task, advance=1,
                                  status=f"epoch {info['epoch']} loss {info['loss']:.3f}")
        elif event == "epoch":
            details = " ".join(f"{k}={v:.4g}" for k, v in info.items() if k not in ("epoch",))
            self.log(f"  epoch {info['epoch']}: {details}")

    def advance(self, status: str = "") -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, status=status)
