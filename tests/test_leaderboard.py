"""Leaderboards built from two real smoke runs: schema, hand-computed numbers, ties, refusal to
mix protocols, plots, the static page (also in headless Chromium), validation of tampered copies, and publishing."""

import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest

from restbench.api import PluginError
from restbench.cli import main
from restbench.evaluation.statistics import paired_permutation_p
from restbench.publish import publish, stale_lines, validate_leaderboard
from restbench.report import leaderboard as lb
from restbench.report.caveats import EXPORT_NOTE, entry_name
from restbench.report.leaderboard_schema import schema_problems
from restbench.report.leaderboard_validation import validate
from restbench.report.leaderboard_view import table_groups
from restbench.report.site import SORT_JS
from restbench.benchmark import run
from restbench.run.plan import RunRequest

from devtools import Chromium, decode_png, find_chromium

METHODS = ["sors", "liu"]
COMMITTED = sorted(p for p in (Path(__file__).resolve().parents[1] / "leaderboards").iterdir()
                   if (p / lb.LEADERBOARD_JSON).exists())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two smoke runs of the same protocol, seeds 0 and 1 (about 10 s together)."""
    base = tmp_path_factory.mktemp("runs")
    made = []
    for seed in (0, 1):
        request = RunRequest(profile="smoke", methods=METHODS, corruptions=["gaussian"], runners=["torch-cpu"],
                             exporters=[], seeds=[seed], cache_dir=base / "cache", run_dir=base / f"run-s{seed}",
                             quiet=True)
        made.append(run(request).run_dir.path)
    return made


@pytest.fixture(scope="module")
def built(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("boards") / "smoke-board"
    data = lb.build(runs, out)
    return out, data


def records(path):
    return [json.loads(line) for line in (Path(path) / "results.jsonl").read_text().splitlines() if line.strip()]


def entry(data, method):
    return next(e for e in data["entries"] if e["method"] == method)


def test_build_writes_a_schema_valid_leaderboard(built):
    out, data = built
    assert schema_problems(json.loads((out / lb.LEADERBOARD_JSON).read_text())) == []
    assert [e["method"] for e in data["entries"]] == METHODS
    assert [r["name"] for r in data["runs"]] == ["run-s0", "run-s1"]
    run = data["runs"][0]
    assert run["dataset"]["fingerprint"] == data["protocol"]["fingerprint"]
    assert run["restbench_version"] and run["config_hash"] and run["hardware"]["cpu_count"]
    assert any(path.startswith("artifacts/models/") for path in run["files"])  # checkpoints are hashed
    assert not any(path.startswith("artifacts/models/") for path in run["published_files"])  # not copied
    assert (out / "runs" / "run-s0" / "artifacts" / "predictions" / "liu-seed0.npz").is_file()
    assert data["baseline"] == {"method": "sors", "source": "recipe"}  # plain training, read from the recipes
    for name in (lb.LEADERBOARD_CSV, lb.LEADERBOARD_MD, lb.INDEX_HTML):
        assert (out / name).stat().st_size > 0
    md = (out / lb.LEADERBOARD_MD).read_text()
    assert "## Robustness (Table 4 shape): macro-F1" in md and "## Efficiency (Table 5 shape)" in md
    assert "## Per-stage F1 (clean)\n\n| Method | Compressor | W | N1 | N2 | N3 | REM |" in md
    assert "*paper: Sors et al. (Sleep-EDF)*" in md  # the paper's values as labelled reference rows
    assert "**" in md  # a best compressed entry in bold


def test_numbers_equal_a_hand_computation_from_the_records(runs, built):
    _, data = built
    recs = records(runs[0]) + records(runs[1])

    def rob(method, seed, corruption, severity):
        return next(r for r in recs if r["record_type"] == "robustness" and r["variant"] == "torch"
                    and r["method"] == method and r["seed"] == seed and r["corruption"] == corruption
                    and r["severity"] == severity)

    cell = entry(data, "liu")["cells"]["gaussian/high"]
    values = [rob("liu", s, "gaussian", 3)["macro_f1"] for s in (0, 1)]
    assert cell["values"] == values and cell["seeds"] == [0, 1] and cell["runs"] == ["run-s0", "run-s1"]
    assert cell["mean"] == pytest.approx((values[0] + values[1]) / 2, abs=1e-15)
    assert cell["std"] == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2), abs=1e-15)
    half = 12.706204736174707 * cell["std"] / math.sqrt(2)  # t(0.975, 1 dof)
    assert cell["ci95"] == pytest.approx([cell["mean"] - half, cell["mean"] + half])

    robust = entry(data, "sors")["cells"]["robust"]
    per_seed = [statistics.fmean(rob("sors", s, "gaussian", level)["macro_f1"] for level in (1, 2, 3)) for s in (0, 1)]
    assert robust["values"] == pytest.approx(per_seed, abs=1e-15)

    eff = {(r["method"], r["seed"]): r for r in recs if r["record_type"] == "efficiency"}
    assert entry(data, "liu")["cells"]["size_kb"]["mean"] == pytest.approx(
        (eff[("liu", 0)]["size_kb"] + eff[("liu", 1)]["size_kb"]) / 2)
    lat = {(r["method"], r["seed"]): r["latency_s_per_night_median"] for r in recs if r["record_type"] == "latency"}
    speedup = entry(data, "liu")["cells"]["speedup:torch-cpu:torch"]
    assert speedup["values"] == pytest.approx([lat[("sors", s)] / lat[("liu", s)] for s in (0, 1)])
    assert entry(data, "sors")["cells"]["speedup:torch-cpu:torch"]["mean"] == 1.0
    # params and FLOP ratios beside the speedups: the baseline's numbers over the entry's, per seed
    for ratio, fld in (("ratio:params", "params"), ("ratio:mflops", "mflops")):
        assert entry(data, "liu")["cells"][ratio]["values"] == pytest.approx(
            [eff[("sors", s)][fld] / eff[("liu", s)][fld] for s in (0, 1)])
        assert entry(data, "sors")["cells"][ratio]["mean"] == 1.0
    keys = [c["key"] for c in data["columns"]]
    assert keys.index("ratio:mflops") + 1 == keys.index("speedup:torch-cpu:torch")

    # per-subject macro-F1 of every robustness cell: the records' values, aligned with the cell's seeds
    clean = entry(data, "liu")["cells"]["clean"]
    assert clean["per_subject"] == {subject: [rob("liu", s, "clean", 0)["per_subject_macro_f1"][subject] for s in (0, 1)]
                                    for subject in rob("liu", 0, "clean", 0)["per_subject_macro_f1"]}
    # the frontier and the claims are stored (no REST method here: every claim is not testable)
    assert [a["y"] for a in data["frontier"]["axes"]] == ["robust"]
    assert {c["verdict"] for c in data["claims"]} == {"not testable"}

    # per-stage clean F1, read from the clean records' per_class_f1, in stage order
    stages = [c for c in data["columns"] if c["table"] == "stages"]
    assert [c["label"] for c in stages] == ["W", "N1", "N2", "N3", "REM"]
    for method in METHODS:
        n1 = entry(data, method)["cells"]["stage:N1"]
        assert n1["values"] == [rob(method, s, "clean", 0)["per_class_f1"]["N1"] for s in (0, 1)]
        assert n1["p_value_vs_best"] is None  # no per-subject pairs: ties are equal means


def test_csv_holds_every_cell_at_full_precision(built):
    out, data = built
    import pandas as pd

    frame = pd.read_csv(out / lb.LEADERBOARD_CSV)
    cells = frame[~frame["table"].isin(["frontier", "claims"])]
    assert len(cells) == sum(len(e["cells"]) for e in data["entries"])
    # then one row per entry and frontier axis, and one per paper claim
    placed = sum(len(data["entries"]) - len(a["not_placed"]) for a in data["frontier"]["axes"])
    assert (frame["table"] == "frontier").sum() == placed and (frame["table"] == "claims").sum() == len(data["claims"])
    row = frame[(frame["method"] == "liu") & (frame["column"] == "gaussian/high")].iloc[0]
    assert float(row["mean"]) == entry(data, "liu")["cells"]["gaussian/high"]["mean"]


def _with_twin(src: Path, dst: Path, method: str, twin: str) -> Path:
    """A copy of run ``src`` where ``twin`` is an exact duplicate of ``method``."""
    shutil.copytree(src, dst)
    info = json.loads((dst / "run.json").read_text())
    info["methods"].append(twin)
    info["method_recipes"][twin] = info["method_recipes"][method]
    info["name"] = dst.name
    (dst / "run.json").write_text(json.dumps(info))
    recs = records(src)
    recs += [{**r, "method": twin} for r in recs if r["method"] == method]
    (dst / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return dst


def test_identical_methods_are_marked_tied(runs, tmp_path):
    twin_runs = [_with_twin(r, tmp_path / f"twin-{i}", "liu", "liu-twin") for i, r in enumerate(runs)]
    data = lb.build(twin_runs, tmp_path / "board", plots=False)
    liu, twin = entry(data, "liu"), entry(data, "liu-twin")
    robustness = [c["key"] for c in data["columns"] if c["table"] == "table4"]
    assert robustness
    for key in robustness:
        a, b = liu["cells"][key], twin["cells"][key]
        assert a["mean"] == b["mean"]
        best, other = (a, b) if a["best"] else (b, a)
        assert best["best"] and not other["best"]
        assert other["tied_with_best"] is True and other["p_value_vs_best"] == 1.0 and other["n_pairs"] == 2
        assert other["rank"] == best["rank"]  # tied, not ranked apart


def test_paired_permutation_test():
    assert paired_permutation_p([]) is None
    assert paired_permutation_p([0.0, 0.0, 0.0]) == 1.0
    assert paired_permutation_p([1.0, 2.0, 3.0]) == 0.25  # only all-plus and all-minus reach |mean| = 2
    assert paired_permutation_p([0.1] * 8) == 2 / 256
    assert paired_permutation_p([0.1, -0.1]) == 1.0
    assert 0 < paired_permutation_p([0.01] * 30) < 0.001  # Monte Carlo branch


def _altered_copy(src: Path, dst: Path, change) -> Path:
    shutil.copytree(src, dst)
    info = json.loads((dst / "run.json").read_text())
    change(info)
    (dst / "run.json").write_text(json.dumps(info))
    return dst


def test_mixing_fingerprints_or_protocols_is_refused(runs, tmp_path, capsys):
    other = _altered_copy(runs[1], tmp_path / "other-data", lambda i: i["dataset"].update(fingerprint="0123456789abcdef"))
    with pytest.raises(PluginError, match="different dataset fingerprints"):
        lb.build([runs[0], other], tmp_path / "mixed")
    assert not (tmp_path / "mixed" / lb.LEADERBOARD_JSON).exists()
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", "build", str(runs[0]), str(other), "--out", str(tmp_path / "mixed")])
    assert exc.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "different dataset fingerprints" in err

    longer = _altered_copy(runs[1], tmp_path / "longer", lambda i: i["config"].update(epochs=5))
    with pytest.raises(PluginError, match="knob 'epochs'"):
        lb.build([runs[0], longer], tmp_path / "mixed")


def test_an_exported_graph_that_failed_its_check_is_named(runs, tmp_path):
    """An int8 graph that disagrees with its PyTorch model keeps its size and latency on the board,
    but the entry says so (markdown, page, json), and validate recomputes the line."""
    src = tmp_path / "run"
    shutil.copytree(runs[0], src)
    lines = (src / "results.jsonl").read_text().splitlines()
    for i, line in enumerate(lines):
        record = json.loads(line)
        if record["record_type"] == "efficiency" and record["method"] == "liu":
            record["export_check"] = {
                "tflite-fp32": {"passed": True, "top1_agreement": 1.0, "max_abs_diff": 1e-6, "n_windows": 32,
                                "thresholds": {"min_top1_agreement": 0.99}},
                "tflite-int8": {"passed": False, "top1_agreement": 0.875, "max_abs_diff": 0.581, "n_windows": 32,
                                "thresholds": {"min_top1_agreement": 0.9}}}
            lines[i] = json.dumps(record)
    (src / "results.jsonl").write_text("\n".join(lines) + "\n")
    board = tmp_path / "board"
    data = lb.build([src], board, plots=False)
    want = "export check failed: seed 0 tflite-int8: max abs diff 0.581, top-1 agreement 0.875 (needs 0.9) on 32 windows"
    assert entry(data, "liu")["warnings"] == [want] and "warnings" not in entry(data, "sors")
    name = entry_name(entry(data, "liu"))  # with the health marker when the smoke model collapsed
    assert f"## Export checks\n\n{EXPORT_NOTE}\n\n- {name}: {want}" in (board / lb.LEADERBOARD_MD).read_text()
    assert "<h2>Export checks</h2>" in (board / lb.INDEX_HTML).read_text()
    assert validate(board).ok
    stored = json.loads((board / lb.LEADERBOARD_JSON).read_text())
    del next(e for e in stored["entries"] if e["method"] == "liu")["warnings"]
    (board / lb.LEADERBOARD_JSON).write_text(json.dumps(stored))
    assert any("warnings: missing" in p for p in validate(board).problems)


def test_plots_exist_as_png_and_svg(built):
    out, data = built
    for name in ("f1-vs-severity", "confusion", "hypnograms", "pareto", "frontier"):
        png, svg = out / "plots" / f"{name}.png", out / "plots" / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000
        assert "<svg" in svg.read_text()[:2000] and svg.stat().st_size > 2000
        assert f"plots/{name}.png" in data["plots"] and f"plots/{name}.svg" in data["plots"]


class _Cells(HTMLParser):
    """data-sort values per table id, row by row."""

    def __init__(self):
        super().__init__()
        self.tables, self.current, self.row = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.current = self.tables.setdefault(attrs.get("id"), [])
        elif tag == "tr" and self.current is not None:
            self.row = []
            self.current.append(self.row)
        elif tag == "td" and self.row is not None:
            self.row.append(attrs.get("data-sort"))


def test_index_html_is_self_contained_and_sortable_by_numbers(built):
    out, data = built
    page = (out / lb.INDEX_HTML).read_text()
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script src" not in page
    assert page.count("data:image/png;base64,") == 5
    parser = _Cells()
    parser.feed(page)
    body = [row for row in parser.tables["table4"] if row]
    columns = [c["key"] for c in data["columns"] if c["table"] == "table4"]
    for row, e in zip(body, data["entries"]):
        assert row[0] == e["key"]
        assert [float(v) for v in row[2:]] == [e["cells"][k]["mean"] for k in columns]  # exact, unformatted


def test_sort_function_orders_numbers_text_and_blanks():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed; the sort keys are still checked by the test above")
    source = SORT_JS.split("/* rb-sort:begin */")[1].split("/* rb-sort:end */")[0]
    script = source + """
    var keys = ["0.5", "", "10", "2", "0.5", "-1"];
    console.log(JSON.stringify([rbOrder(keys, false), rbOrder(keys, true), rbOrder(["b", "a", ""], false)]));
    """
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30, check=True)
    ascending, descending, text = json.loads(done.stdout)
    assert ascending == [5, 0, 4, 3, 2, 1]  # numeric (not text) order, stable, blank last
    assert descending == [2, 3, 0, 4, 5, 1]  # blank still last
    assert text == [1, 0, 2]

    # the click handler, on a minimal stand-in for the DOM it touches
    dom = """
    var document = {addEventListener: function () {}};
    function makeRow(id, keys) { return {id: id, cells: keys.map(function (k) { return {dataset: {sort: k}}; })}; }
    var body = {rows: [makeRow("r0", ["a", "0.5"]), makeRow("r1", ["b", ""]), makeRow("r2", ["c", "2"])],
                appendChild: function (r) { this.rows.splice(this.rows.indexOf(r), 1); this.rows.push(r); }};
    var table;
    function makeTh(i, better) {
      return {cellIndex: i, dataset: {better: better}, a: {}, closest: function () { return table; },
              getAttribute: function (k) { return k in this.a ? this.a[k] : null; },
              setAttribute: function (k, v) { this.a[k] = v; }, removeAttribute: function (k) { delete this.a[k]; }};
    }
    var ths = [makeTh(0, "lower"), makeTh(1, "higher")];
    table = {tBodies: [body], tHead: {rows: [{cells: ths}]}};
    function ids() { return body.rows.map(function (r) { return r.id; }).join(","); }
    var seen = [];
    rbSortTable(ths[1]); seen.push(ids(), ths[1].a["aria-sort"]);
    rbSortTable(ths[1]); seen.push(ids(), ths[1].a["aria-sort"]);
    rbSortTable(ths[0]); seen.push(ids(), ths[0].a["aria-sort"], String(ths[1].a["aria-sort"]));
    console.log(JSON.stringify(seen));
    """
    done = subprocess.run([node, "-e", dom + SORT_JS], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(done.stdout) == ["r2,r0,r1", "descending",  # higher-is-better columns start best first
                                       "r0,r2,r1", "ascending",  # a second click reverses; blanks stay last
                                       "r0,r1,r2", "ascending", "undefined"]


def chromium_or_skip() -> str:
    """The Chromium executable; skip without one, except in CI (``CI`` set), where it must be there."""
    found = find_chromium()
    if found is None:
        why = ("headless Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it; "
               "or set RESTBENCH_CHROMIUM)")
        if os.environ.get("CI"):
            pytest.fail(f"{why}, and CI is set: the browser test must run there", pytrace=False)
        pytest.skip(why)
    return found


def test_browser_test_skips_locally_but_fails_in_ci(monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "find_chromium", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium is not installed"):
        chromium_or_skip()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        chromium_or_skip()


def _expected_order(keys: list[str], values: dict[str, float], descending: bool) -> list[str]:
    """What a sort click must give: by value in that direction, equal values kept in their order."""
    return sorted(keys, key=lambda k: -values[k] if descending else values[k])


def test_index_html_in_headless_chromium(built, tmp_path):
    """The page in a real browser: it renders (tables, figures), a click on a header sorts the
    rows as the numbers say and a second click reverses them, nothing is logged as an error,
    and its screenshot is not blank. Committed leaderboards' pages load without errors too."""
    out, data = built
    groups = table_groups(data)
    keys = [e["key"] for e in data["entries"]]
    with Chromium(chromium_or_skip(), tmp_path / "profile") as browser:
        page = browser.new_page(1280, 900)
        page.goto((out / lb.INDEX_HTML).as_uri())

        shown = page.evaluate("Array.from(document.querySelectorAll('table.sortable'), "
                              "t => [t.id, Array.from(t.tBodies[0].rows, r => r.cells[0].dataset.sort)])")
        assert shown == [[table_id, keys] for table_id, _, _ in groups] + [["runs", [r["name"] for r in data["runs"]]]]
        figures = page.evaluate("Array.from(document.images, i => [i.complete, i.naturalWidth, i.naturalHeight])")
        assert len(figures) == 5 and all(done and w > 100 and h > 100 for done, w, h in figures), figures

        def rows(table_id):
            return page.evaluate(f"Array.from(document.getElementById('{table_id}').tBodies[0].rows, "
                                 "r => r.cells[0].dataset.sort)")

        def reference(table_id):
            return page.evaluate(f"Array.from(document.getElementById('{table_id}').tBodies, "
                                 "b => b.innerText).slice(1)")

        # the Method column (text, ascending first)
        refs = reference("table4")
        assert refs and "paper" in refs[0]  # the paper's rows are there, in their own tbody
        page.click("#table4 thead th:nth-child(1)")
        assert rows("table4") == sorted(keys) != keys
        assert reference("table4") == refs  # reference rows never move

        # a numeric column whose entries differ: best first, then reversed
        table_id, column, index = next(
            (tid, col, i) for tid, _, cols in groups for i, col in enumerate(cols, start=2)
            if len({e["cells"][col.key]["mean"] for e in data["entries"] if col.key in e["cells"]}) == len(keys))
        values = {e["key"]: e["cells"][column.key]["mean"] for e in data["entries"]}
        before = rows(table_id)
        page.click(f"#{table_id} thead th:nth-child({index + 1})")
        after = rows(table_id)
        assert after == _expected_order(before, values, descending=column.better == "higher"), column.key
        page.click(f"#{table_id} thead th:nth-child({index + 1})")
        assert rows(table_id) == list(reversed(after))
        sorted_by = page.evaluate(f"document.querySelector('#{table_id} thead th:nth-child({index + 1})')"
                                  ".getAttribute('aria-sort')")
        assert sorted_by == ("ascending" if column.better == "higher" else "descending")

        page.evaluate("window.scrollTo(0, 0)")
        png = page.screenshot()
        (tmp_path / "index.png").write_bytes(png)
        width, height, channels, pixels = decode_png(png)
        assert (width, height) == (1280, 900)
        colours: dict[bytes, int] = {}
        for line in pixels:
            for i in range(0, len(line), channels):
                colour = line[i:i + channels]
                colours[colour] = colours.get(colour, 0) + 1
        assert len(colours) > 2, f"screenshot {tmp_path / 'index.png'} is (nearly) one colour"
        assert max(colours.values()) < 0.97 * width * height, "screenshot is almost all background"

        assert page.errors() == []
        page.evaluate("console.error('rb-probe')")  # the listener works: an error would have been seen
        assert page.errors() == ["console.error: rb-probe"]

        for board in COMMITTED:
            committed = browser.new_page(1280, 900)
            committed.goto((board / lb.INDEX_HTML).as_uri())
            stored = json.loads((board / lb.LEADERBOARD_JSON).read_text())
            ids = committed.evaluate("Array.from(document.querySelectorAll('table.sortable'), t => t.id)")
            assert ids == [table_id for table_id, _, _ in table_groups(stored)] + ["runs"], board.name
            committed.click("table.sortable thead th:nth-child(3)")
            assert committed.errors() == [], board.name


def test_validate_accepts_the_build_and_pinpoints_tampering(built, tmp_path, capsys):
    out, data = built
    report = validate_leaderboard(out)
    assert report.ok, report.problems
    assert report.stale == []  # made by this restbench with the current smoke profile
    # the report layer judges no staleness itself: it asks the check it is given, once per run
    seen = []
    assert validate(out).stale == []
    assert validate(out, stale=lambda name, info: seen.append((name, info["name"])) or [f"{name}: old"]).stale == [
        "run-s0: old", "run-s1: old"]
    assert seen == [("run-s0", "run-s0"), ("run-s1", "run-s1")]
    assert report.checked_files >= 4 and report.unchecked  # checkpoints hashed but not published

    number = shutil.copytree(out, tmp_path / "number")
    stored = json.loads((number / lb.LEADERBOARD_JSON).read_text())
    entry(stored, "liu")["cells"]["gaussian/high"]["mean"] += 0.25
    (number / lb.LEADERBOARD_JSON).write_text(json.dumps(stored))
    problems = validate(number).problems
    assert problems == [f"entries[liu].cells.gaussian/high.mean: stored "
                        f"{entry(data, 'liu')['cells']['gaussian/high']['mean'] + 0.25!r}, "
                        f"recomputed {entry(data, 'liu')['cells']['gaussian/high']['mean']!r}"]

    # a tampered per-subject value, frontier or claim verdict is named too
    claims = shutil.copytree(out, tmp_path / "claims")
    stored = json.loads((claims / lb.LEADERBOARD_JSON).read_text())
    subject = next(iter(entry(stored, "liu")["cells"]["clean"]["per_subject"]))
    entry(stored, "liu")["cells"]["clean"]["per_subject"][subject][0] = 1.0
    stored["frontier"]["axes"][0]["front"] = ["liu"]
    stored["claims"][0]["verdict"] = "reproduced"
    (claims / lb.LEADERBOARD_JSON).write_text(json.dumps(stored))
    problems = validate(claims).problems
    assert any(p.startswith(f"entries[liu].cells.clean.per_subject.{subject}[0]: stored 1.0") for p in problems)
    assert any(p.startswith("frontier.axes[0].front") for p in problems), problems
    assert any(p.startswith("claims[0].verdict: stored \"reproduced\"") for p in problems), problems

    record = shutil.copytree(out, tmp_path / "record")
    results = record / "runs" / "run-s1" / "results.jsonl"
    lines = results.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if '"corruption":"gaussian"' in line and '"method":"liu"' in line)
    lines[i] = lines[i].replace('"macro_f1":', '"macro_f1":0.0,"was":', 1)
    results.write_text("\n".join(lines) + "\n")
    problems = validate(record).problems
    assert any("runs[run-s1]: results.jsonl was changed" in p for p in problems)
    assert any(p.startswith("entries[liu].cells.gaussian/") for p in problems)

    dup = shutil.copytree(out, tmp_path / "dup")
    results = dup / "runs" / "run-s0" / "results.jsonl"
    results.write_text(results.read_text() + results.read_text().splitlines()[-1] + "\n")
    assert any(p.startswith("duplicate cell:") for p in validate(dup).problems)

    missing = shutil.copytree(out, tmp_path / "missing")
    results = missing / "runs" / "run-s0" / "results.jsonl"
    lines = [ln for ln in results.read_text().splitlines() if not ('"corruption":"gaussian"' in ln
                                                                     and '"severity":3' in ln and '"variant":"torch"' in ln
                                                                     and '"method":"sors"' in ln)]
    results.write_text("\n".join(lines) + "\n")
    problems = validate(missing).problems
    assert any("incomplete: sors seed 0 has no torch record for gaussian/high" in p for p in problems)

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", "validate", str(number)])
    assert exc.value.code == 1 and "entries[liu]" in capsys.readouterr().out
    main(["leaderboard", "validate", str(out)])  # valid: returns without exiting


def test_stale_runs_are_named():
    from restbench.plugins.registry import get_registry

    info = {"provenance": {"restbench_version": "0.0.1"}, "config": {"profile": "smoke", "epochs": 99},
            "dataset": {"name": "sleep-synth", "info": {"generator": "restbench sleep-synth 0"}}}
    lines = stale_lines("old-run", info)
    assert any("made by restbench 0.0.1" in ln for ln in lines)
    assert any("profile 'smoke' now has epochs=1, the run used 99" in ln for ln in lines)
    current = get_registry().get("datasets", "sleep-synth").generator
    assert f"old-run: dataset 'sleep-synth' is now generated by {current}, the run's data by restbench sleep-synth 0" in lines
    info["dataset"]["info"]["generator"] = current
    assert not any("generated by" in ln for ln in stale_lines("old-run", info))
    # a plugin option whose profile value has changed since, judged for installed plugins only
    info["options"] = {"rest-a": {"train_eps": 99.0}, "not-installed": {"x": 1}}
    quick = stale_lines("old-run", {**info, "config": {"profile": "quick"}})
    current_eps = {o.name: o for o in get_registry().get("methods", "rest-a").options}["train_eps"].default_for("quick")
    assert f"old-run: profile 'quick' now gives rest-a.train_eps={current_eps}, the run used 99.0" in quick
    assert not any("not-installed" in ln for ln in quick)
    # `auto` precision matches what it resolved to on the machine that ran
    assert not any("precision" in ln for ln in stale_lines("r", {**info, "config": {"profile": "quick", "precision": "bf16"}}))
    assert not any("precision" in ln for ln in stale_lines("r", {**info, "config": {"profile": "quick", "precision": "fp32"}}))
    assert any('precision="fp32", the run used "bf16"' in ln
               for ln in stale_lines("r", {**info, "config": {"profile": "smoke", "precision": "bf16"}}))


def test_baseline_option_and_unknown_baseline(runs, tmp_path):
    data = lb.build(runs, tmp_path / "vs-liu", baseline="liu", plots=False)
    assert data["baseline"] == {"method": "liu", "source": "option"}
    assert entry(data, "liu")["cells"]["speedup:torch-cpu:torch"]["mean"] == 1.0
    with pytest.raises(PluginError, match="--baseline: method 'nope'"):
        lb.build(runs, tmp_path / "vs-nope", baseline="nope", plots=False)


def test_publish_merges_and_is_idempotent(runs, tmp_path):
    board = tmp_path / "published"
    assert publish(runs[0], board, plots=False)[1] == "created"
    data, outcome = publish(runs[1], board, plots=False)
    assert outcome == "added" and [r["name"] for r in data["runs"]] == ["run-s0", "run-s1"]
    assert all(e["label"] == "self-reported" for e in data["entries"])
    before = {p.name: p.read_bytes() for p in board.iterdir() if p.is_file()}
    assert publish(runs[1], board, plots=False)[1] == "unchanged"
    assert {p.name: p.read_bytes() for p in board.iterdir() if p.is_file()} == before
    assert validate(board).ok
    # the published run's checkpoint hashes survive rebuilding from the copies
    assert any(path.startswith("artifacts/models/") for path in data["runs"][0]["files"])

    impostor = _altered_copy(runs[1], tmp_path / "impostor" / "run-s1", lambda i: i["notes"].append("changed"))
    with pytest.raises(PluginError, match="a different run named run-s1 is already published"):
        publish(impostor, board, plots=False)


def _readme_entry(name: str) -> str:
    """The bullet of leaderboards/README.md's Entries section about leaderboards/NAME/."""
    readme = (Path(__file__).resolve().parents[1] / "leaderboards" / "README.md").read_text()
    entries = readme.split("\n## Entries\n", 1)[-1].split("\n## ", 1)[0]
    found = re.search(rf"^- `{re.escape(name)}/`:(.*?)(?=^- |\Z)", entries, re.M | re.S)
    assert found, f"leaderboards/README.md has no entry '- `{name}/`: ...' under '## Entries'"
    return " ".join(found.group(1).split())


@pytest.mark.parametrize("board", COMMITTED, ids=[p.name for p in COMMITTED])
def test_committed_leaderboards_validate(board, capsys):
    """What CI checks of every committed leaderboard, with the command a reviewer runs
    (``restbench leaderboard validate``): any problem (schema, a tampered number or file, an
    incomplete run, a duplicate cell) fails. Stale runs (another restbench version, a changed
    profile or data generator) do not fail, since results stay valid records of what was run,
    but the leaderboard's entry in leaderboards/README.md must say it is stale, and only then."""
    capsys.readouterr()
    main(["leaderboard", "validate", str(board), "--json"])  # exits 1 on any problem
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["problems"] == []
    says_stale = "stale" in _readme_entry(board.name).lower()
    if report["stale"]:
        assert says_stale, f"{board.name} is stale ({report['stale']}): say so in its leaderboards/README.md entry"
        warnings.warn(f"leaderboard {board.name} is stale: " + "; ".join(report["stale"]), stacklevel=1)
    else:
        assert not says_stale, f"{board.name} is no longer stale: update its leaderboards/README.md entry"


def test_readme_tables_match_their_leaderboards():
    """README blocks between <!-- leaderboard:NAME:table4 --> and <!-- /leaderboard --> are the
    Table 4 of leaderboards/NAME/leaderboard.md, verbatim (no drift after a rebuild)."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    blocks = re.findall(r"<!-- leaderboard:([\w.-]+):table4 -->\n(.*?)\n<!-- /leaderboard -->", readme, re.S)
    for name, block in blocks:
        md = (root / "leaderboards" / name / lb.LEADERBOARD_MD).read_text()
        start = md.index("## Robustness (Table 4 shape)")
        table = md[start:md.index("\n## ", start + 3)].split("\n", 2)[2].strip("\n")
        assert block == table, f"README's table of {name} is out of date: copy it from its leaderboard.md"
