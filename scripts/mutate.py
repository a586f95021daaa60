#!/usr/bin/env python3
"""Semantic mutation testing: does the test suite notice when the code is wrong?

Each entry of ``scripts/mutations.json`` is one deliberate defect: a file, one or more exact
``old`` -> ``new`` text edits, what real bug it models, and the fast test selection that should
catch it. For each mutation this script

1. copies the checkout once (git's tracked files plus untracked, not-ignored ones) to a
   temporary folder, so the working tree is never touched;
2. applies the edits to the copy (each ``old`` text must occur exactly once; otherwise the
   mutation is reported as *stale* and not scored);
3. runs ``python -m pytest -x -q`` on the selection in the copy (``PYTHONPATH`` puts the copy's
   ``restbench`` and ``restbench_builtins`` first), with a timeout;
4. restores the file.

Score = caught / scored mutations. A mutation is **caught** when its selection fails (exit
code 1) or runs past the timeout; it **survives** when the selection passes. Anything else
(no tests collected, a usage error, a stale edit) is an error and is not scored. Before the
mutations, the union of all selections runs once on the unmutated copy and must pass, or the
run stops (a failing baseline would make every mutation look caught).

Usage::

    .venv/bin/python scripts/mutate.py                 # all mutations
    .venv/bin/python scripts/mutate.py --only T1 M07   # some
    .venv/bin/python scripts/mutate.py --report docs/MUTATION.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTATIONS = ROOT / "scripts" / "mutations.json"


def load(path: Path = MUTATIONS) -> list[dict]:
    entries = json.loads(path.read_text())
    ids = [m["id"] for m in entries]
    if len(ids) != len(set(ids)):
        raise SystemExit("mutations.json: duplicate ids")
    for m in entries:
        missing = {"id", "file", "edits", "defect", "tests"} - set(m)
        if missing:
            raise SystemExit(f"mutations.json: {m.get('id')} lacks {sorted(missing)}")
    return entries


def checkout_files(root: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True)
    return [p for p in out.stdout.decode().split("\0") if p and (root / p).is_file()]


def copy_checkout(root: Path, dest: Path) -> None:
    for rel in checkout_files(root):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def pytest_env(copy: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "RESTBENCH_STRICT_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([str(copy), str(copy / "plugins")])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["RESTBENCH_QUIET"] = "1"
    return env


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """``(outcome, seconds, tail of output)``: outcome is passed, failed, timeout or error."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", *tests]
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=copy, env=pytest_env(copy), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started, ""
    seconds = time.monotonic() - started
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    outcome = {0: "passed", 1: "failed"}.get(proc.returncode, "error")
    return outcome, seconds, " | ".join(tail)


def apply(copy: Path, mutation: dict) -> str | None:
    """Apply the edits in the copy; the original text, or None when an edit is stale."""
    path = copy / mutation["file"]
    original = path.read_text()
    text = original
    for old, new in mutation["edits"]:
        if text.count(old) != 1:
            return None
        text = text.replace(old, new)
    path.write_text(text)
    return original


def check_imports(copy: Path) -> None:
    code = "import restbench, restbench_builtins; print(restbench.__file__); print(restbench_builtins.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=copy, env=pytest_env(copy), capture_output=True, text=True)
    paths = out.stdout.split()
    if out.returncode != 0 or len(paths) != 2 or not all(p.startswith(str(copy)) for p in paths):
        raise SystemExit(f"the copy's packages are not the ones imported: {out.stdout} {out.stderr[-500:]}")


def report_markdown(results: list[dict], baseline_s: float, total_s: float) -> str:
    scored = [r for r in results if r["outcome"] in ("caught", "survived")]
    caught = [r for r in scored if r["outcome"] == "caught"]
    table = [r for r in scored if r["table"]]
    lines = [
        "# Mutation testing",
        "",
        "`make mutate` (scripts/mutate.py) applies each semantic mutation of `scripts/mutations.json` to a",
        "temporary copy of the checkout, one at a time, and runs that mutation's fast test selection with a",
        "timeout. **Score = caught / scored**: a mutation is *caught* when its selection fails or times out,",
        "*survives* when it passes; stale edits and errors are listed but not scored. The selection of every",
        "mutation first passes on the unmutated copy.",
        "",
        f"Latest run: {dt.date.today().isoformat()}, commit `{git_head()}` plus the working tree; "
        f"baseline {baseline_s:.0f} s, total {total_s / 60:.1f} min.",
        "",
        f"**Score: {len(caught)} / {len(scored)} caught ({100 * len(caught) / max(1, len(scored)):.0f} %)**; "
        f"the issue-19 table's defects: {sum(r['outcome'] == 'caught' for r in table)} / {len(table)} caught.",
        "",
        "| id | file | defect | outcome | seconds |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r['id']} | `{r['file']}` | {r['defect']} | {r['outcome']} | {r['seconds']:.0f} |")
    survivors = [r for r in results if r["outcome"] == "survived"]
    lines += ["", "## Survivors", ""]
    lines += [f"- {r['id']} `{r['file']}`: {r['defect']}" for r in survivors] or ["None."]
    errors = [r for r in results if r["outcome"] not in ("caught", "survived")]
    if errors:
        lines += ["", "## Not scored", ""]
        lines += [f"- {r['id']} `{r['file']}`: {r['outcome']} {r.get('detail', '')}" for r in errors]
    return "\n".join(lines) + "\n"


def git_head() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="mutation ids to run (default: all)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutation's test run")
    parser.add_argument("--report", type=Path, help="write the markdown report here (e.g. docs/MUTATION.md)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run (not for reports)")
    args = parser.parse_args(argv)

    mutations = load()
    if args.only:
        unknown = set(args.only) - {m["id"] for m in mutations}
        if unknown:
            raise SystemExit(f"unknown mutation ids: {sorted(unknown)}")
        mutations = [m for m in mutations if m["id"] in args.only]
    if args.list:
        for m in mutations:
            print(f"{m['id']:5} {m['file']}: {m['defect']}")
        return 0

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="restbench-mutate-") as tmp:
        copy = Path(tmp) / "repo"
        copy_checkout(ROOT, copy)
        check_imports(copy)
        baseline_s = 0.0
        if not args.no_baseline:
            selection = sorted({t for m in mutations for t in m["tests"]})
            outcome, baseline_s, tail = run_tests(copy, selection, args.timeout * 4)
            print(f"baseline ({len(selection)} selections): {outcome} in {baseline_s:.0f} s", flush=True)
            if outcome != "passed":
                print(f"the unmutated selection must pass first: {tail}", file=sys.stderr)
                return 2
        results = []
        for m in mutations:
            original = apply(copy, m)
            row = {"id": m["id"], "file": m["file"], "defect": m["defect"], "table": bool(m.get("table")),
                   "seconds": 0.0}
            if original is None:
                row["outcome"], row["detail"] = "stale", "an old text does not occur exactly once"
            else:
                try:
                    outcome, row["seconds"], tail = run_tests(copy, m["tests"], args.timeout)
                finally:
                    (copy / m["file"]).write_text(original)
                row["outcome"] = {"failed": "caught", "timeout": "caught", "passed": "survived"}.get(outcome, "error")
                row["detail"] = tail if row["outcome"] == "error" else ("(timeout)" if outcome == "timeout" else "")
            results.append(row)
            print(f"{row['id']:5} {row['outcome']:8} {row['seconds']:5.0f} s  {row['file']}: {row['defect']}", flush=True)
    total_s = time.monotonic() - started
    scored = [r for r in results if r["outcome"] in ("caught", "survived")]
    caught = sum(r["outcome"] == "caught" for r in scored)
    print(f"\nscore: {caught} / {len(scored)} caught"
          f" ({100 * caught / max(1, len(scored)):.0f} %), {len(results) - len(scored)} not scored")
    for r in results:
        if r["outcome"] == "survived":
            print(f"  survived: {r['id']} {r['file']}: {r['defect']}")
    if args.report:
        args.report.write_text(report_markdown(results, baseline_s, total_s))
        print(f"report written to {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
