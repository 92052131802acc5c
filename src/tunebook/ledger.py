"""The record of a search's proposals: ``<study>/search/proposals.toml``, written by
tunebook before each batch trains, read back to resume a search and to analyse it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import tomli_w

from . import tomlio
from .errors import SpecError
from .search_space import SearchPlan
from .store import write_atomic

LEDGER = Path("search") / "proposals.toml"


@dataclass(frozen=True)
class Proposal:
    """One point the sampler proposed: its number (0, 1, ...), the batch it came in, the
    hyperparameters as sampled, and the sampler's attributes of that trial."""

    number: int
    batch: int
    params: tuple[tuple[str, Any], ...]
    system_attrs: str = "{}"   # JSON: what the sampler stored on the trial (GA generations, CMA state)

    def to_dict(self) -> dict:
        return {"number": self.number, "batch": self.batch, "params": dict(self.params),
                "system_attrs": self.system_attrs}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Proposal":
        return cls(int(d["number"]), int(d["batch"]), tuple(dict(d["params"]).items()), str(d.get("system_attrs", "{}")))



def read_ledger(study_dir: Path, plan: SearchPlan | None = None) -> list[Proposal]:
    """The recorded proposals; with ``plan``, each checked against the search space (an
    edited record with a value outside its distribution would train, then fail in Optuna):
    every problem named, exit 2, nothing trained."""
    import tomllib

    path = study_dir / LEDGER
    if not path.is_file():
        return []
    try:
        doc = tomlio.loads(path.read_text())
        proposals = [Proposal.from_dict(d) for d in doc.get("proposal", [])]
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise SpecError([f"{path}: cannot read the record of proposals ({exc}); move it aside to start the "
                         "search over"]) from None
    if plan is not None:
        problems = [f"{path}: proposal {p.number}: {why}" for p in proposals for why in ledger_problems(p, plan)]
        if problems:
            raise SpecError(problems + [f"{path}: it does not match the study's [search] table; restore it, or "
                                        "move it aside to start the search over"])
    return proposals


def ledger_problems(p: Proposal, plan: SearchPlan) -> list[str]:
    """What is wrong with one recorded proposal for ``plan``'s space."""
    out = []
    params = dict(p.params)
    names = {d.name for d in plan.dimensions}
    for k in params:
        if k not in names:
            out.append(f"{k} is not a searched hyperparameter")
    for d in plan.dimensions:
        if d.name not in params:
            if d.applies(params):
                out.append(f"{d.name} is missing")
            continue
        v = params[d.name]
        if d.kind == "choice":
            if v not in d.choices:
                out.append(f"{d.name} = {v!r} is not one of {list(d.choices)}")
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            out.append(f"{d.name} = {v!r} is not a number")
        elif d.kind == "int" and int(v) != v:
            out.append(f"{d.name} = {v!r} is not an integer")
        elif not (float(d.low) - 1e-12 <= float(v) <= float(d.high) + 1e-12):
            out.append(f"{d.name} = {v!r} is outside its range [{d.low}, {d.high}]")
    return out


def write_ledger(study_dir: Path, proposals: Sequence[Proposal]) -> None:
    path = study_dir / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "# tunebook: what the sampler proposed, batch by batch (written before training)\n"
                 + tomli_w.dumps({"proposal": [p.to_dict() for p in proposals]}))
