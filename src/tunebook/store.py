"""Run folders: the contract other tools read.

::

    <root>/<study>/study.toml
    <root>/<study>/runs/<YYYYmmdd-HHMMSS>_<trial_id>/{config.toml, result.toml, events.out.tfevents.*}

A run folder is assembled under ``runs/.staging-*`` and renamed into place in one
``os.rename``: a folder under ``runs/`` is always whole. Single files are written as
temp file + ``os.replace``. A study folder is locked (``.lock`` holding the owner's pid)
while a process writes to it; a lock whose process is gone is taken over.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import tomli_w

from . import __version__
from .errors import StoreError
from .records import TrialResult
from .spec import TrialConfig


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _toml_safe(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _toml_safe(v) if isinstance(v, dict) else v for k, v in d.items() if v is not None}


@dataclass(frozen=True)
class Run:
    """One stored trial, read back and validated."""

    path: Path
    study: str
    config: TrialConfig
    result: TrialResult
    meta: dict[str, Any]

    @property
    def trial_id(self) -> str:
        return self.config.trial_id


def read_run(folder: Path) -> Run:
    """Read a run folder; raises ValueError naming the file on anything malformed."""
    cfg_path, res_path = folder / "config.toml", folder / "result.toml"
    try:
        raw_cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        data = {k: v for k, v in raw_cfg["data"].items() if k != "val_is_test"}
        config = TrialConfig.from_dict(raw_cfg["hparams"] | data)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{cfg_path}: {exc}") from None
    try:
        raw_res = tomllib.loads(res_path.read_text(encoding="utf-8"))
        result = TrialResult.from_dict(raw_res)
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{res_path}: {exc}") from None
    if result.trial_id != config.trial_id or raw_cfg.get("trial", {}).get("id") != config.trial_id:
        raise ValueError(f"{folder}: trial id of config.toml and result.toml disagree with the config's hash")
    return Run(folder, raw_cfg.get("trial", {}).get("study", folder.parent.parent.name), config, result,
               raw_cfg.get("env", {}))


class RunStore:
    """The run folders of one study. Use as a context manager to hold its lock."""

    def __init__(self, root: str | Path, study: str):
        self.root = Path(root)
        self.dir = self.root / study
        self.study = study
        self.runs_dir = self.dir / "runs"
        self._locked = False

    # -- locking -------------------------------------------------------------------
    def __enter__(self) -> "RunStore":
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        lock = self.dir / ".lock"
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                os.write(fd, str(os.getpid()).encode())
                os.close(fd)
                self._locked = True
                break
            except FileExistsError:
                owner = _read_pid(lock)
                if owner is not None and _alive(owner):
                    raise StoreError(f"{self.dir}: in use by process {owner} (lock {lock}); "
                                     "wait for it or stop it") from None
                lock.unlink(missing_ok=True)  # its process is gone: a stale lock
        for stale in self.runs_dir.glob(".staging-*"):
            shutil.rmtree(stale, ignore_errors=True)  # from a run that was killed
        return self

    def __exit__(self, *exc: object) -> None:
        if self._locked:
            (self.dir / ".lock").unlink(missing_ok=True)
            self._locked = False

    # -- reading -------------------------------------------------------------------
    def iter_runs(self, problems: list[str] | None = None) -> Iterator[Run]:
        """Every readable run; unreadable ones are reported into ``problems`` and skipped."""
        if not self.runs_dir.is_dir():
            return
        for folder in sorted(self.runs_dir.iterdir()):
            if folder.name.startswith(".") or not folder.is_dir():
                continue
            try:
                yield read_run(folder)
            except ValueError as exc:
                if problems is not None:
                    problems.append(str(exc))

    def completed(self, problems: list[str] | None = None) -> dict[str, Run]:
        """trial_id -> run, for trials whose result is final (complete or diverged)."""
        return {r.trial_id: r for r in self.iter_runs(problems) if r.result.done}

    # -- writing -------------------------------------------------------------------
    def save_study(self, source: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.dir / "study.toml", source)

    def save(self, config: TrialConfig, result: TrialResult, started: float | None = None) -> Path:
        """Write one run folder atomically; an earlier unfinished result for it is replaced."""
        from .tboard import write_events

        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started or time.time()))
        staging = self.runs_dir / f".staging-{config.trial_id}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        hp = config.to_dict()
        data_keys = ("dataset", "validation", "split_seed", "train_subset")
        cfg_doc = {
            "trial": {"id": config.trial_id, "study": self.study},
            "hparams": {k: v for k, v in hp.items() if k not in data_keys},
            "data": {k: hp[k] for k in data_keys} | {"val_is_test": config.validation == "test"},
            "env": env_info(result.device, result.engine),
        }
        write_atomic(staging / "config.toml", tomli_w.dumps(cfg_doc))
        write_atomic(staging / "result.toml", tomli_w.dumps(_toml_safe(result.to_dict())))
        write_events(staging, config, result)
        final = self.runs_dir / f"{stamp}_{config.trial_id}"
        for old in self.runs_dir.glob(f"*_{config.trial_id}"):
            shutil.rmtree(old)  # a failed earlier attempt of the same trial
        os.rename(staging, final)
        return final


def env_info(device: str, engine: str) -> dict[str, str]:
    import torch

    return {"tunebook": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
            "device": device, "engine": engine, "host": os.uname().nodename}


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_studies(root: str | Path) -> list[Path]:
    """Study folders under ``root`` (folders holding a study.toml), or root itself."""
    root = Path(root)
    if (root / "study.toml").is_file():
        return [root]
    return sorted(p.parent for p in root.glob("*/study.toml"))
