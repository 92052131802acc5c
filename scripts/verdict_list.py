"""Print every verdict of the studies under a folder, one tab-separated line each:

    study  hypothesis  verdict  survives-Holm  p  detail

    python scripts/verdict_list.py /tmp/prog

Uses only ``tunebook.analysis.study.analyze``, so an older checkout's ``src`` can judge
the same run folders (``PYTHONPATH=/path/to/old/src python scripts/verdict_list.py ...``)
and the two listings show which verdicts moved between versions of the statistics.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if "PYTHONPATH" not in os.environ:  # else: the checkout it names (an older version's src)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tunebook.analysis.study import analyze  # noqa: E402


def main(root: str) -> None:
    for folder in sorted(p.parent for p in Path(root).glob("*/study.toml")):
        a = analyze(folder)
        for v in a.verdicts:
            holm = "—" if v.verdict == "inconclusive" else ("yes" if a.survives_holm(v.hypothesis.id) else "no")
            print("\t".join([folder.name, v.hypothesis.id, v.verdict, holm, f"{v.p:.3g}", v.detail]))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "modellogs")
