"""Regression: a numeric target (inferred where unambiguous, or told), MSE training in both
engines (stacked = reference), errors in the target's units (val_rmse, val_mae, val_r2),
lower-is-better everywhere — verdicts, rankings, searches — the collapsed rule (no better
than the mean), kept weights that predict numbers, and every bad input named."""

from __future__ import annotations

import math
import subprocess
import tomllib

import numpy as np
import pytest
import torch

import tunebook
from conftest import ROOT, tunebook_cmd
from tunebook.data import load_dataset
from tunebook.engine import reference, stacked
from tunebook.engine.common import DeviceData
from tunebook.errors import SpecError
from tunebook.spec import load_spec, parse_spec

from tests.engine.test_stacked import LOSS_TOL

DIABETES = ROOT / "examples" / "regression" / "diabetes.toml"


def table(tmp_path, y, name="t.csv", n=None):
    """A CSV of two features and target ``y`` (a function of the features, plus noise)."""
    rng = np.random.default_rng(0)
    n = n or len(y)
    a, b = rng.normal(size=n), rng.normal(size=n)
    path = tmp_path / name
    rows = ["a,b,y"] + [f"{x:.5f},{z:.5f},{t}" for x, z, t in zip(a, b, y(a, b, rng))]
    path.write_text("\n".join(rows) + "\n")
    return path


def study(tmp_path, csv, extra_study="", data="", defaults="layers = [16]\nepochs = 3", grid="", hyps=""):
    f = tmp_path / "s.toml"
    f.write_text(f'[study]\nname = "reg"\ndataset = "{csv.name}"\nseeds = 2\n{extra_study}\n'
                 + (f"[data]\n{data}\n" if data else "") + f"[defaults]\n{defaults}\n"
                 + (f"[grid]\n{grid}\n" if grid else "") + hyps)
    return f


@pytest.fixture(scope="module")
def diabetes():
    spec = load_spec(DIABETES)
    ds = load_dataset(spec.dataset, spec.validation, spec.split_seed)
    return spec, DeviceData.from_dataset(ds, "cpu")


# --- the data ---------------------------------------------------------------------------

def test_a_target_of_numbers_that_are_not_whole_is_a_regression_and_says_so(tmp_path):
    csv = table(tmp_path, lambda a, b, r: np.round(2 * a - b + 0.1 * r.normal(size=len(a)), 4), n=300)
    spec = load_spec(study(tmp_path, csv))
    from tunebook.datasets import DATASETS

    info = DATASETS[spec.dataset]
    assert info.task == "regression" and info.n_classes == 0 and info.n_outputs == 1 and info.target == "y"
    assert spec.metric == "val_rmse"  # the default for a regression
    assert info.target_sd > 0 and abs(info.target_mean) < 1
    assert len(info.class_counts) == 10 and sum(info.class_counts) == info.n_train  # the deciles' strata
    ds = load_dataset(spec.dataset, 0.1)
    assert ds.y_train.dtype == np.float32 and abs(float(np.concatenate([ds.y_train, ds.y_val]).mean())) < 0.2
    assert len(ds.y_val) == round(0.1 * info.n_train) or abs(len(ds.y_val) - 0.1 * info.n_train) <= 5
    p = subprocess.run(tunebook_cmd("validate", str(tmp_path / "s.toml")), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("y, data, message", [
    (lambda a, b, r: r.integers(0, 40, size=len(a)), "",
     "column 'y' (the target) holds 40 distinct whole numbers — class labels or a quantity? Say which in the "
     'study file: [data] task = "classification" or task = "regression"'),
    (lambda a, b, r: np.where(a > 0, "hi", "lo"), 'task = "regression"',
     "column 'y' (the target): data.task = \"regression\" needs numbers; 300 rows are not (the first: row 1, "),
    (lambda a, b, r: a, 'task = "numbers"', 'data.task: must be "classification" or "regression", got \'numbers\''),
])
def test_an_unclear_or_wrong_task_is_named(tmp_path, y, data, message):
    csv = table(tmp_path, y, n=300)
    with pytest.raises(SpecError) as exc:
        load_spec(study(tmp_path, csv, data=data))
    assert any(message in p for p in exc.value.problems), exc.value.problems


def test_told_a_whole_number_target_is_classes_or_a_quantity(tmp_path):
    counts = table(tmp_path, lambda a, b, r: r.integers(0, 40, size=len(a)), n=400)
    from tunebook.datasets import DATASETS

    reg = load_spec(study(tmp_path, counts, data='task = "regression"'))
    assert DATASETS[reg.dataset].task == "regression"
    few = table(tmp_path, lambda a, b, r: (a > 0).astype(int) + (b > 0).astype(int), name="few.csv", n=300)
    assert DATASETS[load_spec(study(tmp_path, few)).dataset].task == "classification"  # 3 whole numbers: classes


@pytest.mark.parametrize("extra_study, defaults, hyps, message", [
    ('metric = "val_acc"', "layers = [16]", "", "study.metric: is an accuracy: a regression target measures val_rmse"),
    ("", "layers = [16]\nlabel_smoothing = 0.1", "", "defaults.label_smoothing: smooths class labels: not for a regression"),
    ("", "layers = [16]", '[[hypothesis]]\nid = "H"\nkind = "threshold"\nmetric = "test_acc"\n'
     "select = { layers = [16] }\nat_least = 0.5\n", "hypothesis[0] (H).metric: is an accuracy"),
])
def test_classification_settings_on_a_regression_are_refused(tmp_path, extra_study, defaults, hyps, message):
    csv = table(tmp_path, lambda a, b, r: np.round(a + b, 4), n=200)
    with pytest.raises(SpecError) as exc:
        load_spec(study(tmp_path, csv, extra_study=extra_study, defaults=defaults, hyps=hyps))
    assert any(message in p for p in exc.value.problems), exc.value.problems


def test_regression_metrics_on_a_classifier_are_refused():
    with pytest.raises(SpecError) as exc:
        parse_spec('[study]\nname = "c"\nmetric = "val_rmse"\n[defaults]\nregression_loss = "huber"\n', where="c.toml")
    assert any("study.metric: measures a regression's errors: this dataset's target is class labels" in p
               for p in exc.value.problems), exc.value.problems
    assert any("defaults.regression_loss: is a numeric target's loss: a classifier trains with cross-entropy" in p
               for p in exc.value.problems), exc.value.problems


# --- the engines --------------------------------------------------------------------------

@pytest.mark.parametrize("defaults, grid", [
    ("layers = [32, 16]\nepochs = 8\nbatch_size = 32", ""),
    ('epochs = 6\nbatch_size = 32\ndropout = 0.1\noptimizer = "sgd"\nlr = 0.02', "layers = [[32], [12]]"),
    ('layers = [24, 24]\nepochs = 6\nbatch_size = 32\nnorm = "batch"\nresidual = true\nschedule = "cosine"', ""),
    ('epochs = 6\nbatch_size = 32\nregression_loss = "huber"\noptimizer = "momentum"\nlr = 0.01',
     "layers = [[16, 8], [8, 16]]"),
])
def test_stacked_regression_matches_the_reference(diabetes, defaults, grid):
    spec, data = diabetes
    torch.set_num_threads(1)
    cfgs = parse_spec(f'[study]\nname = "t"\nseeds = 2\ndataset = "{spec.dataset}"\n[defaults]\n{defaults}\n'
                      + (f"[grid]\n{grid}\n" if grid else "")).configs()
    got = stacked.train_group(cfgs, data)
    want = {r.trial_id: r for r in reference.train_group(cfgs, data)}
    for r in got:
        w = want[r.trial_id]
        assert r.status == w.status == "complete" and r.regression and w.regression
        for x, y in zip(r.history.train_loss + r.history.val_loss, w.history.train_loss + w.history.val_loss):
            assert abs(x - y) <= LOSS_TOL
        for k in ("val_rmse", "val_mae", "test_rmse", "test_mae"):  # in the target's units (SD ≈ 77)
            assert abs(getattr(r, k) - getattr(w, k)) <= 1e-3, k
        for k in ("val_r2", "test_r2"):
            assert abs(getattr(r, k) - getattr(w, k)) <= 1e-6, k
        assert math.isnan(r.val_acc) and math.isnan(r.test_acc) and r.val_class_acc == ()
        sd = data.target_sd
        if "huber" not in defaults:  # the loss is the MSE of the standardised target
            assert r.val_rmse == pytest.approx(math.sqrt(r.val_loss) * sd, rel=1e-9)
        else:  # Huber's loss is below half the squared error
            assert r.val_loss < 0.5 * (r.val_rmse / sd) ** 2
        assert r.best_epoch == 1 + min(range(r.epochs_run), key=lambda e: r.history.val_loss[e])


def test_the_r2_and_errors_are_what_numpy_computes_from_the_predictions(tmp_path, diabetes):
    spec, data = diabetes
    cfg = parse_spec(f'[study]\nname = "t"\ndataset = "{spec.dataset}"\nkeep = "all"\n[defaults]\nlayers = [16]\n'
                     "epochs = 10\nbatch_size = 32\n").configs()[0]
    (r,) = stacked.train_group([cfg], data, keep=True)
    w = r.weights
    x = data.x_val.numpy().astype(np.float64)
    h = np.maximum(x @ w["linear0.weight"].T + w["linear0.bias"], 0)
    pred = (h @ w["linear1.weight"].T + w["linear1.bias"])[:, 0]
    y = data.y_val.numpy().astype(np.float64)
    sd = data.target_sd
    assert r.val_rmse == pytest.approx(np.sqrt(np.mean((pred - y) ** 2)) * sd, rel=1e-5)
    assert r.val_mae == pytest.approx(np.mean(np.abs(pred - y)) * sd, rel=1e-5)
    assert r.val_r2 == pytest.approx(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2), abs=1e-6)


def test_a_run_no_better_than_the_mean_is_collapsed(diabetes):
    spec, data = diabetes
    cfg = parse_spec(f'[study]\nname = "t"\ndataset = "{spec.dataset}"\n[defaults]\nlayers = [16]\nepochs = 1\n'
                     'optimizer = "sgd"\nlr = 1e-7\ninit = "glorot"\n').configs()[0]
    (r,) = stacked.train_group([cfg], data)
    assert r.status == "complete" and r.val_r2 < 0.01 and r.collapsed


# --- a study end to end ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def diabetes_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reg")
    spec = load_spec(DIABETES).with_overrides(seeds=4)
    return tunebook.run_study(spec, out, device="cpu", quiet=True)


def test_a_regression_study_ranks_and_judges_lower_errors_as_better(diabetes_run):
    from tunebook.analysis.study import analyze
    from tunebook.report import write_report

    outcome = diabetes_run
    a = analyze(outcome.folder)
    means = {c.config.layers[0]: c.stats["val_rmse"].mean for c in a.configs if c.config.weight_decay == 0}
    (h_width,) = [v for v in a.verdicts if v.hypothesis.id == "H-width"]
    # "a < b" on an error: refuted only where the wider layer's error is the larger
    assert h_width.verdict != "refuted" or means[128] > means[8]
    assert h_width.verdict != "supported" or means[128] < means[8]
    best = a.winners.accuracy
    assert best.stats["val_rmse"].mean == min(c.stats["val_rmse"].mean for c in a.configs if c.n_complete)
    md = write_report(outcome.folder)[0].read_text()
    ranks = [line for line in md.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(ranks) == 2 and float(ranks[0].split("|")[3].split("±")[0]) <= float(ranks[1].split("|")[3].split("±")[0])
    assert "a number to predict (regression" in md and "| test\\_rmse |" in md  # markdown escapes _
    assert "val\\_acc" not in md.split("## Data")[1].split("## Hypotheses")[0]
    # overfitting: the gap on its losses (its accuracies are NaN), each row its mean over seeds
    assert "| configuration | final loss gap | max loss gap | best val-loss epoch | flagged seeds |" in md
    o = a.overfit[best.key]
    gaps = [h.val_loss[-1] - h.train_loss[-1] for h in best.histories]
    assert abs(o.final_loss_gap - sum(gaps) / len(gaps)) < 1e-12 and f"{o.final_loss_gap:.4f}" in md


def test_the_full_diabetes_study_decides_on_val_rmse(tmp_path):
    outcome = tunebook.run_study(load_spec(DIABETES), tmp_path, device="cpu", quiet=True)
    from tunebook.analysis.study import analyze

    a = analyze(outcome.folder)
    by = {v.hypothesis.id: v for v in a.verdicts}
    rmse = {c.config.layers[0]: c.stats["val_rmse"].mean for c in a.configs if c.config.weight_decay == 0}
    # "a wider layer predicts better" is judged on the error: its verdict follows the means
    if by["H-width"].verdict == "supported":
        assert rmse[128] < rmse[8]
    if by["H-width"].verdict == "refuted":
        assert rmse[128] > rmse[8]
    assert by["H-width"].verdict != "inconclusive" and by["H-r2"].verdict != "inconclusive"


def test_kept_regression_weights_predict_numbers_in_the_target_s_units(tmp_path, cli_env, diabetes):
    spec, _ = diabetes
    outcome = tunebook.run_study(spec.with_overrides(seeds=1), tmp_path, device="cpu", quiet=True)
    run = next(r for r in outcome.runs if r.result.status == "complete" and (r.path / "weights.safetensors").is_file())
    model = tunebook.load_model(run.path)
    ds = load_dataset(spec.dataset, spec.validation, spec.split_seed)
    from tunebook.datasets import DATASETS

    info = DATASETS[spec.dataset]
    raw_x = ds.x_val  # already the features (scaled as in training)
    with torch.no_grad():
        pred = model.module(torch.from_numpy(raw_x))[:, 0].double().numpy() * info.target_sd + info.target_mean
    y = ds.y_val.astype(np.float64) * info.target_sd + info.target_mean
    assert np.sqrt(np.mean((pred - y) ** 2)) == pytest.approx(run.result.val_rmse, rel=1e-5)
    with pytest.raises(Exception, match="a regression predicts numbers"):
        model.predict_proba(raw_x)
    stored = tomllib.loads((run.path / "result.toml").read_text())
    assert stored["val_rmse"] == pytest.approx(run.result.val_rmse) and math.isnan(stored["val_acc"])


def test_a_search_minimises_val_rmse_and_a_median_pruner_follows_its_loss(tmp_path):
    from tunebook.search import run_search

    csv = table(tmp_path, lambda a, b, r: np.round(np.sin(2 * a) + b * b + 0.1 * r.normal(size=len(a)), 4), n=400)
    f = tmp_path / "srch.toml"
    f.write_text(f'[study]\nname = "rs"\ndataset = "{csv.name}"\nseeds = 1\nsampler = "random"\ntrials = 10\n'
                 'batch = 5\nconfirm = 0\npruner = "median"\n[defaults]\nepochs = 4\nbatch_size = 32\n'
                 "[search]\nlr = { low = 0.00001, high = 0.03, log = true }\nwidth = { low = 4, high = 32 }\n")
    spec = load_spec(f)
    assert spec.search.objectives == (("val_rmse", "min"),)
    o = run_search(spec, tmp_path / "out", device="cpu")
    done = [r for r in o.results if r.values is not None]
    assert done and o.best().values[0] == min(r.values[0] for r in done)
    for r in done:
        assert r.values[0] == pytest.approx(r.runs[0].result.val_rmse)
        assert r.curve == pytest.approx(r.runs[0].result.history.val_loss)  # what the pruner compares


def test_a_classifier_s_dataset_key_is_what_it_was_before_tasks_existed():
    """The task is hashed only where it was given: scikit-learn's wine table and arrays of
    integer labels keep the keys (and so the trial ids) of tunebook 0.2."""
    from tunebook.userdata import DataOptions, Dataset, read_sklearn

    assert read_sklearn("sklearn:wine", DataOptions(), 0, "x.toml").key == "sklearn-wine-91ef45b4ad4b"
    rng = np.random.default_rng(0)
    assert Dataset.from_arrays(rng.normal(size=(60, 3)), rng.integers(0, 3, 60), name="a").key == "a-d84edfbb6d41"
