"""The user's own data: a CSV study end to end through the CLI, arrays from a notebook, the
stacked engine against the reference on a non-784-feature, non-10-class dataset, identity
by content (an edited cell means new trials), and every bad-data case refused with exit 2,
a message naming the file, the column and the rule, and nothing written."""

from __future__ import annotations

import csv
import random
import subprocess
import tomllib

import numpy as np
import pytest
import torch

import tunebook
from conftest import tunebook_cmd
from tunebook.errors import SpecError
from tunebook.spec import load_spec, parse_spec

STUDY = '''[study]
name = "flowers"
dataset = "flowers.csv"
seeds = 2
[data]
target = "species"
categorical = ["colour"]
[defaults]
layers = [16]
epochs = 3
batch_size = 32
[grid]
units1 = [8, 32]
[[hypothesis]]
id = "wider"
kind = "compare"
a = { units1 = 32 }
b = { units1 = 8 }
expect = "a > b"
says = "32 units beat 8"
'''
CLASSES = ("setosa", "versicolor", "virginica")


def flowers(path, rows: int = 240, seed: int = 1, classes=CLASSES):
    rng = random.Random(seed)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["length", "width", "colour", "species"])
        for i in range(rows):
            c = classes[i % len(classes)]
            base = classes.index(c) * 1.5
            w.writerow([round(base + rng.gauss(0, 0.7), 3), round(base / 2 + rng.gauss(0, 0.5), 3),
                        rng.choice(["red", "blue"]), c])
    return path


@pytest.fixture
def study_dir(tmp_path):
    flowers(tmp_path / "flowers.csv")
    (tmp_path / "flowers.toml").write_text(STUDY)
    return tmp_path


def run_cli(*args, env):
    return subprocess.run(tunebook_cmd(*args), env=env, capture_output=True, text=True, timeout=600)


def test_a_csv_study_validates_runs_lists_reports_and_exports(study_dir, cli_env):
    out = study_dir / "out"
    v = run_cli("validate", str(study_dir / "flowers.toml"), env=cli_env)
    assert v.returncode == 0 and "4 trials (2 configurations × 2 seeds)" in v.stdout, v.stderr
    r = run_cli("run", str(study_dir / "flowers.toml"), "--out", str(out), "--device", "cpu", "--quiet",
                env=cli_env)
    assert r.returncode == 0, r.stderr
    assert "flowers: 4 trained" in r.stdout
    record = tomllib.loads((out / "flowers" / "data.toml").read_text())["dataset"]
    assert record["classes"] == list(CLASSES) and record["n_train"] + record["n_test"] == 240
    assert record["features"] == ["length", "width", "colour=blue", "colour=red"]
    assert record["n_test"] == 48 and sum(record["class_counts"]) == 192  # a stratified 20 % hold-out
    ls = run_cli("ls", str(out), env=cli_env)
    assert ls.returncode == 0 and ls.stdout.count("flowers") >= 4, ls.stderr
    ex = run_cli("export", str(out / "flowers"), "--format", "json", env=cli_env)
    assert ex.returncode == 0 and '"dataset": "' + record["key"] in ex.stdout, ex.stderr
    rep = run_cli("report", str(out / "flowers"), env=cli_env)
    assert rep.returncode == 0, rep.stderr
    md = (out / "flowers" / "report" / "report.md").read_text()
    assert "## Data" in md and f"Fingerprint (SHA-256 of the arrays as read, and of the reading options): " \
                                 f"{record['fingerprint']}" in md
    for name in CLASSES:  # the data's own class names
        assert f"| {name} |" in md
    by_class = md[md.index("## By class"):md.index("## Final summary")]
    assert [line.split(" | ")[0].lstrip("| ") for line in by_class.splitlines() if line.startswith("| ")][1:] \
        == list(CLASSES)
    assert (out / "flowers" / "report" / "figures" / "by-class.png").is_file()
    result = tomllib.loads(next((out / "flowers" / "runs").glob("*/result.toml")).read_text())
    assert len(result["val_class_acc"]) == 3 and all(0 <= a <= 1 for a in result["val_class_acc"])
    assert "### wider: 32 units beat 8" in md


def test_editing_one_cell_makes_new_trials_and_leaves_the_old_runs_alone(study_dir):
    out = study_dir / "out"
    first = tunebook.run_study(load_spec(study_dir / "flowers.toml"), out, device="cpu")
    before = {p.name: (p / "result.toml").read_bytes() for p in (out / "flowers" / "runs").iterdir()}
    text = (study_dir / "flowers.csv").read_text().splitlines()
    cells = text[5].split(",")
    cells[0] = str(float(cells[0]) + 0.001)
    text[5] = ",".join(cells)
    (study_dir / "flowers.csv").write_text("\n".join(text) + "\n")
    spec = load_spec(study_dir / "flowers.toml")
    second = tunebook.run_study(spec, out, device="cpu")
    assert second.trained == 4 and second.skipped == 0
    assert spec.dataset != first.spec.dataset  # the key carries the content's fingerprint
    assert not {c.trial_id for c in spec.configs()} & {c.trial_id for c in first.spec.configs()}
    for name, content in before.items():  # untouched
        assert (out / "flowers" / "runs" / name / "result.toml").read_bytes() == content


def test_arrays_from_a_notebook_train_without_a_file(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = np.where(x[:, 0] + x[:, 1] > 0, "up", "down")
    ds = tunebook.Dataset.from_arrays(x, y, name="blobs")
    assert ds.info.classes == ("down", "up") and ds.info.n_features == 5 and ds.info.n_test == 60
    spec = parse_spec('[study]\nname = "nb"\ndataset = "blobs"\nseeds = 2\n[defaults]\nlayers = [8]\nepochs = 2\n')
    assert spec.dataset == ds.key
    outcome = tunebook.run_study(spec, tmp_path, device="cpu")
    assert outcome.trained == 2 and all(r.result.status == "complete" for r in outcome.runs)
    assert all(r.result.params == 5 * 8 + 8 + 8 * 2 + 2 for r in outcome.runs)  # 5 inputs, 2 classes


def test_a_dataframe_is_a_dataset(tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": np.arange(60) % 7, "kind": ["x", "y", "z"] * 20, "label": [0, 1] * 30})
    ds = tunebook.Dataset.from_dataframe(df, "label", name="frame", categorical=["kind"])
    assert ds.info.features == ("a", "kind=x", "kind=y", "kind=z") and ds.info.classes == ("0", "1")


@pytest.fixture
def odd_shape_data():
    """A dataset of 13 features and 3 classes (not Fashion-MNIST's 784 and 10), on the CPU."""
    from tunebook.data import load_dataset
    from tunebook.engine.common import DeviceData

    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 13))
    y = (x[:, :3].argmax(axis=1)).astype(np.int64)
    ds = tunebook.Dataset.from_arrays(x, y, name="odd", scale="standard")
    return ds, DeviceData.from_dataset(load_dataset(ds.key), "cpu")


@pytest.mark.parametrize("defaults", [
    'layers = [24, 12]\noptimizer = "adam"\nepochs = 3',
    'layers = [16]\nactivation = "tanh"\noptimizer = "sgd"\nlr = 0.05\nepochs = 3',
])
def test_the_stacked_engine_matches_the_reference_on_another_shape(odd_shape_data, defaults):
    from tests.engine.test_stacked import assert_same
    from tunebook.engine import reference, stacked

    ds, data = odd_shape_data
    assert (data.n_features, data.n_classes) == (13, 3)
    cfgs = parse_spec(f'[study]\nname = "o"\ndataset = "odd"\nseeds = 2\n[defaults]\n{defaults}\n').configs()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        got = stacked.train_group(cfgs, data)
        want = {r.trial_id: r for r in reference.train_group(cfgs, data)}
    finally:
        torch.set_num_threads(before)
    rows = np.bincount(data.y_val.cpu().numpy(), minlength=3)
    for r in got:
        assert r.params == want[r.trial_id].params
        assert_same(r, want[r.trial_id], n_val=data.y_val.shape[0], n_test=data.y_test.shape[0])
        for result in (r, want[r.trial_id]):  # the per-class accuracies, weighted by rows, are the accuracy
            assert len(result.val_class_acc) == 3
            assert abs(float(np.dot(result.val_class_acc, rows)) / rows.sum() - result.val_acc) < 1e-12


# -- bad data --------------------------------------------------------------------------

def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def _good_rows(n=30):
    return [[i * 0.1, (i % 3) * 1.0, ["a", "b", "c"][i % 3]] for i in range(n)]


CASES = {
    "missing file": (lambda d: None, 'dataset = "nope.csv"', "", "study.dataset: {d}/nope.csv: no such file"),
    "unknown target": (lambda d: _write(d / "t.csv", ["x", "z", "y"], _good_rows()), 'dataset = "t.csv"',
                       'target = "label"', "data.target: no column 'label' (columns: x, z, y)"),
    "NaN": (lambda d: _write(d / "t.csv", ["x", "z", "y"], [[r[0], "nan" if i in (4, 9) else r[1], r[2]]
                                                            for i, r in enumerate(_good_rows())]),
            'dataset = "t.csv"', "", "t.csv: column 'z': 2 rows are empty, NaN or infinite (the first: row 5)"),
    "text feature": (lambda d: _write(d / "t.csv", ["x", "z", "y"], [[r[0], "big", r[2]] for r in _good_rows()]),
                     'dataset = "t.csv"', "", "t.csv: column 'z': 30 rows are not numbers (the first: row 1, 'big'); "
                                              "list it in data.categorical to one-hot encode it"),
    "one class": (lambda d: _write(d / "t.csv", ["x", "z", "y"], [[r[0], r[1], "a"] for r in _good_rows()]),
                  'dataset = "t.csv"', "", "t.csv: the target has one class only (a): a classifier needs at least two"),
    "too few for the split": (lambda d: _write(d / "t.csv", ["x", "z", "y"], _good_rows() + [[1, 1, "rare"]]),
                              'dataset = "t.csv"', "",
                              "t.csv: class 'rare' has 1 row(s): too few for a stratified test_fraction of 0.2"),
    "test columns differ": (lambda d: (_write(d / "t.csv", ["x", "z", "y"], _good_rows()),
                                       _write(d / "u.csv", ["x", "w", "y"], _good_rows())),
                            'dataset = "t.csv"', 'test = "u.csv"',
                            "u.csv: its columns differ from {d}/t.csv's; missing 'z'; extra 'w'"),
    "unseen test label": (lambda d: (_write(d / "t.csv", ["x", "z", "y"], _good_rows()),
                                     _write(d / "u.csv", ["x", "z", "y"], _good_rows(6) + [[1, 1, "new"]])),
                          'dataset = "t.csv"', 'test = "u.csv"',
                          "u.csv: column 'y': label(s) new are not in the training file"),
    "unknown [data] key": (lambda d: _write(d / "t.csv", ["x", "z", "y"], _good_rows()), 'dataset = "t.csv"',
                           'label = "y"', "data.label: unknown key (expected one of target, features, categorical"),
    "[data] with a built-in": (lambda d: None, 'dataset = "fashion-mnist"', 'target = "y"',
                               "data: only with a data file as study.dataset ('fashion-mnist' is read as it is)"),
    "bad scale": (lambda d: _write(d / "t.csv", ["x", "z", "y"], _good_rows()), 'dataset = "t.csv"',
                  'scale = "minmax"', "data.scale: must be one of standard, unit, none, got 'minmax'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_refused_with_exit_2_naming_file_column_and_rule(tmp_path, cli_env, case):
    make, dataset_line, data_table, message = CASES[case]
    make(tmp_path)
    text = f'[study]\nname = "bad"\n{dataset_line}\nseeds = 1\n'
    if data_table:
        text += f"[data]\n{data_table}\n"
    text += "[defaults]\nlayers = [8]\nepochs = 1\nbatch_size = 4\n"
    (tmp_path / "bad.toml").write_text(text)
    out = tmp_path / "out"
    r = run_cli("run", str(tmp_path / "bad.toml"), "--out", str(out), "--device", "cpu", env=cli_env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message.format(d=tmp_path) in r.stderr, r.stderr
    assert not out.exists()


def test_arrays_with_nan_or_mismatched_lengths_are_refused():
    x = np.ones((10, 3))
    x[4, 1] = np.nan
    with pytest.raises(SpecError, match=r"arrays 'n': 1 rows hold NaN or infinite values \(the first: row 5, feature 1\)"):
        tunebook.Dataset.from_arrays(x, np.arange(10) % 2, name="n")
    with pytest.raises(SpecError, match="arrays 'm': 10 rows of features but 9 labels"):
        tunebook.Dataset.from_arrays(np.ones((10, 3)), np.arange(9) % 2, name="m")


def test_parquet_and_npz_files_are_studies(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    flowers(tmp_path / "flowers.csv")
    with open(tmp_path / "flowers.csv") as f:
        rows = list(csv.DictReader(f))
    table = pa.table({"length": [float(r["length"]) for r in rows], "width": [float(r["width"]) for r in rows],
                      "colour": [r["colour"] for r in rows], "species": [r["species"] for r in rows]})
    pq.write_table(table, tmp_path / "flowers.parquet")
    spec = parse_spec(STUDY.replace("flowers.csv", "flowers.parquet"), where=str(tmp_path / "p.toml"))
    from tunebook.datasets import DATASETS

    info = DATASETS[spec.dataset]
    assert info.classes == CLASSES and info.features == ("length", "width", "colour=blue", "colour=red")
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(90, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "tiny.npz", x=images, y=np.arange(90) % 3)
    spec = parse_spec('[study]\nname = "z"\ndataset = "tiny.npz"\nseeds = 1\n[defaults]\nlayers = [8]\n'
                      'epochs = 1\nbatch_size = 8\n', where=str(tmp_path / "z.toml"))
    info = DATASETS[spec.dataset]
    assert (info.n_features, info.n_classes, info.n_train + info.n_test) == (16, 3, 90)
    from tunebook.data import load_dataset

    ds = load_dataset(spec.dataset)
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0  # uint8 images scaled to [0, 1]


def test_a_file_that_changes_while_the_study_runs_is_said_and_not_mixed(study_dir):
    spec = load_spec(study_dir / "flowers.toml")
    csv_path = study_dir / "flowers.csv"

    from tunebook.reporter import Reporter

    class Edit(Reporter):
        done = False

        def epoch(self, event):
            if not self.done:
                csv_path.write_text(csv_path.read_text().replace("setosa", "SETOSA", 1))
                self.done = True

    outcome = tunebook.run_study(spec, study_dir / "out", device="cpu", reporter=Edit())
    assert any(p.startswith(f"{csv_path}: changed while the study ran; its runs trained on the file as it was "
                            f"read at the start (dataset {spec.dataset})") for p in outcome.problems)
    assert {r.config.dataset for r in outcome.runs} == {spec.dataset}  # every run on the data as read
