"""The Markdown documents: a run's summary.md and a leaderboard's leaderboard.md.

Both are pipe tables of formatted cells (:mod:`restbench.report.formatting`) under the facts a
reader needs first: the run or runs, deviations from the paper protocol, and every caveat
(:mod:`restbench.report.caveats`). summary.md reads the tables of one run
(:mod:`restbench.report.summary`); leaderboard.md reads leaderboard.json
(:mod:`restbench.report.leaderboard_view`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from restbench.report.caveats import (
    BUSY_NOTE,
    ENTRY_HEALTH_NOTE,
    EXPORT_NOTE,
    HEALTH_MARKER,
    HEALTH_NOTE,
    busy_lines,
    entry_name,
    health_lines,
)
from restbench.report.eval_sets import SET_NOTE
from restbench.report.formatting import grid
from restbench.report.leaderboard_view import (
    cell_text,
    eval_set_views,
    power_note,
    stored_claims_table,
    stored_frontier_table,
    table_groups,
)
from restbench.report.tables import REFERENCE_VARIANT, Table


def escape(text: object) -> str:
    """``text`` safe inside a pipe table."""
    return str(text).replace("|", "\\|")


def table_lines(header: list[str], body: Iterable[list[str]], text_columns: int = 1) -> list[str]:
    """A pipe table: the header, its alignment row (the first ``text_columns`` left, the rest
    right-aligned numbers) and one line per body row."""
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(escape(c) for c in cells) + " |"

    align = [" --- "] * text_columns + [" ---: "] * (len(header) - text_columns)
    return [row(header), "|" + "|".join(align) + "|", *(row(cells) for cells in body)]


# --------------------------------------------------------------------------- summary.md


def _severity_text(entry: dict) -> str:
    value, unit = entry.get("severity_value"), entry.get("severity_unit")
    if value is None:
        return entry["severity_name"]
    return f"{entry['severity_name']} ({value:g}{' ' + unit if unit else ''})"


def _settings_lines(table: Table, all_methods: set[str]) -> list[str]:
    lines = []
    for entry in table.settings:
        settings = ", ".join(f"{k}={json.dumps(v)}" for k, v in entry["settings"].items()) or "no settings recorded"
        who = ""
        if set(entry["methods"]) != all_methods:
            who = f" [methods: {', '.join(entry['methods'])}]"
        if entry["variants"] != [REFERENCE_VARIANT]:
            who += f" [variants: {', '.join(entry['variants'])}]"
        lines.append(f"- `{entry['corruption']}` {_severity_text(entry)}: {settings}{who}")
    return lines


def summary_markdown(tables: dict[str, Table], run_info: dict | None = None) -> str:
    """summary.md: run header, deviations from the paper protocol, every shown table, the
    settings behind each corruption level (which attack produced the adversarial numbers) and
    a provenance digest."""
    info = run_info or {}
    out: list[str] = [f"# restbench run `{info.get('name', 'unnamed')}`", ""]
    dataset = info.get("dataset") or {}
    config = info.get("config") or {}
    profile = config.get("profile")
    if isinstance(profile, dict):
        profile = profile.get("name") or profile.get("id")
    facts = [
        ("Status", info.get("status")),
        ("Created", info.get("created")),
        ("Finished", info.get("finished")),
        ("Dataset", dataset.get("name") or dataset.get("id")),
        ("Data fingerprint", dataset.get("fingerprint")),
        ("Profile", profile),
        ("Seeds", ", ".join(str(s) for s in info.get("seeds", [])) or None),
        ("Methods", ", ".join(info.get("methods", [])) or None),
    ]
    out += [f"- {k}: {v}" for k, v in facts if v not in (None, "")]
    out.append("")

    out.append("## Deviations from the paper protocol")
    out.append("")
    deviations = info.get("deviations") or []
    out += [f"- {escape(d)}" for d in deviations] if deviations else ["- none recorded"]
    out.append("")
    if info.get("notes"):
        out += ["## Notes", ""] + [f"- {escape(n)}" for n in info["notes"]] + [""]
    warning = health_lines(tables)
    if warning:
        out += ["## Training health", "", f"**{HEALTH_MARKER} Warning:** {escape(warning[0])}", ""]
        out += [f"- {escape(line)}" for line in warning[1:]] + [""]
    busy = busy_lines(tables)
    if busy:
        out += ["## Latency measured on a busy machine", "",
                f"**Warning:** {len(busy)} latency figure(s) were timed while the machine was busy; they measure "
                "its load as much as the model. Re-run on a quiet machine (`restbench run --resume` re-times "
                "nothing that is recorded; a new run directory does).", ""]
        out += [f"- {escape(line)}" for line in busy] + [""]

    shown = [t for t in tables.values() if t.show]
    if not shown:
        out += ["No results recorded yet.", ""]
    all_methods = {r.method for t in tables.values() for r in t.rows}
    for table in shown:
        header, body = grid(table)
        out += [f"## {table.title}", "", table.description, ""]
        out += table_lines(header, body)
        out.append("")
        if table.notes:
            out += [f"- {escape(note)}" for note in table.notes] + [""]
        if any(table.flagged(row) for row in table.rows):
            out += [HEALTH_NOTE, ""]
        if table.busy:
            out += [BUSY_NOTE, ""]

    setting_lines = [ln for t in shown for ln in _settings_lines(t, all_methods)]
    if setting_lines:
        out += [
            "## Corruption and attack settings",
            "",
            "What each corruption level was run with; the adversarial columns come from the attacks listed here.",
            "",
        ]
        out += list(dict.fromkeys(setting_lines)) + [""]

    prov = info.get("provenance") or {}
    if prov:
        packages = prov.get("packages") or {}
        commit = prov.get("git_commit")
        if commit and prov.get("git_dirty"):
            commit += " (uncommitted changes)"
        facts = [
            ("restbench", prov.get("restbench_version")),
            ("Commit", commit),
            ("Python", prov.get("python_version")),
            ("Packages", ", ".join(f"{k} {v}" for k, v in packages.items()) or None),
            ("Platform", (prov.get("platform") or {}).get("platform")),
            ("CPU", prov.get("cpu_model")),
            ("Cores", prov.get("cpu_count_usable") or prov.get("cpu_count")),
            ("Torch threads", prov.get("torch_threads")),
            ("Accelerator", prov.get("accelerator")),
        ]
        out += ["## Provenance", ""] + [f"- {k}: {v}" for k, v in facts if v not in (None, "")]
        plugins = prov.get("plugins") or []
        if plugins:
            listed = ", ".join(f"{p.get('name')} {p.get('version') or ''} ({p.get('status')})".replace("  ", " ")
                               for p in plugins)
            out.append(f"- Plugins: {listed}")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- leaderboard.md


def _result_tables(data: dict, prefix: str = "") -> list[str]:
    """The frontier and the paper's claims, each a table with its lines under it."""
    out = []
    for table in (stored_frontier_table(data), stored_claims_table(data)):
        if table is not None:
            header, body = grid(table)
            out += [f"## {prefix}{table.title}", "", table.description, "", *table_lines(header, body), ""]
            out += [f"- {escape(note)}" for note in table.notes] + [""]
    return out


def _board_lines(data: dict, prefix: str = "") -> list[str]:
    """A board's tables (Table 4 with its frontier and claims, other suites, per-stage F1, Table 5),
    with the paper's reference rows; ``prefix`` heads each (an evaluation set's)."""
    out = []
    for table_id, title, cols in table_groups(data):
        body = [[entry_name(entry), entry["compressor"] or "–"] + [cell_text(data, entry, c) for c in cols]
                for entry in data["entries"]]
        body += [[f"*{ref['label']}*", "(reference)"]
                 + [f"*{ref['cells'][c.key]:,g}*" if c.key in ref["cells"] else "" for c in cols]
                 for ref in data["reference"] if any(c.key in ref["cells"] for c in cols)]
        out += [f"## {prefix}{title}", "", *table_lines(["Method", "Compressor"] + [c.label for c in cols], body, 2), ""]
        if table_id == "table4":
            out += _result_tables(data, prefix)
    return out


def leaderboard_markdown(data: dict) -> str:
    """leaderboard.md: facts, Table 4 and Table 5 shapes with reference rows, other suites, the
    paper's values, the runs and their provenance, the plots."""
    proto = data["protocol"]
    seeds = sorted({s for e in data["entries"] for s in e["seeds"]})
    out = [f"# Leaderboard `{data['name']}`", ""]
    out += [f"- Dataset: {proto['dataset']} (fingerprint `{proto['fingerprint']}`), model {proto['model']}, "
            f"profile {proto['profile']}",
            f"- Seeds: {', '.join(map(str, seeds))}; runs: {', '.join(r['name'] for r in data['runs'])}",
            f"- Built by restbench {data['restbench_version']}; entries are "
            + ", ".join(sorted({e['label'] for e in data['entries']})),
            f"- Cells: mean ± sample std over seeds. **Bold**: the best compressed entry per column; "
            f"≈: a compressed entry not significantly different from it ({data['statistics']['test']}, "
            f"alpha {data['statistics']['alpha']:g}; per-stage F1 and efficiency: equal means).",
            f"- Robust: {data['statistics']['robust_macro_f1']}."]
    power = power_note(data)
    if power:
        out.append(f"- {power}")
    flagged = [e for e in data["entries"] if e.get("flags")]
    if flagged:
        out.append(f"- {ENTRY_HEALTH_NOTE}")
    out.append("")
    if data["baseline"]["method"]:
        out += [f"- Speedup baseline: `{data['baseline']['method']}` (from {data['baseline']['source']}).", ""]
    if flagged:
        out += ["## Training health", ""]
        out += [f"- {entry_name(e)}: {flag}" for e in flagged for flag in e["flags"]] + [""]
    warned = [e for e in data["entries"] if e.get("warnings")]
    if warned:
        out += ["## Export checks", "", EXPORT_NOTE, ""]
        out += [f"- {entry_name(e)}: {line}" for e in warned for line in e["warnings"]] + [""]
    ref_rows = data["reference"]
    out += _board_lines(data)
    for where, view in eval_set_views(data):
        out += [f"## {where}", "", SET_NOTE, "", *_board_lines(view, f"{where}: ")]
    ref_cols = data.get("reference_columns") or {}
    if ref_rows:
        body = [[ref["label"]] + [f"{ref['cells'][k]:g}" if k in ref["cells"] else "–" for k in ref_cols]
                for ref in ref_rows]
        out += ["## Paper reference values", "", f"Source: {ref_rows[0]['source']}.", "",
                *table_lines(["Row"] + list(ref_cols.values()), body), ""]
    runs = []
    for run in data["runs"]:
        commit = (run["git_commit"] or "–")[:10] + (" (dirty)" if run["git_dirty"] else "")
        runs.append([run["name"], ", ".join(map(str, run["seeds"])), ", ".join(run["methods"]),
                     run["restbench_version"], commit, run["hardware"].get("cpu_model") or "–", run["label"]])
    out += ["## Runs", "",
            *table_lines(["Run", "Seeds", "Methods", "restbench", "Commit", "CPU", "Label"], runs, text_columns=7), ""]
    deviations = list(dict.fromkeys(d for run in data["runs"] for d in run.get("deviations", [])))
    if deviations:
        out += ["## Deviations from the paper protocol", ""] + [f"- {d}" for d in deviations] + [""]
    if data.get("plots"):
        out += ["## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in data["plots"] if p.endswith(".png")] + [""]
    out += ["Details (per-seed values, CIs, p-values, hashes): `leaderboard.json`; all numbers: `leaderboard.csv`.", ""]
    return "\n".join(out)


__all__ = ["escape", "leaderboard_markdown", "summary_markdown", "table_lines"]
