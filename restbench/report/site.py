"""The leaderboard's static page: ``index.html``, one self-contained file.

Everything it shows is inside the file: inline CSS and JavaScript, the PNG figures as ``data:``
URIs (the SVG versions are linked by relative path, next to the page), no fonts, scripts or
images fetched from anywhere, so it works opened from disk or hosted on any static server.

Tables sort when a header is clicked (again to reverse). Every cell carries its number in
``data-sort`` (the mean, full precision; text columns their text), so sorting never parses
formatted text; empty cells sort last in both directions. The paper's reference rows sit in a
separate ``<tbody>`` and never move. The ordering itself is one pure function, ``rbOrder(keys,
descending)`` between the ``rb-sort:begin`` / ``rb-sort:end`` markers, which the tests run with
node where it is installed.
"""

from __future__ import annotations

import base64
import html
from dataclasses import replace
from pathlib import Path

from restbench.report.caveats import ENTRY_HEALTH_NOTE, EXPORT_NOTE, HEALTH_MARKER, entry_name
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
from restbench.report.tables import Column, Table

SORT_JS = r"""
/* rb-sort:begin */
function rbOrder(keys, descending) {
  // Indices of keys in sorted order: numbers numerically, other text alphabetically,
  // empty keys last whichever the direction; equal keys keep their order.
  function num(k) { var n = Number(k); return (k !== "" && isFinite(n)) ? n : null; }
  var idx = keys.map(function (_, i) { return i; });
  idx.sort(function (a, b) {
    var x = keys[a], y = keys[b];
    if (x === "" || y === "") { return (x === "") - (y === "") || a - b; }
    var nx = num(x), ny = num(y);
    var c = (nx !== null && ny !== null) ? nx - ny : String(x).localeCompare(String(y));
    if (c === 0) { return a - b; }
    return descending ? -c : c;
  });
  return idx;
}
/* rb-sort:end */
function rbSortTable(th) {
  var table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
  var descending = th.getAttribute("aria-sort") ? th.getAttribute("aria-sort") === "ascending"
                                                : th.dataset.better === "higher";
  var rows = Array.prototype.slice.call(body.rows);
  var keys = rows.map(function (r) { var c = r.cells[col]; return c ? (c.dataset.sort || "") : ""; });
  rbOrder(keys, descending).forEach(function (i) { body.appendChild(rows[i]); });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
  th.setAttribute("aria-sort", descending ? "descending" : "ascending");
}
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { rbSortTable(th); });
  });
});
"""

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1400px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th:first-child, td:first-child, td.text { text-align: left; }
table.sortable th { cursor: pointer; background: #f3f3f3; user-select: none; }
th[aria-sort=ascending]::after { content: " \\25B2"; } th[aria-sort=descending]::after { content: " \\25BC"; }
tbody.reference td { font-style: italic; color: #555; background: #fafafa; }
td.best { font-weight: bold; } td.tied { color: #345; }
.wrap { overflow-x: auto; } figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""


def _e(text) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _sort_value(cell: dict | None) -> str:
    return "" if cell is None else repr(float(cell["mean"]))


def _table(data: dict, table_id: str, cols: list[Column]) -> str:
    head = "".join(f'<th data-better="{_e(c.better)}" title="{_e(c.metric)}">{_e(c.label)}</th>' for c in cols)
    out = [f'<div class="wrap"><table class="sortable" id="{_e(table_id)}"><thead><tr>'
           f'<th data-better="lower">Method</th><th data-better="lower">Compressor</th>{head}</tr></thead><tbody>']
    for entry in data["entries"]:
        flags = entry.get("flags") or []
        name = (f'{_e(entry["key"])} <span style="color:#b00" title="{_e("; ".join(flags))}">{HEALTH_MARKER}</span>'
                if flags else _e(entry["key"]))
        tds = [f'<td class="text" data-sort="{_e(entry["key"])}">{name}</td>',
               f'<td class="text" data-sort="{_e(entry["compressor"] or "")}">{_e(entry["compressor"] or "–")}</td>']
        for col in cols:
            cell = entry["cells"].get(col.key)
            text = cell_text(data, entry, col, markup="html")
            klass = ' class="tied"' if text.endswith(" ≈") else (' class="best"' if text.startswith("<b>") else "")
            shown = _e(text.removeprefix("<b>").removesuffix("</b>"))
            tip = ""
            if cell is not None:
                bits = [f"seeds {', '.join(map(str, cell['seeds']))}", f"runs {', '.join(cell['runs'])}"]
                if cell["ci95"]:
                    bits.append(f"95% CI [{cell['ci95'][0]:.4g}, {cell['ci95'][1]:.4g}] ({cell['ci_method']})")
                if cell["p_value_vs_best"] is not None:
                    bits.append(f"p vs best {cell['p_value_vs_best']:.3g} over {cell['n_pairs']} pairs")
                tip = f' title="{_e("; ".join(bits))}"'
            tds.append(f'<td{klass} data-sort="{_sort_value(cell)}"{tip}>{shown}</td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</tbody>")
    refs = [r for r in data["reference"] if any(c.key in r["cells"] for c in cols)]
    if refs:
        out.append('<tbody class="reference">')
        for ref in refs:
            tds = [f"<td>{_e(ref['label'])}</td><td>(reference)</td>"]
            tds += [f"<td>{ref['cells'][c.key]:g}</td>" if c.key in ref["cells"] else "<td></td>" for c in cols]
            out.append("<tr>" + "".join(tds) + "</tr>")
        out.append("</tbody>")
    out.append("</table></div>")
    return "".join(out)


def _result_table(table: Table) -> str:
    """A table of the one results model (the frontier, the claims), its lines under it; not sortable."""
    header, body = grid(table)
    out = [f"<h2>{_e(table.title)}</h2><p>{_e(table.description)}</p>",
           f'<div class="wrap"><table id="{_e(table.name)}"><thead><tr>'
           + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr></thead><tbody>"]
    for line in body:
        out.append("<tr>" + f'<td class="text">{_e(line[0])}</td>' + "".join(f"<td>{_e(c)}</td>" for c in line[1:])
                   + "</tr>")
    out.append("</tbody></table></div>")
    if table.notes:
        out.append("<ul>" + "".join(f"<li>{_e(note)}</li>" for note in table.notes) + "</ul>")
    return "".join(out)


def _runs_table(data: dict) -> str:
    heads = ["Run", "Seeds", "Methods", "Profile", "restbench", "Commit", "CPU", "Accelerator", "Python",
             "Data fingerprint", "Label", "Files hashed"]
    out = ['<div class="wrap"><table class="sortable" id="runs"><thead><tr>'
           + "".join(f'<th data-better="lower">{h}</th>' for h in heads) + "</tr></thead><tbody>"]
    for run in data["runs"]:
        commit = (run["git_commit"] or "–")[:10] + (" (dirty)" if run["git_dirty"] else "")
        values = [run["name"], ", ".join(map(str, run["seeds"])), ", ".join(run["methods"]), run["profile"],
                  run["restbench_version"], commit, run["hardware"].get("cpu_model"), run["hardware"].get("accelerator"),
                  run["runtime"].get("python_version"), run["dataset"]["fingerprint"], run["label"], len(run["files"])]
        out.append("<tr>" + "".join(f'<td class="text" data-sort="{_e(v)}">{_e(v if v is not None else "–")}</td>'
                                    for v in values) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _figure(out_dir: Path, png: str) -> str:
    path = out_dir / png
    if not path.is_file():
        return ""
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    svg = png[: -len(".png")] + ".svg"
    link = f' (<a href="{_e(svg)}">SVG</a>)' if (out_dir / svg).is_file() else ""
    return (f'<figure><img alt="{_e(Path(png).stem)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{_e(Path(png).stem)}{link}</figcaption></figure>")


def _board_parts(data: dict, prefix: str = "") -> list[str]:
    """A board's tables (the leaderboard's, or an evaluation set's under ``prefix``)."""
    parts = []
    for table_id, title, cols in table_groups(data):
        dom_id = f"{data['eval_set']}-{table_id}" if data.get("eval_set") else table_id
        parts += [f"<h2>{_e(prefix + title)}</h2>", _table(data, dom_id, cols)]
        if table_id == "table4":
            parts += [_result_table(replace(t, name=f"{data['eval_set']}-{t.name}", title=prefix + t.title)
                                    if data.get("eval_set") else t)
                      for t in (stored_frontier_table(data), stored_claims_table(data)) if t]
    return parts


def render_html(data: dict, out_dir: str | Path) -> str:
    """index.html for the leaderboard ``data`` whose plots lie under ``out_dir``."""
    out_dir = Path(out_dir)
    proto, stats = data["protocol"], data["statistics"]
    seeds = sorted({s for e in data["entries"] for s in e["seeds"]})
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>restbench leaderboard {_e(data['name'])}</title><style>{CSS}</style></head><body>",
        f"<h1>restbench leaderboard <code>{_e(data['name'])}</code></h1>",
        "<ul>",
        f"<li>Dataset {_e(proto['dataset'])} (fingerprint <code>{_e(proto['fingerprint'])}</code>), model "
        f"{_e(proto['model'])}, profile {_e(proto['profile'])}; seeds {_e(', '.join(map(str, seeds)))}</li>",
        f"<li>Cells: mean ± sample std over seeds; hover a cell for its seeds, runs, 95 % CI and p-value. "
        f"<b>Bold</b>: best compressed entry per column; ≈: a compressed entry not significantly different "
        f"from it ({_e(stats['test'])}, alpha {stats['alpha']:g}).</li>",
        f"<li>Robust: {_e(stats['robust_macro_f1'])}.</li>",
        f"<li>{_e(power_note(data))}</li>" if power_note(data) else "",
        f"<li>Speedup baseline: {_e(data['baseline']['method'] or 'none')} ({_e(data['baseline']['source'])}).</li>",
        f"<li>Built by restbench {_e(data['restbench_version'])}; click a column header to sort.</li>",
        "</ul>",
    ]
    flagged = [e for e in data["entries"] if e.get("flags")]
    if flagged:
        parts.append(f'<h2>Training health</h2><p style="color:#b00">{_e(ENTRY_HEALTH_NOTE)}</p><ul>'
                     + "".join(f"<li>{_e(entry_name(e))}: {_e(flag)}</li>" for e in flagged for flag in e["flags"])
                     + "</ul>")
    warned = [e for e in data["entries"] if e.get("warnings")]
    if warned:
        parts.append(f"<h2>Export checks</h2><p>{_e(EXPORT_NOTE)}</p><ul>"
                     + "".join(f"<li>{_e(entry_name(e))}: {_e(line)}</li>" for e in warned for line in e["warnings"])
                     + "</ul>")
    parts += _board_parts(data)
    for where, view in eval_set_views(data):
        parts += [f"<h2>{_e(where)}</h2><p>{_e(SET_NOTE)}</p>", *_board_parts(view, f"{where}: ")]
    ref_cols = data.get("reference_columns") or {}
    if data["reference"]:
        parts.append(f"<h2>Paper reference values</h2><p>{_e(data['reference'][0]['source'])}</p>")
        parts.append('<div class="wrap"><table><thead><tr><th>Row</th>'
                     + "".join(f"<th>{_e(v)}</th>" for v in ref_cols.values()) + "</tr></thead><tbody>")
        for ref in data["reference"]:
            parts.append(f"<tr><td>{_e(ref['label'])}</td>"
                         + "".join(f"<td>{ref['cells'][k]:g}</td>" if k in ref["cells"] else "<td>–</td>"
                                   for k in ref_cols) + "</tr>")
        parts.append("</tbody></table></div>")
    parts += ["<h2>Runs and provenance</h2>", _runs_table(data)]
    deviations = list(dict.fromkeys(d for run in data["runs"] for d in run.get("deviations", [])))
    if deviations:
        parts.append("<h2>Deviations from the paper protocol</h2><ul>"
                     + "".join(f"<li>{_e(d)}</li>" for d in deviations) + "</ul>")
    figures = [_figure(out_dir, p) for p in data.get("plots", []) if p.endswith(".png")]
    if any(figures):
        parts += ["<h2>Plots</h2>"] + figures
    parts.append(f"<script>{SORT_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["SORT_JS", "render_html"]
