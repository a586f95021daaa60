"""Check that every mutation in scripts/mutations.json still applies: each edit's old text occurs
exactly where the mutation says (run it after moving code; `make mutate` needs it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def problems() -> list[str]:
    out = []
    for mutation in json.loads((ROOT / "scripts" / "mutations.json").read_text()):
        path = ROOT / mutation["file"]
        text = path.read_text() if path.is_file() else None
        for old, _new in mutation["edits"]:
            if text is None:
                out.append(f"{mutation['id']}: {mutation['file']} does not exist")
            elif text.count(old) != 1:
                out.append(f"{mutation['id']}: {mutation['file']} holds {text.count(old)} copies of {old[:60]!r}")
        for test in mutation["tests"]:
            if not (ROOT / test.split("::")[0]).is_file():
                out.append(f"{mutation['id']}: test file {test.split('::')[0]} does not exist")
    return out


if __name__ == "__main__":
    found = problems()
    print("\n".join(found) or "every mutation applies")
    sys.exit(1 if found else 0)
