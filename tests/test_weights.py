"""Trained weights kept: a kept run's model reproduces its stored validation accuracy
exactly (same device), for either engine and a padded stack; the README's plain-PyTorch
recipe gives the same predictions; keep = best / all / none; `tunebook predict`."""

from __future__ import annotations

import re
import subprocess
import tomllib

import numpy as np
import pytest
import torch

import tunebook
from conftest import ROOT, tunebook_cmd
from tunebook.data import load_dataset
from tunebook.errors import StoreError
from tunebook.spec import parse_spec
from tunebook.weights import WEIGHTS, load_model

STUDY = '''[study]
name = "kept"
seeds = 2
train_subset = 1500
keep = "{keep}"
[defaults]
layers = [16]
epochs = 2
[grid]
units1 = [8, 24]
'''


def _runs(folder):
    return sorted(p for p in (folder / "runs").iterdir() if not p.name.startswith("."))


def _val_acc(model, run) -> float:
    cfg = tomllib.loads((run / "config.toml").read_text())["data"]
    ds = load_dataset(cfg["dataset"], cfg["validation"], cfg["split_seed"], cfg["train_subset"])
    with torch.no_grad():
        pred = model.module(torch.from_numpy(ds.x_val)).argmax(1).numpy()
    return float((pred == ds.y_val).mean())


@pytest.mark.parametrize("engine", ["stacked", "reference"])
def test_a_kept_run_reproduces_its_validation_accuracy_exactly(tmp_path, engine):
    spec = parse_spec(STUDY.format(keep="all"))
    outcome = tunebook.run_study(spec, tmp_path, device="cpu", engine=engine)  # 8 and 24 share a padded stack
    runs = _runs(outcome.folder)
    assert len(runs) == 4 and all((r / WEIGHTS).is_file() for r in runs)
    for run in runs:
        stored = tomllib.loads((run / "result.toml").read_text())
        model = load_model(run)
        assert _val_acc(model, run) == stored["val_acc"]
        layers = tomllib.loads((run / "config.toml").read_text())["hparams"]["layers"]
        assert [m.out_features for m in model.module if isinstance(m, torch.nn.Linear)] == [*layers, 10]


def test_the_readme_s_plain_pytorch_recipe_predicts_as_load_model(tmp_path):
    outcome = tunebook.run_study(parse_spec(STUDY.format(keep="all")), tmp_path, device="cpu")
    run = _runs(outcome.folder)[0]
    readme = (ROOT / "README.md").read_text()
    recipe = re.search(r"<!-- plain-pytorch-recipe -->\n```python\n(.*?)```", readme, re.S).group(1)
    images = np.random.default_rng(0).integers(0, 256, size=(50, 28, 28)).astype(np.uint8)
    scope = {"run": str(run), "rows": images}
    exec(recipe, scope)  # noqa: S102 - the README's own code, as a user would paste it
    assert scope["predicted"] == load_model(run).predict(images)


def test_keep_best_keeps_the_recommended_configuration_s_runs_only(tmp_path):
    outcome = tunebook.run_study(parse_spec(STUDY.format(keep="best")), tmp_path, device="cpu")
    from tunebook.analysis.study import analyze

    a = analyze(outcome.folder)
    kept = {r.name for r in _runs(outcome.folder) if (r / WEIGHTS).is_file()}
    winner = {r.path.name for r in a.runs if r.config.layers == a.winners.accuracy.config.layers}
    assert kept == winner and len(kept) == 2
    assert sorted(tunebook.keep_best(outcome.folder)) == sorted(r for r in _runs(outcome.folder) if r.name in kept)


def test_keep_best_analyses_nothing_where_no_run_kept_weights(tmp_path, monkeypatch):
    from tunebook.analysis import study

    outcome = tunebook.run_study(parse_spec(STUDY.format(keep="best")), tmp_path, device="cpu")
    for run in _runs(outcome.folder):
        (run / WEIGHTS).unlink(missing_ok=True)
    monkeypatch.setattr(study, "analyze", lambda *a, **k: pytest.fail("analysed with nothing to choose"))
    assert tunebook.keep_best(outcome.folder) == []


def test_keep_none_writes_no_weights(tmp_path):
    outcome = tunebook.run_study(parse_spec(STUDY.format(keep="none")), tmp_path, device="cpu")
    assert not any((r / WEIGHTS).exists() for r in _runs(outcome.folder))
    with pytest.raises(StoreError, match="no weights.safetensors \\(its weights were not kept"):
        load_model(_runs(outcome.folder)[0])


def test_a_bad_keep_is_refused():
    with pytest.raises(tunebook.SpecError, match='study.keep: must be "best"'):
        parse_spec(STUDY.format(keep="some"))


def test_predict_writes_the_classes_of_a_csv_with_the_training_preprocessing(tmp_path, cli_env):
    from tests.test_userdata import STUDY as FLOWERS
    from tests.test_userdata import flowers

    flowers(tmp_path / "flowers.csv")
    (tmp_path / "flowers.toml").write_text(FLOWERS.replace('seeds = 2', 'seeds = 2\nkeep = "all"'))
    out = tmp_path / "out"
    r = subprocess.run(tunebook_cmd("run", str(tmp_path / "flowers.toml"), "--out", str(out), "--device", "cpu",
                                    "--quiet", "--no-report"), env=cli_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = _runs(out / "flowers")[0]
    flowers(tmp_path / "new.csv", rows=9, seed=5)
    p = subprocess.run(tunebook_cmd("predict", str(run), str(tmp_path / "new.csv")), env=cli_env,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.strip().splitlines()
    assert lines[0] == "row,class,p_setosa,p_versicolor,p_virginica" and len(lines) == 10
    import csv

    with open(tmp_path / "new.csv") as f:
        table = {k: [row[k] for row in csv.DictReader(open(tmp_path / "new.csv"))] for k in next(csv.reader(f))}
    assert [line.split(",")[1] for line in lines[1:]] == load_model(run).predict(table)
    (tmp_path / "taken.csv").write_text("mine")
    q = subprocess.run(tunebook_cmd("predict", str(run), str(tmp_path / "new.csv"), "--out",
                                    str(tmp_path / "taken.csv")), env=cli_env, capture_output=True, text=True)
    assert q.returncode == 2 and "exists; tunebook does not overwrite a file it did not write" in q.stderr
    assert (tmp_path / "taken.csv").read_text() == "mine"


def test_tunebook_keep_retrains_a_pruned_run_and_keep_best_leaves_it(tmp_path, cli_env):
    spec = parse_spec(STUDY.format(keep="best"))
    outcome = tunebook.run_study(spec, tmp_path, device="cpu", pad=False)
    gone = [r for r in _runs(outcome.folder) if not (r / WEIGHTS).is_file()]
    assert len(gone) == 2
    p = subprocess.run(tunebook_cmd("keep", str(gone[0])), env=cli_env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"kept {gone[0]} (trained again alone: its curves ")
    assert (gone[0] / WEIGHTS).is_file()
    assert tomllib.loads((outcome.folder / "keep.toml").read_text())["keep"] == [
        tomllib.loads((gone[0] / "config.toml").read_text())["trial"]["id"]]
    # measured here: a run that trained in a 2-member stack retrains alone to within 1e-8 of
    # its stored curves; the command says how close it came
    close = re.search(r"differ from the stored ones by at most ([0-9.e+-]+)", p.stdout)
    assert ("bit for bit" in p.stdout) or (close and float(close.group(1)) < 1e-5), p.stdout
    tunebook.keep_best(outcome.folder)  # a named run survives the next pruning
    assert (gone[0] / WEIGHTS).is_file() and not (gone[1] / WEIGHTS).is_file()
    q = subprocess.run(tunebook_cmd("keep", str(tmp_path / "nope")), env=cli_env, capture_output=True, text=True)
    assert q.returncode == 2 and "no such run folder" in q.stderr
