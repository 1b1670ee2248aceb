"""Write what the fault kinds' declaration says into the files that repeat it.

  .venv/bin/python tools/declared.py           (rewrite them)
  .venv/bin/python tools/declared.py --check   (say what differs; exit 1 when something does)

The kinds are declared once, in plugins/module_utils/_faults.py (DECLARED). From it come the
topology schema's enum of fault kinds (docs/topology.schema.json) and the kinds' table in
docs/experiments.md (between its `fault-kinds` markers); tests/unit/test_faults.py runs --check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "collections"))  # collections/ansible_collections/peerlab/bitcoin is this checkout

from ansible_collections.peerlab.bitcoin.plugins.module_utils import _faults

SCHEMA = ROOT / "docs" / "topology.schema.json"
DOCS = ROOT / "docs" / "experiments.md"
BEGIN, END = "<!-- fault-kinds: written by tools/declared.py from _faults.DECLARED -->", "<!-- /fault-kinds -->"


def written() -> dict[Path, str]:
    """Each file as the declaration says it should read."""
    schema = SCHEMA.read_text()
    kinds = ", ".join(f'"{name}"' for name in _faults.KINDS)
    schema = re.sub(r'("kind": \{"enum": \[)[^\]]*(\]\})', lambda found: f"{found.group(1)}{kinds}{found.group(2)}", schema, count=1)
    docs = DOCS.read_text()
    if BEGIN not in docs or END not in docs:
        raise SystemExit(f"{DOCS}: the markers {BEGIN} and {END} are missing")
    head, rest = docs.split(BEGIN, 1)
    _old, tail = rest.split(END, 1)
    docs = head + BEGIN + "\n" + "\n".join(_faults.docs_table()) + "\n" + END + tail
    return {SCHEMA: schema, DOCS: docs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--check", action="store_true", help="only say which files differ from the declaration")
    check = parser.parse_args().check
    stale = [path for path, text in written().items() if path.read_text() != text]
    for path in stale:
        if check:
            print(f"{path.relative_to(ROOT)} differs from _faults.DECLARED: run .venv/bin/python tools/declared.py")
        else:
            path.write_text(written()[path])
            print(f"wrote {path.relative_to(ROOT)}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
