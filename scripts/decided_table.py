"""Print the verdicts of a programme run with --until-decided (docs/results.md).

    python scripts/decided_table.py /tmp/progd

One row per hypothesis: the verdict, the look it was decided at (or the last look), the
seeds per configuration there, whether it survives Holm within its study, and the
estimate with its interval valid over all looks.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tunebook.analysis.study import analyze  # noqa: E402
from tunebook.spec import model_epochs  # noqa: E402


def main(root: str) -> None:
    print("| study | hypothesis | verdict | look (seeds) | Holm | estimate [interval valid over all looks] |")
    print("|---|---|---|---|---|---|")
    decided = total = 0
    spent = 0
    for folder in sorted(p.parent for p in Path(root).glob("*/study.toml")):
        a = analyze(folder)
        spent += model_epochs([r.config for r in a.runs])
        for v in a.verdicts:
            total += 1
            decided += v.verdict != "inconclusive"
            look = v.looks[-1] if v.looks else None
            seeds = v.detail.split("(", 1)[1].split(" seeds", 1)[0] if v.detail.startswith("look") else "—"
            pct = v.hypothesis.metric.endswith("acc") and v.hypothesis.kind in ("compare", "threshold")
            num = (f"{100 * look.estimate:+.2f} % [{100 * look.lo:+.2f}, {100 * look.hi:+.2f}]" if look and pct
                   else (f"{look.estimate:+.3g}" if look else "—"))
            holm = "—" if v.verdict == "inconclusive" else ("yes" if a.survives_holm(v.hypothesis.id) else "no")
            print(f"| {folder.name} | {v.hypothesis.id} | {v.verdict} | {len(v.looks)} ({seeds}) | {holm} | {num} |")
    print(f"\nDecided {decided} of {total} hypotheses; {spent} model-epochs stored (epoch sharing counted once).")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "modellogs")
