"""Run folders: the contract other tools read.

::

    <root>/<study>/study.toml
    <root>/<study>/runs/<YYYYmmdd-HHMMSS>_<label>_<trial_id>/{config.toml, result.toml, events.out.tfevents.*}

A run folder is assembled under ``runs/.staging-*`` and renamed into place in one
``os.rename``: a folder under ``runs/`` is always whole. Single files are written as
temp file + ``os.replace``. A study folder is locked (:mod:`tunebook.lock`) while a
process reads or writes it.

What tunebook touches: it deletes only its own staging folders and its own earlier
*failed* attempt of a trial it is saving again (a folder with tunebook's name pattern that
reads back as that trial, failed). A folder of that pattern that cannot be read is moved
to ``<study>/set-aside/``; anything else (a backup, a copy, a person's notes) is never
moved or deleted. One trial is one observation: when several folders hold the same trial,
one is used and the others are reported with their paths.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import tomli_w

from . import tomlio
from ._version import __version__
from .errors import StoreError, StoreIOError
from .fileid import identity
from .lock import StudyLock
from .records import STATUSES, TrialResult, unknown_keys
from .records import TrialConfig

#: tunebook's run-folder names: start stamp, an optional label, the trial id.
RUN_NAME = re.compile(r"(?P<stamp>\d{8}-\d{6})_(?:(?P<label>[A-Za-z0-9.+=_-]+)_)?(?P<id>[0-9a-f]{12})")
SET_ASIDE = "set-aside"


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` as temp file + ``os.replace``: the file is the old one or the new one."""
    write_atomic_bytes(path, text.encode("utf-8"))


def _temp_of(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.{pid}.tmp")


def stale_temps(path: Path) -> list[Path]:
    """The temporary copies of ``path`` that :func:`write_atomic_bytes` left half-written in
    a process that no longer runs (killed while it wrote: SIGKILL, a lost machine)."""
    head, tail = f".{path.name}.", ".tmp"
    found = path.parent.glob(f"{head}*{tail}") if path.parent.is_dir() else ()
    return [f for f in found if f.name[len(head):-len(tail)].isdigit()
            and not _running(int(f.name[len(head):-len(tail)]))]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True


def write_atomic_bytes(path: Path, data: bytes) -> None:
    tmp = _temp_of(path, os.getpid())
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _toml_safe(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _toml_safe(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


def safe_label(text: str) -> str:
    """``text`` reduced to the characters a run-folder label may hold."""
    return re.sub(r"[^A-Za-z0-9.+=_-]+", "-", text).strip("-_")[:80]


def is_run_name(name: str, trial_id: str | None = None) -> bool:
    """True for a folder name tunebook gives run folders (of ``trial_id``, when given)."""
    m = RUN_NAME.fullmatch(name)
    return bool(m) and (trial_id is None or m["id"] == trial_id)


@dataclass(frozen=True)
class Run:
    """One stored trial, read back and validated."""

    path: Path
    study: str
    config: TrialConfig
    result: TrialResult
    meta: dict[str, Any]
    notes: tuple[str, ...] = ()   # what was ignored while reading (unknown keys)

    @property
    def trial_id(self) -> str:
        return self.config.trial_id

    @property
    def events(self) -> list[Path]:
        return sorted(self.path.glob("events.out.tfevents.*"))


_CONFIG_SECTIONS = {"trial", "hparams", "data", "env"}


#: Run folders read within :func:`reading`: folder -> (the two files' identities, the Run).
_READS: dict[Path, tuple[tuple, Run]] | None = None


@contextmanager
def reading() -> Iterator[None]:
    """Within it, a run folder read again is not parsed again while its ``config.toml``
    and ``result.toml`` are the same files (inode, size, modification and change times;
    tunebook replaces them whole, so a rewrite is a new inode). For read-only passes that
    read the same runs many times: a programme's reports analyse every study, and each
    analysis reads every other study's runs for the cost model (9 studies: 81 reads of
    each folder's files, now 9). Nested uses share the outer one's reads."""
    global _READS
    if _READS is not None:
        yield
        return
    _READS = {}
    try:
        yield
    finally:
        _READS = None


def read_run(folder: Path) -> Run:
    """Read a run folder; raises ValueError naming the file on anything malformed.

    Keys this version does not know are ignored and listed in ``Run.notes``; a missing or
    invalid value, or a config whose hash is not the recorded trial id, is an error."""
    reads = _READS
    if reads is None:
        return _read_run(folder)
    ident = identity(folder / "config.toml", folder / "result.toml")
    seen = reads.get(folder)
    if ident is not None and seen is not None and seen[0] == ident:
        return seen[1]
    run = _read_run(folder)
    if ident is not None:
        reads[folder] = (ident, run)
    return run


def _read_run(folder: Path) -> Run:
    cfg_path, res_path = folder / "config.toml", folder / "result.toml"
    notes = []
    try:
        raw_cfg = tomlio.loads(cfg_path.read_text(encoding="utf-8"))
        fields = TrialConfig.__dataclass_fields__
        flat = dict(raw_cfg["hparams"]) | {k: v for k, v in raw_cfg["data"].items() if k != "val_is_test"}
        extra = sorted(set(raw_cfg) - _CONFIG_SECTIONS) + sorted(k for k in flat if k not in fields)
        config = TrialConfig.from_dict({k: v for k, v in flat.items() if k in fields})
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{cfg_path}: {_why(exc)}") from None
    if extra:
        notes.append(f"{cfg_path}: ignored keys {', '.join(extra)}")
    try:
        raw_res = tomlio.loads(res_path.read_text(encoding="utf-8"))
        result = TrialResult.from_dict(raw_res)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{res_path}: {_why(exc)}") from None
    if unknown_keys(raw_res):
        notes.append(f"{res_path}: ignored keys {', '.join(unknown_keys(raw_res))}")
    if result.trial_id != config.trial_id or raw_cfg.get("trial", {}).get("id") != config.trial_id:
        raise ValueError(f"{folder}: trial id of config.toml and result.toml disagree with the config's hash "
                         "(was a hyperparameter edited by hand?)")
    # the study is the folder that holds the run (a copy in another study belongs to that one)
    env = raw_cfg.get("env", {})
    if not isinstance(env, dict):  # provenance only: read as unrecorded, said
        notes.append(f"{cfg_path}: ignored env (not a table)")
        env = {}
    return Run(folder, folder.parent.parent.name, config, result, env, tuple(notes))


def remove_staging(folder: Path, tries: int = 5) -> None:
    """Delete one of tunebook's own ``.staging-*`` folders. A TensorBoard writer thread
    that is still closing can add a file while the tree is removed, so try again."""
    for attempt in range(tries):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            return
        time.sleep(0.02 * (attempt + 1))


def _why(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing {exc}"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


@dataclass(frozen=True)
class Scan:
    """What a study's ``runs/`` holds: one run per trial, and what was not used, and why."""

    runs: tuple[Run, ...]
    duplicates: tuple[tuple[str, tuple[Path, ...]], ...] = ()  # (trial id, paths): the used path first
    unreadable: tuple[str, ...] = ()               # "path: why"
    notes: tuple[str, ...] = ()                    # ignored keys in runs that were used

    def messages(self) -> list[str]:
        out = [f"skipped unreadable run: {u}" for u in self.unreadable]
        out += [f"trial {tid} is stored {len(paths)} times (one trial counts once); using {paths[0]}, "
                "ignoring " + ", ".join(str(p) for p in paths[1:]) for tid, paths in self.duplicates]
        return out + list(self.notes)


def _preference(run: Run) -> tuple:
    """Which of several folders of one trial is used: tunebook's name pattern first, then a
    final result, then the earliest name."""
    return (not is_run_name(run.path.name, run.trial_id), not run.result.done, run.path.name)


def scan_runs(runs_dir: Path) -> Scan:
    if not runs_dir.is_dir():
        return Scan(())
    by_id: dict[str, list[Run]] = {}
    unreadable = []
    links = []
    for folder in sorted(runs_dir.iterdir()):
        if folder.name.startswith("."):
            continue
        if folder.is_symlink():  # foreign: never read as a run, never written, moved or deleted through
            links.append(f"{folder} is a symbolic link (to {os.readlink(folder)}): not read as a run, and "
                         "tunebook writes nothing through it; copy the folder in to use it")
            continue
        if not folder.is_dir():
            continue
        try:
            run = read_run(folder)
        except ValueError as exc:
            unreadable.append(str(exc))
            continue
        by_id.setdefault(run.trial_id, []).append(run)
    chosen, dups = [], []
    for tid, runs in by_id.items():
        runs.sort(key=_preference)
        chosen.append(runs[0])
        if len(runs) > 1:
            dups.append((tid, tuple(r.path for r in runs)))
    notes = [n for r in chosen for n in r.notes] + links
    return Scan(tuple(sorted(chosen, key=lambda r: r.path.name)), tuple(dups), tuple(unreadable), tuple(notes))


def _write_weights(folder: Path, config: TrialConfig, state) -> None:
    from . import weights
    from .datasets import DATASETS

    info = DATASETS[config.dataset]
    weights.write(folder / weights.WEIGHTS, state, weights.metadata(config, info.classes, weights.preprocessing_of(info)))


def known_data(study_dir: Path, problems: list[str] | None = None) -> None:
    """Register the dataset a study folder's ``data.toml`` records (its sizes and classes),
    if any and not known yet."""
    from .datasets import DATASETS
    from .userdata import DATA_RECORD, info_from_record

    path = Path(study_dir) / DATA_RECORD
    if not path.is_file():
        return
    try:
        info = info_from_record(tomlio.loads(path.read_text(encoding="utf-8")))
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        if problems is not None:
            problems.append(f"{path}: cannot be read ({type(exc).__name__}: {exc}); tunebook writes it when the "
                            "study runs: run it again")
        return
    DATASETS.setdefault(info.name, info)


class RunStore:
    """The run folders of one study. Use as a context manager to hold its lock."""

    def __init__(self, root: str | Path, study: str, hold: bool = False):
        """``hold``: the lock is held for a whole command (see :class:`~tunebook.lock.StudyLock`'s
        ``nestable``): the command's own later stores of this study get in, nobody else."""
        self.root = Path(root)
        self.dir = self.root / study
        self.study = study
        self.runs_dir = self.dir / "runs"
        self.hold = hold
        self._lock: StudyLock | None = None

    # -- locking -------------------------------------------------------------------
    def __enter__(self) -> "RunStore":
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreIOError(f"{self.dir}: cannot create the study folder: {_why(exc)}") from None
        self._lock = StudyLock(self.dir, nestable=self.hold).acquire()
        for stale in self.runs_dir.glob(".staging-*"):
            remove_staging(stale)  # ours, from a run that was killed
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def locked(self) -> bool:
        return self._lock is not None and self._lock.held

    def start_over(self, stamp: str) -> Path | None:
        """Keep the study folder as ``<study>-<stamp>`` and begin an empty one (lock held
        throughout). Returns where the old folder went, or None when there was nothing."""
        if not self.locked:
            raise StoreError(f"{self.dir}: start_over needs the study lock")
        if not [p for p in self.dir.iterdir() if p.name != ".lock"]:
            return None
        target = self.dir.with_name(f"{self.dir.name}-{stamp}")
        if target.exists():
            raise StoreError(f"{self.dir}: cannot keep the old study as {target}: that folder exists")
        old = self._lock
        try:
            os.rename(self.dir, target)
            self.dir.mkdir()
            self._lock = StudyLock(self.dir, nestable=self.hold).acquire()
        finally:
            old.release()
        return target

    # -- reading -------------------------------------------------------------------
    def scan(self) -> Scan:
        return scan_runs(self.runs_dir)

    def iter_runs(self, problems: list[str] | None = None) -> Iterator[Run]:
        """One readable run per trial; what was skipped or ignored is reported into ``problems``.
        A study of a user's dataset makes its sizes known first (``data.toml``): listing,
        exporting and analysing its runs need them, not the data."""
        known_data(self.dir, problems)
        scan = self.scan()
        if problems is not None:
            problems.extend(m for m in scan.messages() if m not in problems)
        yield from scan.runs

    def completed(self, problems: list[str] | None = None) -> dict[str, Run]:
        """trial_id -> run, for trials whose result is final (complete or diverged)."""
        return {r.trial_id: r for r in self.iter_runs(problems) if r.result.done}

    # -- writing -------------------------------------------------------------------
    def save_study(self, source: str, data: dict | None = None, model: dict | None = None) -> None:
        """The study file as it ran; with ``data`` (a user's dataset's record,
        :func:`tunebook.userdata.record_of`), ``data.toml`` beside it: the study folder then
        says what it was trained on without the data file; with ``model`` (a user's model's
        record, :func:`tunebook.usermodel.record_of`), ``model.toml``."""
        files = [("study.toml", source)]
        if data is not None:
            files.append(("data.toml", "# written by tunebook: the data these runs trained on\n" + tomli_w.dumps(data)))
        if model is not None:
            files.append(("model.toml", "# written by tunebook: the model these runs trained\n" + tomli_w.dumps(model)))
        for name, text in files:
            try:
                write_atomic(self.dir / name, text)
            except OSError as exc:
                raise StoreIOError(f"{self.dir / name}: cannot write: {_why(exc)}") from None

    def save(self, config: TrialConfig, result: TrialResult, started: float | None = None,
             label: str = "", varying: tuple[str, ...] = ()) -> Path:
        """Write one run folder atomically; tunebook's own failed attempt of it is replaced.

        ``label`` (what the run is, e.g. ``128-64_lr0.01_s3``) goes into the folder name, so
        TensorBoard's run names say it; ``varying`` (the study's varying hyperparameters)
        come first in the HParams tab. An ``OSError`` (a full disk, a vanished folder) leaves nothing half-written and is
        raised as :class:`StoreIOError`."""
        from .tboard import write_events

        if result.status not in STATUSES:
            raise ValueError(f"{config.trial_id}: a {result.status} result is not stored (it is on its way, not final)")
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started or time.time()))
        label = safe_label(label)
        final = self.runs_dir / (f"{stamp}_{label}_{config.trial_id}" if label else f"{stamp}_{config.trial_id}")
        staging = self.staging_dir(config.trial_id)
        live = staging.is_dir() and any(staging.glob("events.out.tfevents.*"))
        try:
            if not live:
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
            hp = config.to_dict()
            if not config.model:  # the built-in MLP's config.toml stays as it was
                hp.pop("model")
                hp.pop("model_params")
            data_keys = ("dataset", "validation", "split_seed", "train_subset")
            cfg_doc = {
                "trial": {"id": config.trial_id, "study": self.study},
                "hparams": {k: v for k, v in hp.items() if k not in data_keys},
                "data": {k: hp[k] for k in data_keys} | {"val_is_test": config.validation == "test"},
                "env": env_info(result.device, result.engine),
            }
            write_atomic(staging / "config.toml", tomli_w.dumps(cfg_doc))
            write_atomic(staging / "result.toml", tomli_w.dumps(_toml_safe(result.to_dict())))
            if result.weights is not None:  # the study keeps trained weights (tunebook.weights)
                _write_weights(staging, config, result.weights)
            write_events(staging, config, result, varying=varying, scalars=not live)
            self._clear_earlier(config.trial_id)
            n = 1
            while final.exists() or final.is_symlink():  # a name taken (a copy, a foreign link): never replaced
                n += 1
                final = self.runs_dir / f"{stamp}_{label + '-' if label else ''}{n}_{config.trial_id}"
            os.rename(staging, final)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise StoreIOError(f"{final}: cannot write the run folder: {_why(exc)}; nothing of it was kept") from None
        except BaseException:  # Ctrl-C or SIGTERM mid-write: no half-assembled folder stays behind
            remove_staging(staging)
            raise
        return final

    def staging_dir(self, trial_id: str) -> Path:
        """Where a run folder of ``trial_id`` is assembled by this process."""
        return self.runs_dir / f".staging-{trial_id}-{os.getpid()}"

    def open_live(self, trial_id: str) -> Path:
        """An empty staging folder for a trial about to train (live TensorBoard scalars go
        there; :meth:`save` completes it)."""
        staging = self.staging_dir(trial_id)
        try:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
        except OSError as exc:
            raise StoreIOError(f"{staging}: cannot create: {_why(exc)}") from None
        return staging

    def _clear_earlier(self, trial_id: str) -> None:
        """Make room for a new result of ``trial_id``: remove tunebook's failed attempts of it,
        move its unreadable folders aside, leave everything else alone."""
        for folder in sorted(self.runs_dir.iterdir()):
            if folder.is_symlink() or not folder.is_dir() or not is_run_name(folder.name, trial_id):
                continue  # a link is foreign: left alone
            try:
                run = read_run(folder)
            except ValueError:
                self.set_aside(folder)
                continue
            if run.trial_id == trial_id and run.result.status in ("failed", "pruned"):
                shutil.rmtree(folder)  # an earlier attempt tunebook wrote and the new one replaces

    def set_aside(self, folder: Path) -> Path:
        """Move a run folder that cannot be used out of ``runs/`` (never delete it)."""
        target_dir = self.dir / SET_ASIDE
        target_dir.mkdir(exist_ok=True)
        target = target_dir / folder.name
        n = 1
        while target.exists():
            n += 1
            target = target_dir / f"{folder.name}.{n}"
        os.rename(folder, target)
        return target

    def restore_events(self, run: Run) -> bool:
        """Write the TensorBoard events of a stored run whose events file is gone (from its
        result.toml). Only in tunebook's own run folders. Returns True when it wrote one."""
        from .tboard import write_events

        if run.events or not is_run_name(run.path.name, run.trial_id):
            return False
        try:
            write_events(run.path, run.config, run.result)
        except OSError as exc:
            raise StoreIOError(f"{run.path}: cannot restore the events file: {_why(exc)}") from None
        return True


def env_info(device: str, engine: str) -> dict[str, str]:
    import torch

    return {"tunebook": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "device": device, "engine": engine, "host": os.uname().nodename}


def find_studies(root: str | Path) -> list[Path]:
    """Study folders under ``root`` (folders holding a study.toml), or root itself."""
    root = Path(root)
    if (root / "study.toml").is_file():
        return [root]
    return sorted(p.parent for p in root.glob("*/study.toml"))
