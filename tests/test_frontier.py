"""The clean-vs-robust frontier, the paper's claims and the efficiency ratios (issues 26 and 27), on
constructed records whose answers are known, and on the committed leaderboard: domination needs
means at least as high on both axes and a paired test on one, equal means tie, each claim's
verdict follows its rule, per-subject values in leaderboard.json are the records', and the params
and FLOP ratios are the reference's numbers over the entry's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restbench.evaluation.statistics import paired_difference
from restbench.records.cells import make_record
from restbench.report import leaderboard as lb
from restbench.report.frontier import (
    NOT_REPRODUCED,
    NOT_TESTABLE,
    REPRODUCED,
    STAR,
    AxisValues,
    dominates,
    evaluate_claims,
    frontier,
    own_test_split,
    paper_claims,
)
from restbench.report.long_csv import summary_csv
from restbench.report.markdown import summary_markdown
from restbench.report.runs import LoadedRun
from restbench.report.summary import build_tables

SUBJECTS = [f"s{i}" for i in range(8)]
BOARD = Path(__file__).resolve().parents[1] / "leaderboards" / "sleep-synth-quick"


def axis(per_subject: dict[str, float], seed: int = 0) -> AxisValues:
    return AxisValues({seed: sum(per_subject.values()) / len(per_subject)},
                      {(seed, s): v for s, v in per_subject.items()})


def flat(value: float, spread: float = 0.01) -> dict[str, float]:
    """Eight subjects around ``value``, the same pattern for every call (so shifts are consistent)."""
    return {s: value + spread * i for i, s in enumerate(SUBJECTS)}


def wobble(value: float) -> dict[str, float]:
    """Eight subjects whose mean is ``value`` + 0.005 but half above and half below ``value``: no
    paired test separates it from :func:`flat` at ``value``."""
    return {s: v + (0.05 if i % 2 else -0.04) for i, (s, v) in enumerate(flat(value).items())}


# --------------------------------------------------------------------------- domination


def test_a_method_worse_on_both_axes_is_dominated_and_one_better_on_either_is_not():
    points = {
        "a": {"clean": axis(flat(0.60)), "robust": axis(flat(0.20))},  # best clean
        "b": {"clean": axis(flat(0.45)), "robust": axis(flat(0.40))},  # best robust
        "c": {"clean": axis(flat(0.40)), "robust": axis(flat(0.15))},  # below both a and b on every subject
        "d": {"clean": axis(flat(0.50)), "robust": axis(flat(0.30))},  # a trade-off between a and b
    }
    front = frontier(points, "clean", ["robust"], {"robust": "Robust"})
    (result,) = front["axes"]
    assert result["front"] == ["a", "b", "d"]
    assert result["dominated_by"] == {"c": ["a", "b", "d"]}
    assert dominates(points["a"], points["c"], ("clean", "robust"))
    assert not dominates(points["c"], points["a"], ("clean", "robust"))
    assert not dominates(points["a"], points["b"], ("clean", "robust"))  # b is more robust


def test_equal_means_tie_and_an_unconfirmed_mean_difference_does_not_dominate():
    same = {"clean": axis(flat(0.5)), "robust": axis(flat(0.3))}
    points = {"x": same, "twin": {"clean": axis(flat(0.5)), "robust": axis(flat(0.3))},
              "noisy": {"clean": axis(wobble(0.5)), "robust": axis(flat(0.3))}}
    (result,) = frontier(points, "clean", ["robust"], {})["axes"]
    # twins: neither is better on any axis; 'noisy' has a higher clean mean, but the paired test
    # (four subjects up 0.05, four down 0.04) does not confirm it, so it dominates nobody
    assert points["noisy"]["clean"].mean > points["x"]["clean"].mean
    assert result["front"] == ["x", "twin", "noisy"] and result["dominated_by"] == {}
    # the same higher mean on every subject is confirmed: now it dominates both
    points["noisy"] = {"clean": axis({s: v + 0.005 for s, v in flat(0.5).items()}), "robust": axis(flat(0.3))}
    (result,) = frontier(points, "clean", ["robust"], {})["axes"]
    assert result["front"] == ["noisy"] and result["dominated_by"] == {"x": ["noisy"], "twin": ["noisy"]}


def test_a_method_without_a_value_is_not_placed():
    points = {"a": {"clean": axis(flat(0.6)), "robust": axis(flat(0.2))}, "yasa-like": {"clean": axis(flat(0.5))}}
    (result,) = frontier(points, "clean", ["robust"], {})["axes"]
    assert result["front"] == ["a"] and result["not_placed"] == ["yasa-like"]


# --------------------------------------------------------------------------- claims


CONFIG = {
    "frontier": {"x": "clean", "y": ["robust"], "each_level_of": ["pgd"]},
    "parity_margin": 0.05,
    "claims": [
        {"id": "parity", "claim": "M keeps B's clean F1", "method": "m", "versus": "b", "column": "clean",
         "test": "non-inferiority"},
        {"id": "robust", "claim": "M beats B under noise", "method": "m", "versus": "b", "column": "noise/high",
         "test": "superiority"},
        {"id": "absent", "claim": "Z beats B", "method": "z", "versus": "b", "column": "clean", "test": "superiority"},
        {"id": "no-column", "claim": "M beats B under PGD", "method": "m", "versus": "b", "column": "pgd/high",
         "test": "superiority"},
    ],
}


def claim_groups(m_clean: dict, m_noise: dict) -> dict:
    return {("d", "net"): {"b": {"clean": axis(flat(0.60)), "noise/high": axis(flat(0.20))},
                           "m": {"clean": axis(m_clean), "noise/high": axis(m_noise)}}}


def verdicts(claims: list[dict]) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in claims}


def test_claims_reproduced_when_the_tests_say_so():
    # clean 0.02 below on every subject (interval [-0.02, -0.02] above -0.05); 0.2 more robust on every subject
    claims = evaluate_claims(claim_groups(flat(0.58), flat(0.40)), CONFIG)
    assert verdicts(claims) == {"parity": REPRODUCED, "robust": REPRODUCED, "absent": NOT_TESTABLE,
                                "no-column": NOT_TESTABLE}
    parity, robust, absent, no_column = claims
    assert parity["difference"] == pytest.approx(-0.02) and parity["n_pairs"] == 8 and parity["margin"] == 0.05
    assert robust["difference"] == pytest.approx(0.20) and robust["p_value"] == pytest.approx(2 / 2 ** 8)
    assert robust["method_mean"] == pytest.approx(0.435) and robust["versus_mean"] == pytest.approx(0.235)
    assert absent["reason"] == "z not in the run" and absent["difference"] is None
    assert no_column["reason"] == "no pgd/high result for m and b"


def test_claims_not_reproduced_when_the_tests_say_so():
    # clean 0.10 below (interval's low end below -0.05); under noise the same mean as B with a wobble: a tie
    claims = evaluate_claims(claim_groups(flat(0.50), wobble(0.20)), CONFIG)
    assert verdicts(claims)["parity"] == NOT_REPRODUCED and verdicts(claims)["robust"] == NOT_REPRODUCED
    parity, robust = claims[:2]
    assert parity["ci95"][0] < -0.05 and "not above -0.05" in parity["reason"]
    assert robust["p_value"] >= 0.05 and "not shown to differ" in robust["reason"]
    # worse under noise on every subject: not reproduced either, and said so
    (_, worse, *_) = evaluate_claims(claim_groups(flat(0.58), flat(0.10)), CONFIG)
    assert worse["verdict"] == NOT_REPRODUCED and worse["reason"].startswith("worse")
    # a parity claim barely inside the margin on average but with a wide interval is not reproduced
    wide = {s: v + (0.2 if i % 2 else -0.2) for i, (s, v) in enumerate(flat(0.58).items())}
    assert verdicts(evaluate_claims(claim_groups(wide, flat(0.40)), CONFIG))["parity"] == NOT_REPRODUCED


def test_the_claims_file_names_methods_columns_and_tests_the_code_knows():
    config = paper_claims()
    assert config["parity_margin"] > 0 and config["frontier"]["x"] == "clean"
    tests = {c["test"] for c in config["claims"]}
    assert tests == {"non-inferiority", "superiority"}
    assert len({c["id"] for c in config["claims"]}) == len(config["claims"])


def test_records_of_another_eval_set_are_left_out():
    records = [{"eval_set": None, "n": 1}, {"n": 2}, {"eval_set": "shhs", "n": 3}]
    assert [r["n"] for r in own_test_split(records)] == [1, 2]


# --------------------------------------------------------------------------- the summary


def rob(method, seed, corruption, severity, name, per_subject, **extra):
    f1 = sum(per_subject.values()) / len(per_subject)
    return make_record(
        "robustness", dataset="sleep-synth", model="sors2018", method=method,
        compressor=None if method == "sors" else "slimming", seed=seed, profile="smoke", corruption=corruption,
        severity=severity, severity_name=name, severity_value=None, severity_unit=None,
        suite="clean" if corruption == "clean" else "paper", corruption_settings={}, variant="torch", macro_f1=f1,
        accuracy=f1, kappa=f1, per_class_f1=None, confusion=None, confusion_counts=None, n_windows=80,
        per_subject_macro_f1=per_subject, macro_f1_ci95=[f1 - 0.05, f1 + 0.05], **extra)


def eff(method, seed, params, mflops, reference="sors"):
    return make_record("efficiency", dataset="sleep-synth", model="sors2018", method=method,
                       compressor=None if method == "sors" else "slimming", seed=seed, profile="smoke",
                       params=params, size_kb=params / 256, macs=mflops * 5e5, mflops=mflops,
                       macs_per_night=1080 * mflops * 5e5, mflops_per_night=1080 * mflops, input_shape=[1, 1, 12000],
                       reference_method=reference, flop_ratio_vs_reference=24.0 / mflops)


def constructed_run() -> list[dict]:
    """sors: clean 0.60, noise 0.20; rest-as: clean 0.50, noise 0.40 (every subject, seeds 0 and 1);
    liu: below sors everywhere. Efficiency: sors 36,000 params / 24 MFLOPs, the others 9,000 + 1,000 x
    seed / 6 MFLOPs."""
    shifts = {"sors": (0.60, 0.20), "rest-as": (0.50, 0.40), "liu": (0.55, 0.15)}
    records = []
    for method, (clean, noisy) in shifts.items():
        for seed in (0, 1):
            records.append(rob(method, seed, "clean", 0, "clean", flat(clean + 0.01 * seed)))
            records.append(rob(method, seed, "gaussian", 1, "high", flat(noisy + 0.01 * seed)))
            records.append(rob(method, seed, "pgd", 1, "high", flat(noisy / 2)))
            pruned = method != "sors"
            records.append(eff(method, seed, 9000 + 1000 * seed if pruned else 36000, 6.0 if pruned else 24.0))
    # a record of another evaluation set must not move any number
    records.append(rob("sors", 0, "clean", 0, "clean", flat(0.0), eval_set="elsewhere"))
    return records


def test_the_summary_shows_the_frontier_and_the_claims():
    tables = build_tables(constructed_run(), methods=["sors", "liu", "rest-as"], baseline="sors")
    front = tables["frontier"]
    assert [c.key for c in front.columns] == ["clean", "robust", "pgd/high"]
    assert front.cell("sors", "clean").mean == pytest.approx(0.64)  # the eval_set record is left out
    assert front.cell("sors", "robust").marker == STAR and front.cell("rest-as", "robust").marker == STAR
    assert front.cell("liu", "robust").marker is None  # below sors on both axes, every subject
    assert front.cell("sors", "clean").interval is not None  # two seeds: Student t
    assert any(note.startswith("Clean vs Robust (mean corrupted): front sors, rest-as; dominated: liu by sors")
               for note in front.notes)
    claims = tables["claims"]
    lines = {row.key: note for row, note in zip(claims.rows, claims.notes)}
    assert lines["rest-as-clean-parity"].startswith("REST (A+S) keeps Sors' clean macro-F1: not reproduced")
    assert lines["rest-as-gaussian"].startswith("REST (A+S) beats Sors under Gaussian noise (high): reproduced")
    assert "rest-a not in the run" in lines["rest-a-gaussian"] and "not testable" in lines["rest-a-gaussian"]
    assert claims.cell("rest-as-gaussian", "difference").mean == pytest.approx(0.20)
    md = summary_markdown(tables, {"name": "t"})
    assert "## Clean vs robust frontier (macro-F1)" in md and "## Paper claims: reproduced or not" in md
    assert "| Claim: method vs versus | method − versus [95 % CI] | p | pairs |" in md
    assert "| rest-as vs sors: gaussian/high | +0.200 [+0.200, +0.200] ✓ reproduced | 3.05e-05 | 16 |" in md  # exact: 2 / 2 ** 16
    assert f"| rest-as | 0.54 ± 0.01 [0.48, 0.60] | 0.34 ± 0.00 [0.31, 0.37] {STAR} |" in md  # t over two seeds
    assert any(row.startswith("claims,") for row in summary_csv(tables).splitlines())


def test_no_claims_table_when_nothing_can_be_tested():
    records = [r for r in constructed_run() if r["method"] != "rest-as"]
    assert "claims" not in build_tables(records, baseline="sors")


def test_params_and_flop_ratios_in_the_summary_and_the_leaderboard():
    records = constructed_run()
    table = build_tables(records, methods=["sors", "liu", "rest-as"])["efficiency"]
    keys = [c.key for c in table.columns]
    assert keys.index("params_ratio_vs_reference") + 1 == keys.index("flop_ratio_vs_reference")
    ratio = table.cell("liu", "params_ratio_vs_reference")
    assert ratio.values == pytest.approx([36000 / 9000, 36000 / 10000]) and ratio.seeds == [0, 1]
    assert table.cell("sors", "params_ratio_vs_reference").mean == 1.0
    assert table.cell("liu", "flop_ratio_vs_reference").mean == pytest.approx(4.0)

    info = {"name": "r", "methods": ["sors", "liu", "rest-as"], "corruptions": ["gaussian", "pgd"], "seeds": [0, 1]}
    data = lb.assemble([LoadedRun(Path("r"), info, [r for r in records if r["record_type"] != "training"])],
                       name="r", baseline="sors", baseline_source="option")
    liu = next(e for e in data["entries"] if e["method"] == "liu")
    assert liu["cells"]["ratio:params"]["values"] == pytest.approx([4.0, 3.6])
    assert liu["cells"]["ratio:params"]["ci95"] is not None  # the same interval convention as every cell
    assert liu["cells"]["ratio:mflops"]["values"] == pytest.approx([4.0, 4.0])
    labels = {c["key"]: c["label"] for c in data["columns"]}
    assert labels["ratio:params"] == "× fewer params vs sors" and labels["ratio:mflops"] == "× fewer FLOPs vs sors"
    assert data["claims"][1]["id"] == "rest-as-clean-parity" and data["claims"][1]["verdict"] == NOT_REPRODUCED
    assert data["frontier"]["axes"][0]["dominated_by"] == {"liu": ["sors"]}


# --------------------------------------------------------------------------- the committed leaderboard


@pytest.fixture(scope="module")
def committed():
    data = json.loads((BOARD / lb.LEADERBOARD_JSON).read_text())
    run = next((BOARD / "runs").iterdir())
    records = [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines() if line.strip()]
    return data, [r for r in records if r["record_type"] == "robustness" and r["variant"] == "torch"]


def test_per_subject_values_are_the_records_and_consistent_with_the_cell(committed):
    data, records = committed
    by = {(r["method"], r["seed"], r["corruption"], r["severity"]): r for r in records}
    paper = sorted({(r["corruption"], r["severity"]) for r in records if r["suite"] == "paper"})
    for entry in data["entries"]:
        for key in ("clean", "robust"):
            cell = entry["cells"].get(key)
            if cell is None:
                continue
            levels = [("clean", 0)] if key == "clean" else paper
            assert set(cell["per_subject"]) == set(by[(entry["method"], cell["seeds"][0], "clean", 0)][
                "per_subject_macro_f1"])
            for subject, values in cell["per_subject"].items():
                assert len(values) == len(cell["seeds"])
                for seed, value in zip(cell["seeds"], values):
                    expected = sum(by[(entry["method"], seed, c, s)]["per_subject_macro_f1"][subject]
                                   for c, s in levels) / len(levels)
                    assert value == pytest.approx(expected, abs=1e-12)
            # the cell's per-seed value pools windows; the per-subject mean is close to it but not it
            for i in range(len(cell["seeds"])):
                subject_mean = sum(v[i] for v in cell["per_subject"].values()) / len(cell["per_subject"])
                assert abs(subject_mean - cell["values"][i]) < 0.15
    stage = data["entries"][0]["cells"]["stage:N1"]
    assert "per_subject" not in stage  # no per-subject F1 for a stage


def test_stored_claims_are_the_paired_test_on_the_records(committed):
    data, records = committed
    def cell(method, column):
        corruption, _, name = column.partition("/")
        return [r for r in records if r["method"] == method and r["corruption"] == corruption
                and r["severity_name"] == (name or "clean")]

    for claim in data["claims"]:
        diff = paired_difference(cell(claim["method"], claim["column"]), cell(claim["versus"], claim["column"]))
        assert claim["difference"] == pytest.approx(diff.mean, abs=1e-12) and claim["n_pairs"] == diff.n_pairs
        assert claim["p_value"] == pytest.approx(diff.p_value)
    verdicts = {c["id"]: c["verdict"] for c in data["claims"]}
    # the accepted finding (docs/PROTOCOL.md): REST trades clean F1 for robustness on the quick profile
    assert verdicts["rest-a-clean-parity"] == verdicts["rest-as-clean-parity"] == NOT_REPRODUCED
    assert {verdicts[f"{m}-{c}"] for m in ("rest-a", "rest-as") for c in ("gaussian", "shot", "pgd")} == {REPRODUCED}


def test_the_committed_leaderboard_shows_the_frontier_claims_and_ratios():
    md = (BOARD / lb.LEADERBOARD_MD).read_text()
    assert "## Clean vs robust frontier (macro-F1)" in md and "## Paper claims: reproduced or not" in md
    assert "- REST (A+S) keeps Sors' clean macro-F1: not reproduced: rest-as − sors on clean = " in md
    assert "× fewer params vs sors" in md and "× fewer FLOPs vs sors" in md
    assert "![frontier](plots/frontier.png)" in md
    html = (BOARD / lb.INDEX_HTML).read_text()
    assert 'id="frontier"' in html and 'id="claims"' in html
    csv = (BOARD / lb.LEADERBOARD_CSV).read_text().splitlines()
    assert any(line.startswith("claims,") and ",not reproduced" in line for line in csv)
    assert any(line.startswith("frontier,") and ",front" in line for line in csv)


def test_a_leaderboard_written_before_the_frontier_still_validates(tmp_path):
    """A schema 1.0 leaderboard.json (no frontier, claims, per-subject values or ratio columns) is checked
    as it was; a 1.1 one must hold them."""
    import shutil

    from restbench.report.leaderboard_validation import validate

    folder = shutil.copytree(BOARD, tmp_path / BOARD.name, ignore=shutil.ignore_patterns("plots"))
    data = json.loads((folder / lb.LEADERBOARD_JSON).read_text())
    data["plots"] = []
    old = json.loads(json.dumps(data))
    old["schema_version"] = "1.0"
    del old["frontier"], old["claims"]
    old["columns"] = [c for c in old["columns"] if not c["key"].startswith("ratio:")]
    for entry in old["entries"]:
        entry["cells"] = {k: {f: v for f, v in c.items() if f != "per_subject"} for k, c in entry["cells"].items()
                          if not k.startswith("ratio:")}
    (folder / lb.LEADERBOARD_JSON).write_text(json.dumps(old))
    assert validate(folder).problems == []
    del data["frontier"]
    (folder / lb.LEADERBOARD_JSON).write_text(json.dumps(data))
    assert any(p.startswith("frontier: stored null") for p in validate(folder).problems)
