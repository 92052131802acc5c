"""Checkpoints: a stacked group's state at the end of an epoch, so that a group stopped
by a budget, Ctrl-C, SIGTERM, a lost worker or a killed machine goes on from there.

A checkpoint belongs to a *group* — the trials trained together as one stack — because
a member's arithmetic is exact only at the stack shape it trained in: the next run
trains the same group again (:func:`resumable` hands it to the driver before planning)
and loads its state. Resumed numbers equal an uninterrupted run's bit for bit on the CPU:
the engine's randomness is counter-based (data order and dropout are functions of seed,
epoch and step), and the state is the whole of what training changes — parameters,
optimizer moments and step counters, the curves so far, which members still train, and
the weights kept at members' ends.

Files, under ``<out>/.checkpoints/`` (tunebook's own folder; nothing else is touched):

- ``<key>.pt``: the state (``torch.save``; read back with ``weights_only=True``, so a
  file cannot run code); ``<key>`` hashes the engine and the group's trial ids in order;
- ``<key>.toml``: what it holds — trial ids, epoch, versions, bytes — read to plan.

One file per group in training, replaced atomically at most every ``every`` seconds
(``RunOptions.checkpoint_every``; 0: every epoch) and at a budget stop or a Ctrl-C at an
epoch's end; removed once the group's results are stored, or when its trials are final
by other means. A file from another tunebook or torch version, or one that cannot be
read, is not used: its trials train from their first epoch, with a warning.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ._version import __version__
from .records import TrialConfig
from .store import stale_temps, write_atomic, write_atomic_bytes

FOLDER = ".checkpoints"
FORMAT = 1


class CheckpointWarning(UserWarning):
    """A checkpoint that could not be used: its group trains from the start."""


def root_of(out: str | Path) -> Path:
    return Path(out) / FOLDER


def group_key(group: Sequence[TrialConfig], engine: str) -> str:
    blob = json.dumps([engine, [c.trial_id for c in group]])
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _versions() -> dict[str, str]:
    import torch

    return {"tunebook": __version__, "torch": str(torch.__version__)}


@dataclass(frozen=True)
class Saved:
    """A checkpoint's description (its ``.toml``)."""

    key: str
    engine: str
    trials: tuple[str, ...]
    epoch: int
    bytes: int
    tunebook: str
    torch: str


def describe(root: Path) -> list[Saved]:
    """Every readable checkpoint description under ``root`` (unreadable ones are skipped:
    :func:`resumable` removes them)."""
    out = []
    for path in sorted(root.glob("*.toml")) if root.is_dir() else []:
        try:
            d = tomllib.loads(path.read_text(encoding="utf-8"))
            out.append(Saved(path.stem, str(d["engine"]), tuple(d["trials"]), int(d["epoch"]), int(d["bytes"]),
                             str(d["tunebook"]), str(d["torch"])))
        except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError):
            continue
    return out


def resumable(root: Path, todo: Sequence[TrialConfig], final: "set[str] | frozenset[str]",
              engine: str) -> tuple[list[list[TrialConfig]], list[str]]:
    """The groups to train first, as they were, because a checkpoint holds their state;
    and a note for each checkpoint removed instead (some of its trials final by now, another
    version, unreadable). ``todo``: the trials this call trains; ``final``: the trial ids
    stored final. A checkpoint of trials this call does not train is left alone."""
    by_id = {c.trial_id: c for c in todo}
    groups, notes = [], []
    if not root.is_dir():
        return groups, notes
    described = {s.key: s for s in describe(root)}
    now = _versions()
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.suffix not in (".pt", ".toml"):
            continue
        key = path.stem
        s = described.get(key)
        if s is None:
            if path.suffix == ".toml" or not (root / f"{key}.toml").exists():
                notes.append(f"{path}: an unreadable checkpoint, removed; its group trains from the start")
                clear(root, key)
            continue
        if path.suffix == ".toml":
            continue
        why = ""
        if s.engine != engine:
            why = f"it is of the {s.engine} engine, this run uses {engine}"
        elif (s.tunebook, s.torch) != (now["tunebook"], now["torch"]):
            why = (f"it was written by tunebook {s.tunebook} with torch {s.torch} (now {now['tunebook']}, "
                   f"{now['torch']}), whose numbers may differ")
        elif all(t in final for t in s.trials):
            clear(root, key)  # stored since (another call trained it): nothing to say
            continue
        elif any(t in final for t in s.trials):
            why = "some of its trials are final by now"
        elif not all(t in by_id for t in s.trials):
            continue  # another call's (other studies): not this one's to use or remove
        if why:
            notes.append(f"{root / key}.pt: a checkpoint at epoch {s.epoch} not used ({why}); removed, its trials "
                         "train from their first epoch")
            clear(root, key)
            continue
        groups.append([by_id[t] for t in s.trials])
    taken: set[str] = set()
    unique = []
    for g in groups:  # a trial in two checkpoints (never written so; a hand-copied file): the first wins
        if not taken & {c.trial_id for c in g}:
            unique.append(g)
            taken |= {c.trial_id for c in g}
    return unique, notes


def clear(root: Path, key: str) -> None:
    """Remove a group's checkpoint, and the half-written copies a killed writer left of it
    (:func:`tunebook.store.stale_temps`)."""
    for suffix in (".pt", ".toml"):
        path = root / f"{key}{suffix}"
        path.unlink(missing_ok=True)
        for tmp in stale_temps(path):
            tmp.unlink(missing_ok=True)


def disk_use(root: Path, trials: "set[str] | frozenset[str] | None" = None) -> tuple[int, int]:
    """(checkpoints, bytes) under ``root``; with ``trials``, only the checkpoints of groups
    holding one of them (a study's, not every study's under the same root)."""
    if trials is None:
        files = list(root.glob("*.pt")) if root.is_dir() else []
    else:
        files = [root / f"{s.key}.pt" for s in describe(root) if set(s.trials) & trials]
    sizes = []
    for f in files:
        try:
            sizes.append(f.stat().st_size)
        except OSError:
            continue  # removed meanwhile, or described without its state
    return len(sizes), sum(sizes)


class GroupCheckpoint:
    """One group's checkpoint, as an engine uses it: ``load()`` at the start (None: train
    from the first epoch), ``due()`` at every epoch's end, ``save(state)``."""

    def __init__(self, root: str | Path, group: Sequence[TrialConfig], engine: str, every: float = 60.0):
        self.root = Path(root)
        self.key = group_key(group, engine)
        self.trials = tuple(c.trial_id for c in group)
        self.engine, self.every = engine, every
        self.last = time.monotonic()
        self.pt, self.toml = self.root / f"{self.key}.pt", self.root / f"{self.key}.toml"

    def load(self) -> dict[str, Any] | None:
        if not self.pt.is_file():
            return None
        import torch

        try:
            state = torch.load(self.pt, map_location="cpu", weights_only=True)
            ok = (isinstance(state, dict) and state.get("format") == FORMAT and tuple(state.get("trials", ())) == self.trials
                  and state.get("versions") == _versions())
        except Exception as exc:  # noqa: BLE001 - any unreadable file: train from the start
            ok, state = False, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        if not ok:
            why = state if isinstance(state, str) else "another group's, format or version"
            warnings.warn(f"{self.pt}: checkpoint not used ({why}); the group trains from its first epoch",
                          CheckpointWarning, stacklevel=2)
            clear(self.root, self.key)
            return None
        return state

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.every

    def save(self, state: dict[str, Any]) -> None:
        import torch

        self.root.mkdir(parents=True, exist_ok=True)
        v = _versions()
        buf = io.BytesIO()
        torch.save({"format": FORMAT, "trials": list(self.trials), "versions": v, **state}, buf)
        write_atomic_bytes(self.pt, buf.getvalue())
        write_atomic(self.toml, f"# tunebook checkpoint: the state of a stacked group at the end of an epoch\n"
                                f"engine = {json.dumps(self.engine)}\nepoch = {int(state['epoch'])}\n"
                                f"bytes = {buf.tell()}\ntunebook = {json.dumps(v['tunebook'])}\n"
                                f"torch = {json.dumps(v['torch'])}\ntrials = {json.dumps(list(self.trials))}\n")
        self.last = time.monotonic()
