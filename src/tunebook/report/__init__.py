"""Write a study's lab-notebook page: ``report/report.md``, ``report/report.html`` and
``report/figures/*.png`` inside the study folder."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Sequence

from ..analysis.study import StudyAnalysis, analyze
from ..errors import StoreIOError
from ..lock import StudyLock
from ..spec import SMOKE_SUFFIX
from ..store import write_atomic
from . import figures
from .document import study_blocks
from .render import to_html, to_markdown


def figure_file(name: str) -> str:
    """A figure's file name from its name (which holds user text, a hypothesis id): letters,
    digits, ``.``, ``_`` and ``-`` only, never a path — so a report writes only in its own
    figures folder, whatever a study file says."""
    import re

    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "figure"
    return f"{safe[:120]}.png"


def _figure_maker(fig_dir: Path):
    def make(name: str, draw, caption: str):
        fname = figure_file(name)
        figures.save(draw(), fig_dir / fname)
        return ("figure", fname, caption)
    return make


def _write(blocks, title: str, out_dir: Path, staging: Path) -> tuple[Path, Path]:
    """Put the staged report in place of the old one. Called under the report lock, so two
    writers take turns; a reader sees the old report or the new one, whole."""
    write_atomic(staging / "report.md", to_markdown(blocks))
    write_atomic(staging / "report.html", to_html(blocks, title, staging / "figures"))
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
        os.rename(out_dir, old)
    try:
        os.rename(staging, out_dir)
    except OSError:
        if old is not None:
            os.rename(old, out_dir)  # the previous report back in place
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out_dir / "report.md", out_dir / "report.html"


def _staging(out_dir: Path) -> Path:
    staging = out_dir.with_name(f".{out_dir.name}.staging-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    (staging / "figures").mkdir(parents=True)
    return staging


def _written(out_dir: Path, make_blocks, title: str) -> tuple[Path, Path]:
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with StudyLock(out_dir.parent, ".report.lock", wait=True):  # reports of one folder take turns
        # under the lock no other writer is mid-way: any staging or old copy is left by a killed one
        for stale in [*out_dir.parent.glob(f".{out_dir.name}.staging-*"), *out_dir.parent.glob(f".{out_dir.name}.old-*")]:
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
        try:
            staging = _staging(out_dir)
        except OSError as exc:
            raise StoreIOError(f"{out_dir}: cannot write the report: {exc.strerror or exc}; nothing was "
                               "changed") from None
        try:
            blocks = make_blocks(_figure_maker(staging / "figures"))
            return _write(blocks, title, out_dir, staging)
        except OSError as exc:  # a full disk mid-way (a figure, the HTML page): the old report stays
            raise StoreIOError(f"{out_dir}: cannot write the report: {exc.strerror or exc}; the previous "
                               "report, if any, is kept") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def write_report(folder: str | Path, analysis: StudyAnalysis | None = None,
                 warn: Callable[[str], None] | None = None) -> tuple[Path, Path]:
    """Analyse ``folder`` (a study folder) and write its report; returns (md, html) paths.
    Runs that were skipped or ignored are listed in the report and passed to ``warn``."""
    folder = Path(folder)
    a = analysis or analyze(folder)
    for p in a.problems:
        if warn is not None:
            warn(p)
    return _written(folder / "report", lambda fig: study_blocks(a, fig), a.spec.title or a.spec.name)


def write_combined_report(folders: Sequence[str | Path], root: str | Path) -> tuple[Path, Path]:
    """One notebook for several studies, ending with the programme's final summary, in
    ``<root>/report/`` — or ``<root>/report.smoke/`` when the studies are smoke tests, so a
    smoke run of a programme never replaces the full programme's page. Mixing smoke tests
    and full studies in one page is refused."""
    from .combined import combined_blocks

    folders = [Path(f) for f in folders]
    smoke = {is_smoke(f) for f in folders}
    if len(smoke) > 1:
        raise ValueError("a combined report mixes smoke tests and full studies: "
                         + ", ".join(f.name for f in folders))
    analyses = [analyze(f) for f in folders]
    root = Path(root)
    name = "report.smoke" if smoke == {True} else "report"
    return _written(root / name, lambda fig: combined_blocks(analyses, fig, root / name), "Experiment log")


def is_smoke(folder: str | Path) -> bool:
    """A smoke test's study folder (``<study>.smoke``, see StudySpec.folder)."""
    return Path(folder).name.endswith(SMOKE_SUFFIX)


__all__ = ["write_report", "write_combined_report"]
