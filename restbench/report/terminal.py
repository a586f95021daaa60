"""A run's summary tables on the terminal (rich), as ``restbench run`` and ``restbench summary`` print them.

A table wider than the terminal is printed in parts that each repeat the Method column, so no
number or header is cut; ``wide`` prints each table whole instead. The caveats
(:mod:`restbench.report.caveats`) follow the tables.
"""

from __future__ import annotations

from typing import Any

from restbench.report.caveats import BUSY_MARKER, BUSY_NOTE, HEALTH_MARKER, HEALTH_NOTE, busy_lines, health_lines
from restbench.report.formatting import grid
from restbench.report.tables import Table

#: Terminal cells a column adds beyond its text: the padding on both sides and one border.
_COLUMN_FRAME = 3


def _text_width(text: str, wrap: bool) -> int:
    """Terminal cells ``text`` needs: its longest line, or with ``wrap`` its longest word."""
    from rich.cells import cell_len

    parts = text.split() if wrap else text.splitlines()
    return max((cell_len(p) for p in parts), default=0)


def _column_chunks(widths: list[int], first: int, available: int) -> list[list[int]]:
    """Which data columns go in each of the tables a wide table is split into.

    ``widths``: the text width of every data column; ``first``: that of the row-label column
    every part repeats; ``available``: the terminal's width. Each part takes as many columns as
    fit (a column needs its width plus padding and border); the parts are then evened out so
    the last is not a stub. A column too wide for any part gets one of its own.
    """
    room = available - 1 - (first + _COLUMN_FRAME)  # 1: the table's left border
    greedy: list[list[int]] = []
    used = room + 1
    for j, w in enumerate(widths):
        if greedy and used + w + _COLUMN_FRAME <= room:
            greedy[-1].append(j)
            used += w + _COLUMN_FRAME
        else:
            greedy.append([j])
            used = w + _COLUMN_FRAME
    if len(greedy) <= 1:
        return greedy
    # the same number of parts, their sizes differing by at most one column, when that fits
    base, extra = divmod(len(widths), len(greedy))
    even, start = [], 0
    for n in range(len(greedy)):
        size = base + (n < extra)
        even.append(list(range(start, start + size)))
        start += size
    fits = all(sum(widths[j] + _COLUMN_FRAME for j in part) <= room or len(part) == 1 for part in even)
    return even if fits else greedy


def _part_widths(widths: list[int], headers: list[str], room: int) -> list[int]:
    """Column widths for one printed part: each column's own ``widths``, then, left to right
    while ``room`` lasts, wide enough for its header on one line."""
    out, left = list(widths), room - sum(w + _COLUMN_FRAME for w in widths)
    for i, label in enumerate(headers):
        grow = _text_width(label, wrap=False) - out[i]
        if 0 < grow <= left:
            out[i] += grow
            left -= grow
    return out


def print_summary(tables: dict[str, Table], console: Any = None, wide: bool = False) -> None:
    """Print every shown table to a rich console (a new one on stdout when not given).

    A table wider than the console is printed in parts, narrower tables numbered ``(1/3)``...
    that each repeat the Method column, so no number or header is cut; a cell's interval sits on
    the line below its value. ``wide``: each table in one piece with one-line cells, as wide as
    it needs (wider than the console if need be).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table as RichTable
    from rich.text import Text

    console = console or Console()
    shown = [t for t in tables.values() if t.show]
    if not shown:
        console.print("No results recorded yet.")
        return
    split = False
    for table in shown:
        header, body = grid(table, terminal=not wide)
        caption = table.description
        if table.notes:
            caption += "\n" + "\n".join(f"- {note}" for note in table.notes)
        if any(table.flagged(row) for row in table.rows):
            caption += "\n" + HEALTH_NOTE
        if table.busy:
            caption += "\n" + BUSY_NOTE
        first = max(_text_width(text, wrap=False) for text in [header[0], *(line[0] for line in body)])
        widths = [max(_text_width(header[j], wrap=True), *(_text_width(line[j], wrap=False) for line in body))
                  for j in range(1, len(header))]
        parts = [list(range(len(widths)))] if wide else _column_chunks(widths, first, console.width)
        for n, part in enumerate(parts, 1):
            title = table.title if len(parts) == 1 else f"{table.title} ({n}/{len(parts)})"
            rich_table = RichTable(title=title, caption=caption if len(parts) == 1 else None, show_lines=False)
            rich_table.add_column(header[0], no_wrap=True)
            room = console.width - 1 - (first + _COLUMN_FRAME)
            sized = _part_widths([widths[j] for j in part], [header[j + 1] for j in part], room)
            for j, width in zip(part, sized):
                # fixed widths that fit (a header may wrap between words, a cell keeps its lines)
                rich_table.add_column(header[j + 1], justify="right", overflow="fold", width=None if wide else width)
            for line in body:
                rich_table.add_row(*(Text(line[0]), *(Text(line[j + 1]) for j in part)))
            if wide:  # as wide as the table: the console's own width would squeeze it
                needed = 1 + first + _COLUMN_FRAME + sum(
                    max(_text_width(header[j + 1], wrap=False), widths[j]) + _COLUMN_FRAME for j in part)
                saved = console.width
                console.width = max(saved, needed)
                try:
                    console.print(rich_table)
                finally:
                    console.width = saved
            else:
                console.print(rich_table)
        if len(parts) > 1:
            console.print(Text(caption, style="table.caption"))
            split = True
    if split:
        console.print(Text(f"Tables wider than the terminal ({console.width} columns) are printed in parts; "
                           "restbench summary RUN_DIR --wide prints each whole.", style="dim"))
    warning = health_lines(tables)
    if warning:
        console.print(f"[bold red]{HEALTH_MARKER} Training health warning:[/bold red] {escape(warning[0])}")
        for line in warning[1:]:
            console.print(f"  - {escape(line)}", highlight=False)
    busy = busy_lines(tables)
    if busy:
        console.print(f"[bold yellow]Latency measured on a busy machine {BUSY_MARKER}:[/bold yellow] {len(busy)} "
                      "figure(s) measure the machine's load as much as the model")
        for line in busy:
            console.print(f"  - {escape(line)}", highlight=False)


__all__ = ["print_summary"]
