"""Deep networks end to end: a study with batch norm, residual skips and a schedule keeps
its runs' weights (a format-2 file that reproduces the stored accuracy), records each
layer's gradient norms in result.toml and TensorBoard (read back with TensorBoard's own
reader) and draws them in the report; a group stopped mid-way goes on from its checkpoint
with its batch-norm statistics, equal to a run never stopped."""

from __future__ import annotations

import tomllib

import pytest
import torch

import tunebook
from tunebook.budget import Budget
from tunebook.data import load_dataset
from tunebook.weights import FORMAT_DEEP, WEIGHTS, load_model
from tests.executors.helpers import numbers

STUDY = '''[study]
name = "deep"
seeds = 2
train_subset = 1200
keep = "{keep}"
[defaults]
width = 24
epochs = 3
batch_size = 100
schedule = "cosine"
warmup = 1
dropout = 0.1
[grid]
depth = [2, 3]
norm = ["batch", "layer"]
residual = [true, false]
'''


def spec(keep="none"):
    return tunebook.parse_spec(STUDY.format(keep=keep), where="deep.toml")


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    out = tmp_path_factory.mktemp("deep")
    return out, tunebook.run_study(spec("all"), out, device="cpu", quiet=True, pad=False)


def test_kept_deep_runs_reproduce_their_accuracy_and_say_their_format(whole):
    from safetensors import safe_open

    _, outcome = whole
    assert len(outcome.runs) == 16 and {r.result.status for r in outcome.runs} == {"complete"}
    for run in outcome.runs:
        with safe_open(str(run.path / WEIGHTS), "pt") as f:
            meta = f.metadata()
        assert meta["format"] == FORMAT_DEEP and meta["norm"] == run.config.norm
        model = load_model(run.path)
        ds = load_dataset(run.config.dataset, run.config.validation, run.config.split_seed, run.config.train_subset)
        with torch.no_grad():
            pred = model.module(torch.from_numpy(ds.x_val)).argmax(1).numpy()
        assert float((pred == ds.y_val).mean()) == run.result.val_acc


def test_gradient_norms_are_stored_and_in_tensorboard(whole):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, outcome = whole
    for run in outcome.runs[:4]:
        stored = tomllib.loads((run.path / "result.toml").read_text())["history"]["grad_norm"]
        assert len(stored) == 3 and {len(g) for g in stored} == {len(run.config.layers) + 1}
        assert [tuple(g) for g in stored] == list(run.result.history.grad_norm)
        acc = EventAccumulator(str(run.path))
        acc.Reload()
        for k in range(1, len(run.config.layers) + 2):
            events = acc.Scalars(f"grad_norm/layer{k}")
            assert [e.step for e in events] == [1, 2, 3]
            assert [round(e.value, 5) for e in events] == [round(g[k - 1], 5) for g in stored]


def test_the_report_draws_the_gradient_flow(whole):
    from tunebook.report import write_report

    _, outcome = whole
    md_path, _ = write_report(outcome.folder)
    md = md_path.read_text()
    assert "Gradient flow" in md and "first ÷ output layer" in md
    assert "](figures/gradient-flow.png)" in md and (outcome.folder / "report" / "figures" / "gradient-flow.png").is_file()


def test_a_deep_group_stopped_mid_way_goes_on_from_its_checkpoint(tmp_path):
    from tunebook.checkpoints import FOLDER

    one = tunebook.parse_spec(STUDY.format(keep="none").replace("depth = [2, 3]", "depth = [3]")
                              .replace('norm = ["batch", "layer"]', 'norm = ["batch"]').replace("[true, false]", "[true]"),
                              where="deep.toml")
    done = tunebook.run_study(one, tmp_path / "whole", device="cpu", quiet=True)
    first = tunebook.run_study(one, tmp_path / "cut", device="cpu", quiet=True, checkpoint_every=0,
                               budget=Budget(model_epochs=3))  # 2 members: stops at the end of epoch 2
    assert first.stopped_by_budget and first.trained == 0
    (state,) = [tomllib.loads(p.read_text()) for p in (tmp_path / "cut" / FOLDER).glob("*.toml")]
    assert state["epoch"] == 2
    second = tunebook.run_study(one, tmp_path / "cut", device="cpu", quiet=True, checkpoint_every=0)
    assert second.trained == 2
    assert numbers(second) == numbers(done)  # batch-norm statistics and the schedule came back too


def test_trial_ids_of_studies_without_the_new_keys_are_unchanged():
    from tunebook.records import TrialConfig, trial_id_of

    plain = tunebook.parse_spec('[study]\nname = "p"\n[defaults]\nlayers = [32]\n').configs()[0]
    explicit = tunebook.parse_spec('[study]\nname = "p"\n[defaults]\nlayers = [32]\nnorm = "none"\n'
                                   'residual = false\nschedule = "constant"\nwarmup = 0\n').configs()[0]
    assert plain.trial_id == explicit.trial_id
    d = plain.to_dict()
    for k in ("norm", "residual", "schedule", "warmup", "label_smoothing", "init"):
        d.pop(k)
    assert trial_id_of(d) == plain.trial_id  # as a file written before these keys existed
    assert TrialConfig.from_dict({**plain.to_dict(), "norm": "batch"}).trial_id != plain.trial_id
