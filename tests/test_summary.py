"""End-of-run tables: means and stds over seeds, shapes, markdown, CSV and the terminal view."""

from __future__ import annotations

import csv
import io
import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from restbench.api import PluginError
from restbench.plugins.registry import Registry
from restbench.records.cells import make_record
from restbench.records.rundir import RunDir, new_run_info
from restbench.records.schema import validate_record
from restbench.report.caveats import BUSY_MARKER, BUSY_NOTE, busy_lines
from restbench.report.formatting import format_cell
from restbench.report.long_csv import summary_csv
from restbench.report.markdown import summary_markdown
from restbench.report.paired import BETTER, TIE
from restbench.report.summary import build_tables, write_summary
from restbench.report.tables import Cell
from restbench.report.terminal import print_summary

STAGES = ["W", "N1", "N2", "N3", "REM"]
METHODS = ["sors", "liu", "rest-as"]
SEEDS = [0, 1, 2]
PAPER = {"gaussian": ["low", "medium", "high"], "shot": ["low", "medium", "high"], "pgd": ["low", "medium", "high"]}
ARTIFACT = {"emg": ["low", "high"], "electrode-pop": ["low", "medium", "high"]}
PGD_SETTINGS = {"attack": "pgd-linf", "steps": 10, "step_size_uv": 3.0, "random_start": True, "restarts": 1}


def f1_value(method: str, corruption: str, severity: int, seed: int) -> float:
    """A distinct, known macro-F1 for every condition (so averages can be checked exactly)."""
    base = {"sors": 0.60, "liu": 0.55, "rest-as": 0.70}[method]
    shift = {"clean": 0.0, "gaussian": 0.05, "shot": 0.10, "pgd": 0.15, "emg": 0.02, "electrode-pop": 0.04}[corruption]
    rng = np.random.default_rng(zlib.crc32(f"{method}/{corruption}/{severity}/{seed}".encode()))
    return round(base - shift * severity + 0.01 * seed + float(rng.uniform(0, 0.005)), 6)


def rob(method, seed, corruption="clean", severity=0, name="clean", suite=None, variant="torch", f1=None,
        model="sors2018", dataset="sleep-synth"):
    f1 = f1_value(method, corruption, severity, seed) if f1 is None else f1
    counts = np.diag([2, 2, 2, 2, 2])
    settings = PGD_SETTINGS if corruption == "pgd" else ({} if corruption == "clean" else {"level": severity})
    return make_record(
        "robustness", dataset=dataset, model=model, method=method, compressor=None if method == "sors" else "slimming",
        seed=seed, profile="smoke", corruption=corruption, severity=severity, severity_name=name,
        severity_value=None if severity == 0 else [2.0, 6.0, 12.0][severity - 1],
        severity_unit=None if severity == 0 else "uV",
        suite=suite or ("clean" if corruption == "clean" else "artifact" if corruption in ARTIFACT else "paper"),
        corruption_settings=settings, variant=variant, macro_f1=f1, accuracy=min(1.0, f1 + 0.1), kappa=f1 - 0.1,
        per_class_f1={s: f1 for s in STAGES}, confusion=np.eye(5), confusion_counts=counts, n_windows=10,
        per_subject_macro_f1={"s3": f1}, macro_f1_ci95=[max(0.0, f1 - 0.05), min(1.0, f1 + 0.05)],
    )


def all_records(int8=False):
    records = []
    for method in METHODS:
        for seed in SEEDS:
            records.append(rob(method, seed))
            for suite in (PAPER, ARTIFACT):
                for corruption, names in suite.items():
                    for level, name in enumerate(names, start=1):
                        records.append(rob(method, seed, corruption, level, name))
            if int8:
                records.append(rob(method, seed, variant="tflite-int8", f1=f1_value(method, "clean", 0, seed) - 0.02))
                records.append(rob(method, seed, "pgd", 3, "high", variant="tflite-int8", f1=0.3 + 0.01 * seed))
            pruned = method != "sors"
            records.append(make_record(
                "efficiency", dataset="sleep-synth", model="sors2018", method=method,
                compressor="slimming" if pruned else None, seed=seed, profile="smoke",
                params=(450_000 + 1000 * seed) if pruned else 2_264_485, size_kb=(449.0 + seed) if pruned else 8896.0,
                macs=47_000_000 if pruned else 723_000_000, mflops=94.0 if pruned else 1451.0,
                macs_per_night=1080 * (47_000_000 if pruned else 723_000_000), mflops_per_night=1080 * 94.0,
                input_shape=[1, 1, 12000], tflite_fp32_size_kb=455.0 + seed, tflite_int8_size_kb=None,
                export_check=None))
            records.append(make_record(
                "latency", dataset="sleep-synth", model="sors2018", method=method, compressor=None, seed=seed,
                profile="smoke", runner="tflite-local", variant="fp32", latency_s_per_window_median=0.01,
                latency_s_per_window_p90=0.02, latency_s_per_night_median=10.0 + seed, latency_s_per_night_p90=12.0,
                repetitions=5, windows_per_night=1080, threads=1, runtime="ai-edge-litert", runtime_version="2.3.0",
                device="cpu"))
            records.append(make_record(
                "training", dataset="sleep-synth", model="sors2018", method=method, compressor=None, seed=seed,
                profile="smoke", phase="train", selected_epoch=seed + 1, selection_criterion="clean",
                selection_score=0.5, epochs=3, history=[{"epoch": 1, "loss": 1.0}], wall_s=10.0))
    return records


def expected(method, corruption, severity):
    values = [f1_value(method, corruption, severity, s) for s in SEEDS]
    return float(np.mean(values)), float(np.std(values, ddof=1))


def test_paper_table_shape_and_values():
    tables = build_tables(all_records(), methods=["rest-as", "sors"], corruptions=["pgd", "gaussian", "shot"])
    table = tables["paper"]
    # Row order: methods given first, the rest in order of appearance.
    assert [r.method for r in table.rows] == ["rest-as", "sors", "liu"]
    assert [c.key for c in table.columns] == ["clean"] + [
        f"{c}/{n}" for c in ("pgd", "gaussian", "shot") for n in ("low", "medium", "high")]
    assert {c.suite for c in table.columns[1:]} == {"paper"}
    for method in METHODS:
        for corruption, names in {"clean": ["clean"], **PAPER}.items():
            for level, name in enumerate(names, start=0 if corruption == "clean" else 1):
                key = "clean" if corruption == "clean" else f"{corruption}/{name}"
                cell = table.cell(method, key)
                mean, std = expected(method, corruption, level)
                assert cell.n_seeds == 3 and cell.seeds == SEEDS
                assert cell.mean == pytest.approx(mean, abs=1e-12)
                assert cell.std == pytest.approx(std, abs=1e-12)
    assert "variants" not in tables  # no exported-model robustness records


def test_artifact_table_averages_per_seed_then_over_seeds():
    table = build_tables(all_records())["artifact"]
    assert [c.key for c in table.columns] == ["clean", "emg", "electrode-pop", "mean-corrupted"]
    for method in METHODS:
        per_seed_emg = [np.mean([f1_value(method, "emg", lv, s) for lv in (1, 2)]) for s in SEEDS]
        # Mean over corruptions of each corruption's mean over its levels (emg has 2, electrode-pop 3).
        per_seed_all = [np.mean([np.mean([f1_value(method, c, lv, s) for lv in range(1, len(names) + 1)])
                                 for c, names in ARTIFACT.items()]) for s in SEEDS]
        assert table.cell(method, "emg").mean == pytest.approx(np.mean(per_seed_emg), abs=1e-12)
        assert table.cell(method, "emg").std == pytest.approx(np.std(per_seed_emg, ddof=1), abs=1e-12)
        assert table.cell(method, "mean-corrupted").mean == pytest.approx(np.mean(per_seed_all), abs=1e-12)
        assert table.cell(method, "mean-corrupted").std == pytest.approx(np.std(per_seed_all, ddof=1), abs=1e-12)


def test_only_torch_feeds_table4_and_variants_table_pairs_seeds():
    plain = build_tables(all_records())
    with_int8 = build_tables(all_records(int8=True))
    for method in METHODS:
        for col in plain["paper"].columns:
            assert with_int8["paper"].cell(method, col.key).values == plain["paper"].cell(method, col.key).values
    table = with_int8["variants"]
    assert [c.key for c in table.columns] == ["clean", "pgd/high"]
    labels = [r.key for r in table.rows]
    assert labels[:3] == ["sors|torch", "sors|tflite-int8", "sors|tflite-int8-minus-torch"]
    delta = table.cell("sors|tflite-int8-minus-torch", "clean")
    assert delta.mean == pytest.approx(-0.02, abs=1e-9) and delta.std == pytest.approx(0.0, abs=1e-9)
    pgd = table.cell("liu|tflite-int8-minus-torch", "pgd/high")
    want = [0.3 + 0.01 * s - f1_value("liu", "pgd", 3, s) for s in SEEDS]
    assert pgd.values == pytest.approx(want, abs=1e-12)
    assert table.rows[2].delta_to == "torch" and table.rows[1].variant == "tflite-int8"


def test_stages_table_shows_per_stage_f1_and_a_stage_never_predicted():
    """A method can match another's macro-F1 ranking yet give up a stage; the stages table shows it."""
    records = []
    for seed in SEEDS:
        for method, n1 in (("sors", 0.3 + 0.01 * seed), ("rest-as", 0.0)):
            record = rob(method, seed)
            record["per_class_f1"] = {"W": 0.8, "N1": n1, "N2": 0.7 - 0.01 * seed, "N3": 0.4, "REM": 0.6}
            records.append(record)
        int8 = rob("sors", seed, variant="tflite-int8")  # exported variants do not feed it
        int8["per_class_f1"] = {s: 0.99 for s in STAGES}
        records.append(int8)
    records.append(rob("sors", 0, "pgd", 3, "high"))  # nor do corrupted windows
    tables = build_tables(records)
    table = tables["stages"]
    assert [c.key for c in table.columns] == STAGES and [r.method for r in table.rows] == ["sors", "rest-as"]
    assert table.cell("sors", "N1").values == pytest.approx([0.30, 0.31, 0.32])
    assert table.cell("rest-as", "N1").values == [0.0, 0.0, 0.0]
    assert table.cell("sors", "N2").std == pytest.approx(0.01)
    markdown = summary_markdown(tables)
    assert "## Per-stage F1 (clean)" in markdown
    assert "| rest-as | 0.80 ± 0.00 | 0.00 ± 0.00 | 0.69 ± 0.01 | 0.40 ± 0.00 | 0.60 ± 0.00 |" in markdown
    assert any(row.startswith("stages,") and ",N1," in row for row in summary_csv(tables).splitlines())


def test_later_record_wins_and_missing_seeds_are_counted():
    records = [rob("sors", 0, f1=0.1), rob("sors", 1, f1=0.5), rob("sors", 0, f1=0.3)]
    cell = build_tables(records)["paper"].cell("sors", "clean")
    assert cell.values == [0.3, 0.5] and cell.seeds == [0, 1]
    assert cell.mean == pytest.approx(0.4) and cell.std == pytest.approx(np.std([0.3, 0.5], ddof=1))
    single = build_tables([rob("sors", 0, f1=0.3)])["paper"].cell("sors", "clean")
    # one seed: the interval is the record's subject bootstrap; two seeds: Student t over seeds
    assert single.std is None and format_cell(single, "macro_f1") == "0.30 [0.25, 0.35]"
    assert format_cell(single, "macro_f1", n_expected=3) == "0.30 (n=1) [0.25, 0.35]"
    from scipy import stats

    half = stats.t.ppf(0.975, 1) * np.std([0.3, 0.5], ddof=1) / np.sqrt(2)
    assert cell.interval == pytest.approx([0.4 - half, 0.4 + half])


def test_efficiency_table():
    table = build_tables(all_records(), methods=METHODS)["efficiency"]
    keys = [c.key for c in table.columns]
    # No int8 TFLite size was recorded, so that column is left out.
    assert keys == ["params", "size_kb", "mflops", "macs", "tflite_fp32_size_kb",
                    "latency_s_per_night_median[tflite-local:fp32]"]
    assert table.cell("sors", "params").mean == 2_264_485 and table.cell("sors", "params").std == 0
    assert table.cell("liu", "params").mean == pytest.approx(451_000)
    assert table.cell("liu", "size_kb").std == pytest.approx(1.0)
    lat = table.cell("rest-as", "latency_s_per_night_median[tflite-local:fp32]")
    assert lat.mean == pytest.approx(11.0) and lat.std == pytest.approx(1.0)
    assert format_cell(table.cell("sors", "params"), "params") == "2,264,485"
    assert format_cell(table.cell("liu", "size_kb"), "size_kb") == "450.0 ± 1.0"
    assert table.columns[4].label == "tflite fp32 file (KB)"
    training = build_tables(all_records())["training"]
    assert training.cell("sors", "train:selected_epoch").mean == pytest.approx(2.0)


def test_every_exporters_file_sizes_are_columns():
    """The efficiency table reads every ``VARIANT_size_kb`` field its records hold, whichever exporter wrote
    it: between the model's own numbers and the FLOP ratio, in the records' order, in summary.md and CSV."""
    records = []
    for record in all_records():
        if record["record_type"] == "efficiency":
            record = {**record, "onnx_fp16_size_kb": 100.0 + record["seed"], "flop_ratio_vs_reference": 2.0}
        records.append(record)
    tables = build_tables(records, methods=METHODS)
    table = tables["efficiency"]
    assert [c.key for c in table.columns][:7] == ["params", "size_kb", "mflops", "macs", "tflite_fp32_size_kb",
                                                  "onnx_fp16_size_kb", "flop_ratio_vs_reference"]
    assert table.columns[5].label == "onnx fp16 file (KB)"
    assert format_cell(table.cell("liu", "onnx_fp16_size_kb"), "onnx_fp16_size_kb") == "101.0 ± 1.0"
    assert "| MMACs | tflite fp32 file (KB) | onnx fp16 file (KB) | FLOP ratio (×) |" in summary_markdown(tables)
    assert any(row.startswith("efficiency,") and ",onnx_fp16_size_kb,onnx_fp16_size_kb," in row
               for row in summary_csv(tables).splitlines())


def quiet_phase_records():
    """all_records() as the quiet phase writes them: speedups over sors beside the FLOP ratio, Blanco-like
    transform shares for liu, and one busy measurement (rest-as seed 1)."""
    records = all_records()
    for r in records:
        pruned = r["method"] != "sors"
        if r["record_type"] == "efficiency":
            r.update(reference_method="sors", flop_ratio_vs_reference=1451.0 / r["mflops"],
                     latency_speedup_vs_reference={"tflite-local:fp32": 5.0 if pruned else 1.0})
        elif r["record_type"] == "latency":
            r.update(latency_s_per_window_min=0.002 if pruned else 0.01, reference_method="sors",
                     speedup_vs_reference=(5.0 + r["seed"]) if pruned else 1.0,
                     transform_share=0.9 if r["method"] == "liu" else None,
                     busy=r["method"] == "rest-as" and r["seed"] == 1,
                     busy_reasons=["per-window spread (p90 - min) / min = 3.00 > 0.5"]
                     if r["method"] == "rest-as" and r["seed"] == 1 else [])
    return records


def test_efficiency_table_speedups_transform_share_and_busy_warning():
    records = quiet_phase_records()
    for r in records:
        validate_record(r)
    tables = build_tables(records, methods=METHODS)
    table = tables["efficiency"]
    keys = [c.key for c in table.columns]
    assert keys == ["params", "size_kb", "mflops", "macs", "tflite_fp32_size_kb", "params_ratio_vs_reference",
                    "flop_ratio_vs_reference", "latency_s_per_night_median[tflite-local:fp32]",
                    "speedup_vs_reference[tflite-local:fp32]", "transform_share[tflite-local:fp32]"]
    assert table.cell("rest-as", "flop_ratio_vs_reference").mean == pytest.approx(1451.0 / 94.0)
    # the params ratio beside it: sors' parameters over the model's, same seed
    assert table.cell("rest-as", "params_ratio_vs_reference").values == pytest.approx(
        [2_264_485 / (450_000 + 1000 * seed) for seed in SEEDS])
    assert table.cell("rest-as", "speedup_vs_reference[tflite-local:fp32]").mean == pytest.approx(6.0)  # seeds 0, 1, 2
    assert table.cell("sors", "speedup_vs_reference[tflite-local:fp32]").mean == 1.0
    assert table.cell("liu", "transform_share[tflite-local:fp32]").mean == pytest.approx(0.9)
    assert table.cell("sors", "transform_share[tflite-local:fp32]") is None
    assert "unpruned sors" in table.description and "Transform share" in table.description
    assert "params ratio: its parameters over the model's" in table.description
    # the busy measurement marks its method's latency cells and is listed with its reasons
    busy = table.cell("rest-as", "latency_s_per_night_median[tflite-local:fp32]")
    assert busy.marker == BUSY_MARKER and table.cell("sors", "latency_s_per_night_median[tflite-local:fp32]").marker is None
    assert busy_lines(tables) == ["rest-as seed 1 on tflite-local fp32: per-window spread (p90 - min) / min = 3.00 > 0.5"]
    assert format_cell(table.cell("liu", "transform_share[tflite-local:fp32]"), "transform_share") == "90 %"
    md = summary_markdown(tables, {"name": "t"})
    assert "## Latency measured on a busy machine" in md and "rest-as seed 1 on tflite-local fp32" in md
    assert BUSY_NOTE in md and f"11.00 ± 1.00 {BUSY_MARKER}" in md
    console = Console(file=io.StringIO(), width=300, color_system=None)
    print_summary(tables, console)
    assert "Latency measured on a busy machine" in console.file.getvalue()
    # without busy records and without the new fields, nothing of it appears
    plain = build_tables(all_records(), methods=METHODS)
    assert busy_lines(plain) == [] and "busy machine" not in summary_markdown(plain, {"name": "t"})


def test_undefined_kappa_is_left_out():
    records = [rob("sors", 0, f1=0.5), rob("sors", 1, f1=0.7)]
    records[0]["kappa"] = None
    detail = build_tables(records)["detail"]
    assert detail.cell("sors", "torch:clean:kappa").seeds == [1]
    assert detail.cell("sors", "torch:clean:macro_f1").seeds == [0, 1]


def test_several_models_get_distinct_rows():
    records = [rob("sors", 0, f1=0.5), rob("sors", 0, f1=0.4, model="tiny-cnn")]
    table = build_tables(records)["paper"]
    assert [r.label for r in table.rows] == ["sors (sors2018, sleep-synth)", "sors (tiny-cnn, sleep-synth)"]
    assert table.cell("sleep-synth/tiny-cnn/sors", "clean").mean == 0.4


def test_format_cell():
    assert format_cell(Cell([0.66, 0.68], [0, 1]), "macro_f1") == "0.67 ± 0.01"
    assert format_cell(Cell([0.65, 0.67, 0.69], [0, 1, 2]), "macro_f1") == "0.67 ± 0.02"
    assert format_cell(None, "macro_f1") == "–"
    assert format_cell(Cell([-0.01, -0.03], [0, 1]), "macro_f1", delta=True) == "-0.020 ± 0.014"
    assert format_cell(Cell([723_000_000], [0]), "macs") == "723.0"


def run_info():
    return new_run_info(
        "table-test", config={"profile": "smoke"}, seeds=SEEDS, methods=METHODS,
        corruptions=["gaussian", "shot", "pgd", "emg", "electrode-pop"],
        dataset={"name": "sleep-synth", "split": {"train": ["a"], "val": ["b"], "test": ["c"]},
                 "stats": {"mean": 0.0, "sigma": 1.0, "min": -1.0, "max": 1.0}, "fingerprint": "beef"},
        deviations=["2 epochs instead of 30", "synthetic data"], notes=["smoke profile"], registry=Registry(),
    )


def test_markdown_has_tables_deviations_and_attack():
    tables = build_tables(all_records(int8=True), methods=METHODS)
    text = summary_markdown(tables, run_info())
    assert "## Deviations from the paper protocol" in text
    assert "- 2 epochs instead of 30" in text and "- synthetic data" in text
    assert "| Method | Clean | gaussian low |" in text
    mean, std = expected("rest-as", "gaussian", 3)
    assert f"| rest-as | {expected('rest-as', 'clean', 0)[0]:.2f} ± " in text
    assert f"{mean:.2f} ± {std:.2f}" in text
    # Which attack produced the adversarial numbers.
    assert '`pgd` high (12 uV): attack="pgd-linf", steps=10, step_size_uv=3.0' in text
    assert "Deployed variants" in text and "Δ tflite-int8 − torch" in text
    assert "Efficiency (Table 5)" in text and "2,264,485" in text
    assert "All robustness numbers" not in text  # CSV-only table
    assert "## Provenance" in text
    assert summary_markdown({}, {"name": "empty"}).count("No results recorded yet.") == 1


def test_csv_is_long_format_with_numbers():
    tables = build_tables(all_records(int8=True), methods=METHODS)
    rows = list(csv.DictReader(io.StringIO(summary_csv(tables))))
    n_cells = sum(1 for t in tables.values() for cols in t.cells.values() for c in cols.values())
    assert len(rows) == n_cells
    row = next(r for r in rows if r["table"] == "paper" and r["method"] == "liu" and r["column"] == "shot/high")
    mean, std = expected("liu", "shot", 3)
    assert float(row["mean"]) == pytest.approx(mean, abs=1e-12) and float(row["std"]) == pytest.approx(std, abs=1e-12)
    assert row["n_seeds"] == "3" and row["metric"] == "macro_f1" and row["corruption"] == "shot"
    assert row["severity"] == "3" and row["seeds"] == "0;1;2"
    detail = [r for r in rows if r["table"] == "detail" and r["method"] == "liu" and r["column"].endswith("pgd/high:kappa")]
    assert {r["variant"] for r in detail} == {"torch", "tflite-int8"}
    assert {r["table"] for r in rows} == {"paper", "frontier", "claims", "artifact", "stages", "variants", "efficiency",
                                          "training", "detail"}


def test_write_summary_from_run_dir(tmp_path):
    run = RunDir(tmp_path / "table-test")
    run.write_run(run_info())
    for record in all_records():
        run.append(record)
    tables = write_summary(run.path)
    assert "paper" in tables
    md = (run.path / "summary.md").read_text()
    assert md.startswith("# restbench run `table-test`")
    assert md.index("| sors |") < md.index("| liu |") < md.index("| rest-as |")
    assert (run.path / "summary.csv").read_text().startswith("table,dataset,model,method")
    # A record that no longer passes the schema (edited by hand) is reported, not summarised.
    with open(run.results_jsonl, "a") as fh:
        bad = rob("sors", 0)
        bad["macro_f1"] = "0.5"
        fh.write(json.dumps(bad) + "\n")
    with pytest.raises(PluginError, match=r"record \d+: invalid robustness record: field 'macro_f1'"):
        write_summary(run)


def test_print_summary():
    console = Console(file=io.StringIO(), width=250, color_system=None)
    print_summary(build_tables(all_records(), methods=METHODS), console)
    out = console.file.getvalue()
    assert "Robustness (Table 4, macro-F1)" in out and "Artifact suite" in out and "Efficiency" in out
    assert "rest-as" in out and " ± " in out
    empty = Console(file=io.StringIO(), width=80, color_system=None)
    print_summary({}, empty)
    assert "No results" in empty.file.getvalue()


BOARD = Path(__file__).resolve().parents[1] / "leaderboards" / "sleep-synth-quick"


def test_committed_run_summary_agrees_with_its_leaderboard(tmp_path):
    """The summary restbench writes for the committed 3-seed run and the leaderboard built from it
    aggregate the same records independently: every method's clean cell agrees (mean ± std)."""
    run = shutil.copytree(BOARD / "runs" / "leaderboard-quick", tmp_path / "run")
    write_summary(run)
    summary = (run / "summary.md").read_text(encoding="utf-8")
    board = (BOARD / "leaderboard.md").read_text(encoding="utf-8")
    table4 = board[board.index("## Robustness (Table 4 shape)"):].split("\n## ", 1)[0]
    rows = [line.split(" | ") for line in table4.splitlines() if line.startswith("| ") and "(reference)" not in line]
    clean = {cells[0].strip("| "): cells[2].replace("**", "").split(" ≈")[0] for cells in rows[2:]}
    assert set(clean) == {"sors", "liu", "blanco", "ford", "rest-a", "rest-as", "yasa", "rest-a-released",
                          "rest-as-released"}
    for method, cell in clean.items():
        line = next(ln for ln in summary.splitlines() if ln.startswith(f"| {method} |"))
        assert cell in line, (method, cell, line)


def _subject_record(method, seed, per_subject):
    record = rob(method, seed, f1=float(np.mean(list(per_subject.values()))))
    record["per_subject_macro_f1"] = per_subject
    return record


def test_paired_table_marks_a_consistent_gain_and_a_tie():

    subjects = [f"s{i}" for i in range(8)]
    base = {s: 0.50 + 0.01 * i for i, s in enumerate(subjects)}
    better = {s: v + 0.10 for s, v in base.items()}  # +0.10 on every subject: p = 2/2^8 < 0.05
    noise = {s: v + (0.02 if i % 2 else -0.02) for i, (s, v) in enumerate(base.items())}  # mean 0: a tie
    records = [_subject_record("sors", 0, base), _subject_record("rest-as", 0, better), _subject_record("liu", 0, noise)]
    paired = build_tables(records, baseline="sors")["paired"]
    gain, tie = paired.cell("rest-as", "clean"), paired.cell("liu", "clean")
    assert gain.mean == pytest.approx(0.10) and gain.marker == BETTER
    assert tie.mean == pytest.approx(0.0, abs=1e-12) and tie.marker == TIE
    assert [r.method for r in paired.rows] == ["rest-as", "liu"]  # the baseline is not compared with itself
    assert format_cell(gain, "macro_f1", delta=True).startswith("+0.100 [+0.100, +0.100] " + BETTER)
    assert "sors" not in {r.method for r in paired.rows} and "paired" not in build_tables(records)
