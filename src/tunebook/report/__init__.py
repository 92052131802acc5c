"""Write a study's lab-notebook page: ``report/report.md``, ``report/report.html`` and
``report/figures/*.png`` inside the study folder."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Sequence

from ..analysis.study import StudyAnalysis, analyze
from ..store import write_atomic
from . import figures
from .document import study_blocks
from .render import to_html, to_markdown


def _figure_maker(fig_dir: Path):
    def make(name: str, draw, caption: str):
        fname = f"{name}.png"
        figures.save(draw(), fig_dir / fname)
        return ("figure", fname, caption)
    return make


def _write(blocks, title: str, out_dir: Path, staging: Path) -> tuple[Path, Path]:
    write_atomic(staging / "report.md", to_markdown(blocks))
    write_atomic(staging / "report.html", to_html(blocks, title, staging / "figures"))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir / "report.md", out_dir / "report.html"


def _staging(out_dir: Path) -> Path:
    staging = out_dir.with_name(f".{out_dir.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "figures").mkdir(parents=True)
    return staging


def write_report(folder: str | Path, analysis: StudyAnalysis | None = None) -> tuple[Path, Path]:
    """Analyse ``folder`` (a study folder) and write its report; returns (md, html) paths."""
    folder = Path(folder)
    a = analysis or analyze(folder)
    out_dir = folder / "report"
    staging = _staging(out_dir)
    blocks = study_blocks(a, _figure_maker(staging / "figures"))
    return _write(blocks, a.spec.title or a.spec.name, out_dir, staging)


def write_combined_report(folders: Sequence[str | Path], root: str | Path) -> tuple[Path, Path]:
    """One notebook for several studies, ending with the programme's final summary."""
    from .combined import combined_blocks

    analyses = [analyze(f) for f in folders]
    out_dir = Path(root) / "report"
    staging = _staging(out_dir)
    blocks = combined_blocks(analyses, _figure_maker(staging / "figures"))
    return _write(blocks, "Experiment log", out_dir, staging)


__all__ = ["write_report", "write_combined_report"]
