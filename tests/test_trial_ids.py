"""Trial ids are the store's keys: they must not move when the code does."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from tunebook.execute import run_studies
from tunebook.records import ID_DEFAULTS
from tunebook.spec import ID_FIELDS_V1, TrialConfig, load_spec, trial_id_of

ROOT = Path(__file__).resolve().parents[1]
LEGACY = Path(__file__).parent / "data" / "legacy-620b29d"


def test_todays_ids_are_pinned():
    first = load_spec(ROOT / "examples" / "quickstart.toml").configs()[0]
    assert first.trial_id == "594774f9181b"
    # every field is hashed since the first release, or added later with its default
    assert set(TrialConfig.__dataclass_fields__) == set(ID_FIELDS_V1) | set(ID_DEFAULTS)
    assert {k: first.to_dict()[k] for k in ID_DEFAULTS} == ID_DEFAULTS  # its later fields at their defaults


def test_label_smoothing_and_init_change_the_id_only_away_from_their_defaults():
    cfg = load_spec(ROOT / "examples" / "quickstart.toml").configs()[0]
    assert dataclasses.replace(cfg, label_smoothing=0.0, init="default").trial_id == "594774f9181b"
    ids = {dataclasses.replace(cfg, label_smoothing=0.1).trial_id, dataclasses.replace(cfg, init="he").trial_id,
           dataclasses.replace(cfg, init="glorot").trial_id}
    assert len(ids) == 3 and "594774f9181b" not in ids


def test_a_new_field_at_its_default_leaves_the_id_as_it_was():
    cfg = load_spec(ROOT / "examples" / "quickstart.toml").configs()[0]
    fields = cfg.to_dict()
    later = {"schedule": "constant"}  # a field a later version might add, at its default
    assert trial_id_of(fields | later, ID_DEFAULTS | later) == cfg.trial_id
    assert trial_id_of(fields | {"schedule": "cosine"}, ID_DEFAULTS | later) != cfg.trial_id


def test_a_study_folder_written_at_620b29d_resumes_with_nothing_retrained(tmp_path):
    """Run folders written by the code of commit 620b29d (tests/data/legacy-620b29d) are
    found by today's: the ids they carry are the ids today's code computes."""
    out = tmp_path / "out"
    shutil.copytree(LEGACY / "out-legacy", out / "legacy")
    spec = load_spec(LEGACY / "legacy.toml")
    (o,) = run_studies([spec], out, device="cpu")
    assert o.trained == 0 and len(o.runs) == 4 and o.skipped == 4
    assert {r.trial_id for r in o.runs} == {c.trial_id for c in spec.configs()}
