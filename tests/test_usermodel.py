"""A user's own model in a study: `[study] model = "module:factory"`, its declared
hyperparameters checked like tunebook's, its copies stacked with torch.func, the same run
folders, verdicts and report as the MLP, a study folder that remembers the model
(model.toml), and every bad input named."""

from __future__ import annotations

import os
import shutil
import subprocess
import tomllib

import pytest

import tunebook
from conftest import ROOT, tunebook_cmd
from tunebook.errors import SpecError
from tunebook.spec import load_spec
from tests.executors.helpers import numbers

MODEL = '''
from torch import nn
import tunebook


@tunebook.hyperparameters(hidden=tunebook.Int(4, 64, default=16), act=tunebook.Choice(["relu", "tanh"], default="relu"))
def build(hp, data):
    c, h, w = data.input_shape
    act = nn.ReLU() if hp["act"] == "relu" else nn.Tanh()
    return nn.Sequential(nn.Conv2d(c, 4, 3, padding=1), act, nn.MaxPool2d(4), nn.Flatten(),
                         nn.Linear(4 * (h // 4) * (w // 4), hp["hidden"]), nn.ReLU(), nn.Dropout(0.1),
                         nn.Linear(hp["hidden"], data.n_outputs))


def plain(hp, data):  # declares nothing
    return nn.Sequential(nn.Flatten(), nn.Linear(data.n_features, data.n_outputs))
'''

STUDY = '''[study]
name = "mine"
model = "{ref}"
seeds = 2
train_subset = 600
[defaults]
epochs = 2
batch_size = 50
{defaults}
[grid]
{grid}
'''


def write(tmp_path, ref="tiny_model:build", defaults="hidden = 8", grid="lr = [0.001, 0.01]", module=MODEL,
          name="tiny_model.py"):
    (tmp_path / name).write_text(module)
    f = tmp_path / "mine.toml"
    f.write_text(STUDY.format(ref=ref, defaults=defaults, grid=grid))
    return f


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("um")
    spec = load_spec(write(tmp))
    return tmp, spec, tunebook.run_study(spec, tmp / "out", device="cpu", quiet=True)


def test_a_user_model_study_trains_stacked_and_stores_ordinary_run_folders(trained):
    tmp, spec, outcome = trained
    assert spec.model == "tiny_model:build" and len(outcome.runs) == 4
    assert {r.result.engine for r in outcome.runs} == {"modules"} and {r.result.status for r in outcome.runs} == {"complete"}
    assert {r.result.group_size for r in outcome.runs} == {4}  # seeds × lrs: one stack
    cfg = tomllib.loads(next(iter(outcome.runs)).path.joinpath("config.toml").read_text())
    assert cfg["hparams"]["model"] == "tiny_model:build" and cfg["hparams"]["model_params"] == {"act": "relu", "hidden": 8}
    record = tomllib.loads((outcome.folder / "model.toml").read_text())["model"]
    assert record["ref"] == "tiny_model:build" and set(record["hyperparameters"]) == {"hidden", "act"}


def test_each_stacked_member_equals_the_reference_engine_s_module_alone(trained, tmp_path):
    tmp, spec, outcome = trained
    alone = tunebook.run_study(spec, tmp_path / "alone", device="cpu", quiet=True, engine="reference")
    assert {r.result.engine for r in alone.runs} == {"modules-alone"}
    got, want = numbers(outcome), numbers(alone)
    assert got.keys() == want.keys()
    for tid in got:
        a, b = got[tid], want[tid]
        assert a[:3] == b[:3]  # status, epochs, params
        for x, y in zip(a[9] + a[11], b[9] + b[11]):  # train and validation loss curves
            assert abs(x - y) <= 1e-5


def test_the_report_names_the_model_and_the_study_folder_reads_without_its_code(trained):
    tmp, spec, outcome = trained
    from tunebook.report import write_report

    md = write_report(outcome.folder)[0].read_text()
    assert "Model: tiny\\_model:build" in md and "hidden ∈ \\[4, 64\\] (default 16)" in md
    hidden = tmp / "elsewhere"
    hidden.mkdir(exist_ok=True)
    shutil.move(str(tmp / "tiny_model.py"), hidden / "tiny_model.py")  # the code is gone from where it was
    try:
        env = {"PYTHONPATH": str(ROOT / "src")}
        p = subprocess.run(tunebook_cmd("report", str(outcome.folder)), capture_output=True, text=True,
                           env={**os.environ, **env})
        assert p.returncode == 0, p.stderr
        p = subprocess.run(tunebook_cmd("ls", str(outcome.folder)), capture_output=True, text=True,
                           env={**os.environ, **env})
        assert p.returncode == 0 and "build" in p.stdout, p.stderr + p.stdout  # the model names the rows
    finally:
        shutil.move(str(hidden / "tiny_model.py"), tmp / "tiny_model.py")


@pytest.mark.parametrize("ref, defaults, grid, message", [
    ("tiny model", "", "lr = [0.001]", 'study.model: must be "package.module:factory"'),
    ("no_such_module:build", "", "lr = [0.001]", "study.model: cannot import 'no_such_module' from"),
    ("tiny_model:nothing", "", "lr = [0.001]", "study.model: tiny_model has no function 'nothing'"),
    ("tiny_model:build", "layers = [32]", "lr = [0.001]",
     'defaults.layers: is the MLP\'s: not with study.model = "tiny_model:build"'),
    ("tiny_model:build", "", "hidden = [2, 8]", "grid.hidden[0]: must be an integer from 4 to 64, got 2"),
    ("tiny_model:build", "", 'act = ["relu", "gelu"]', 'grid.act[1]: must be one of "relu", "tanh", got "gelu"'),
    ("tiny_model:build", "hiddn = 8", "lr = [0.001]",
     'defaults.hiddn: unknown hyperparameter; did you mean "hidden"? (the model\'s own: hidden, act)'),
    ("tiny_model:plain", "hidden = 8", "lr = [0.001]", "defaults.hidden: unknown hyperparameter"),
])
def test_bad_model_settings_are_named(tmp_path, ref, defaults, grid, message):
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, ref=ref, defaults=defaults, grid=grid))
    assert any(message in p for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize("module, message", [
    ("import tunebook\n@tunebook.hyperparameters(lr=tunebook.Float(0.0, 1.0, default=0.1))\ndef build(hp, data):\n"
     "    pass\n", "declares 'lr', which is tunebook's own hyperparameter"),
    ("def build(hp, data):\n    pass\nbuild.hyperparameters = {'k': {'low': 1, 'high': 4}}\n", "needs a default"),
    ("raise RuntimeError('broken on import')\n", "cannot import 'bad_model' from"),
])
def test_a_bad_declaration_or_module_is_named(tmp_path, module, message):
    with pytest.raises(SpecError) as exc:
        load_spec(write(tmp_path, ref="bad_model:build", defaults="", grid="epochs = [1]", module=module,
                        name="bad_model.py"))
    assert any(message in p for p in exc.value.problems), exc.value.problems


def test_a_declaration_helper_checks_its_own_arguments():
    with pytest.raises(ValueError, match="needs numbers low ≤ default ≤ high"):
        tunebook.Int(8, 4, default=6)
    with pytest.raises(ValueError, match="choices must be a non-empty list holding the default"):
        tunebook.Choice(["a"], default="b")


def test_a_search_over_the_model_s_own_hyperparameters(tmp_path):
    from tunebook.search import run_search

    (tmp_path / "tiny_model.py").write_text(MODEL)
    f = tmp_path / "s.toml"
    f.write_text('[study]\nname = "ms"\nmodel = "tiny_model:build"\nseeds = 1\ntrain_subset = 400\nsampler = "random"\n'
                 'trials = 3\nbatch = 3\nconfirm = 0\n[defaults]\nepochs = 1\nbatch_size = 50\n'
                 '[search]\nhidden = { low = 4, high = 32 }\nact = { choices = ["relu", "tanh"] }\n')
    o = run_search(load_spec(f), tmp_path / "out", device="cpu")
    assert len(o.results) == 3 and all(r.values is not None for r in o.results)
    for r in o.results:
        (run,) = r.runs
        assert isinstance(dict(r.params)["hidden"], int)
        assert dict(run.config.model_params) == {"hidden": dict(r.params)["hidden"], "act": dict(r.params)["act"]}


def test_the_cnn_example_validates_and_runs_with_a_tiny_override(cli_env, tmp_path):
    study = ROOT / "examples" / "cnn" / "cnn.toml"
    p = subprocess.run(tunebook_cmd("validate", str(study)), env=cli_env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "2 configurations × 3 seeds" in p.stdout
    q = subprocess.run(tunebook_cmd("run", str(study), "--out", str(tmp_path), "--quiet", "--seeds", "1", "--epochs", "1",
                                    "--subset", "256"), env=cli_env, capture_output=True, text=True, timeout=300)
    assert q.returncode == 0, q.stderr
    assert (tmp_path / "cnn.smoke" / "model.toml").is_file()
    assert "Model: cnn\\_model:build" in (tmp_path / "cnn.smoke" / "report" / "report.md").read_text()


@pytest.mark.parametrize("engine", ["stacked", "reference"])
def test_kept_weights_of_a_user_model_reproduce_its_accuracy(tmp_path, engine):
    import torch
    from safetensors import safe_open

    from tunebook.data import load_dataset
    from tunebook.weights import FORMAT_MODULE, WEIGHTS

    f = write(tmp_path, grid="lr = [0.003]")
    f.write_text(f.read_text().replace('model = "tiny_model:build"', 'model = "tiny_model:build"\nkeep = "all"'))
    outcome = tunebook.run_study(load_spec(f), tmp_path / "out", device="cpu", quiet=True, engine=engine)
    ds = load_dataset("fashion-mnist", 0.1, 0, 600)
    for run in outcome.runs:
        with safe_open(str(run.path / WEIGHTS), "pt") as fh:
            meta = fh.metadata()
        assert meta["format"] == FORMAT_MODULE and meta["model"] == "tiny_model:build"
        model = tunebook.load_model(run.path)
        with torch.no_grad():  # the features as training saw them, given their image shape back
            pred = model.module(torch.from_numpy(ds.x_val).view(-1, 1, 28, 28)).argmax(1).numpy()
        assert float((pred == ds.y_val).mean()) == pytest.approx(run.result.val_acc, abs=1e-12)
        raw = (ds.x_val[:5] * 255).round()  # raw pixels: predict() scales and reshapes them itself
        assert model.predict(raw) == [model.classes[i] for i in pred[:5]]
        assert isinstance(model.module, torch.nn.Sequential) and model.module.training is False


def test_worker_processes_import_the_factory_and_give_the_same_numbers(trained, tmp_path):
    _, spec, local = trained
    there = tunebook.run_study(spec, tmp_path / "procs", device="cpu", quiet=True, executor="process", workers=2)
    assert {r.result.engine for r in there.runs} == {"modules"}
    assert numbers(there) == numbers(local)


@pytest.mark.parametrize("pruner", ["halving", "median"])
def test_a_user_model_search_prunes_alike_in_this_process_and_in_workers(tmp_path, pruner):
    """Stacked user models report each member every epoch and stop the ones the pruner
    names; successive halving pauses them at its rung with a checkpoint. A pruned run is
    the unpruned run's first epochs."""
    from tunebook.search import run_search

    (tmp_path / "tiny_model.py").write_text(MODEL)
    f = tmp_path / "p.toml"
    f.write_text(f'[study]\nname = "mp"\nmodel = "tiny_model:build"\nsampler = "random"\ntrials = 10\nbatch = 5\n'
                 f'seeds = 1\nconfirm = 0\ntrain_subset = 300\nvalidation = 0.02\npruner = "{pruner}"\n[defaults]\nepochs = 3\n'
                 '[search]\nhidden = { low = 4, high = 32 }\nlr = { choices = [0.00001, 0.01, 0.03] }\n')
    spec = load_spec(f)
    here = run_search(spec, tmp_path / "here", device="cpu")
    there = run_search(spec, tmp_path / "there", device="cpu", executor="process", workers=2)
    pruned = [r.proposal.number for r in here.results if r.pruned]
    assert not any(r.failed for r in here.results)  # (stacks of two copies with dropout among them)
    assert pruned and [r.proposal.number for r in there.results if r.pruned] == pruned
    assert [(r.params, r.curve, r.values) for r in there.results] == [(r.params, r.curve, r.values) for r in here.results]
    if pruner != "halving":
        return
    f.write_text(f.read_text().replace(f'pruner = "{pruner}"', 'pruner = "none"'))
    whole = {tuple(sorted(r.params.items())): r for r in run_search(load_spec(f), tmp_path / "whole", device="cpu").results}
    for r in here.results:
        if r.pruned:  # its epochs so far, as the run that was never stopped had them
            (run,) = r.tried
            full = whole[tuple(sorted(r.params.items()))]  # the random sampler proposes the same without a pruner
            assert run.result.status == "pruned" and run.result.engine in ("modules", "modules-alone")
            assert r.curve == full.curve[:len(r.curve)]


def test_a_budget_stops_a_user_model_study_and_the_next_run_goes_on_from_its_checkpoint_alike(trained, tmp_path):
    from tunebook.budget import Budget
    from tunebook.checkpoints import FOLDER
    from tunebook.reporter import Reporter

    class Epochs(Reporter):
        def __init__(self):
            self.seen = []

        def epoch(self, event):
            self.seen.append(event.epoch)

    _, spec, whole = trained
    first = tunebook.run_study(spec, tmp_path / "b", device="cpu", quiet=True, budget=Budget(model_epochs=4))
    assert first.stopped_by_budget and first.trained == 0  # its one group stopped after an epoch: nothing stored
    (state,) = [__import__("tomllib").loads(p.read_text()) for p in (tmp_path / "b" / FOLDER).glob("*.toml")]
    assert state["epoch"] == 1 and len(state["trials"]) == 4  # the stack's state at the end of its first epoch
    seen = Epochs()
    second = tunebook.run_study(spec, tmp_path / "b", device="cpu", reporter=seen)
    assert seen.seen == [2]  # it went on from there: the second epoch only
    assert second.trained == 4 and numbers(second) == numbers(whole)
    assert not list((tmp_path / "b" / FOLDER).iterdir())
