from __future__ import annotations

import pytest

from tunebook.errors import SpecError
from tunebook.spec import load_spec, model_epochs, parse_spec

BASE = """
[study]
name = "t"
seeds = 2
"""


def spec(text: str = "", base: str = BASE):
    return parse_spec(base + text, where="t.toml")


def problems(text: str, base: str = BASE) -> str:
    with pytest.raises(SpecError) as info:
        spec(text, base)
    return "\n".join(info.value.problems)


def test_units_grid_expands_to_layers_times_seeds():
    s = spec("[grid]\nunits1 = [32, 64]\nunits2 = [32, 64]\n")
    cfgs = s.configs()
    assert len(cfgs) == 8
    assert {c.layers for c in cfgs} == {(32, 32), (32, 64), (64, 32), (64, 64)}
    assert {c.seed for c in cfgs} == {0, 1}


def test_units3_appends_a_layer_and_width_depth_build_layers():
    s = spec("[grid]\nunits3 = [16]\n")
    assert s.configs()[0].layers == (128, 128, 16)
    s = spec("[grid]\nwidth = [8]\ndepth = [3]\n")
    assert s.configs()[0].layers == (8, 8, 8)


def test_trial_id_is_stable_and_content_addressed():
    a = spec("[grid]\nlr = [0.001]\n").configs()[0]
    b = spec("").configs()[0]
    assert a.trial_id == b.trial_id and len(a.trial_id) == 12
    assert spec("[defaults]\nlr = 0.01\n", base='[study]\nname = "t"\n').configs()[0].trial_id != b.trial_id


def test_optimizer_defaults_are_resolved():
    cfg = spec('[grid]\noptimizer = ["momentum", "adamw", "sgd"]\n').configs()
    by = {c.optimizer: c for c in cfg}
    assert by["momentum"].momentum == 0.9 and by["sgd"].momentum == 0.0
    assert by["adamw"].weight_decay == 0.01 and by["sgd"].weight_decay == 0.0


def test_model_epochs_counts_epoch_sharing():
    s = spec("[grid]\nepochs = [3, 5, 10]\n")
    assert model_epochs(s.configs(), shared=False) == 2 * 18
    assert model_epochs(s.configs()) == 2 * 10


@pytest.mark.parametrize("text, message", [
    ("[grid]\nunits1 = [32, -64]\n", r"t.toml: grid.units1\[1\]: must be a positive integer .*got -64"),
    ("[grid]\nunits1 = []\n", r"t.toml: grid.units1: must be a non-empty list of values, got \[\]"),
    ("[grid]\nunits1 = 32\n", r"grid.units1: must be a non-empty list of values, got 32"),
    ("[grid]\nunits1 = [32, 32]\n", r"grid.units1: must not repeat a value"),
    ("[defaults]\nlr = 0\n", r"t.toml: defaults.lr: must be a positive number, got 0"),
    ("[defaults]\nlr = -1e-3\n", r"defaults.lr: must be a positive number, got -0.001"),
    ("[defaults]\nlearning_rate = 0.1\n", r"defaults.learning_rate: unknown hyperparameter"),
    ("[defaults]\nlayers = [128, 0]\n", r"defaults.layers: must be a list of 1 to 16 positive integers"),
    ("[defaults]\nactivation = \"swish\"\n", r'defaults.activation: must be one of "relu", .*got "swish"'),
    ("[defaults]\noptimizer = \"lion\"\n", r'defaults.optimizer: must be one of .*got "lion"'),
    ("[defaults]\ndropout = 1.0\n", r"defaults.dropout: must be a number in \[0, 1\), got 1.0"),
    ("[defaults]\nlabel_smoothing = 1.0\n", r"defaults.label_smoothing: must be a number in \[0, 1\), got 1.0"),
    ('[defaults]\ninit = "xavier"\n', r'defaults.init: must be one of "default", "he", "glorot", got "xavier"'),
    ("[defaults]\nepochs = true\n", r"defaults.epochs: must be a positive integer, got true"),
    ("[defaults]\nbatch_size = 100000\n", r"defaults.batch_size: must be at most the training split size 54000, got 100000"),
    ("[grid]\nbatch_size = [64, 60000]\n", r"grid.batch_size\[1\]: must be at most the training split size 54000"),
    ("[defaults]\nweight_decay = -1\n", r"defaults.weight_decay: must be a non-negative number, got -1"),
    ("[defaults]\nmomentum = 0.9\n", r'defaults.momentum: has no effect with optimizer "adam"'),
    ("[grid]\nunits3 = [8]\n[defaults2]\n", r"defaults2: unknown section"),
    ("[defaults]\nseed = 3\n", r"defaults.seed: seeds are set by study.seeds"),
    ("[defaults]\nlayers = [8]\nunits3 = 4\n", r"defaults.units3: needs units2"),
])
def test_each_rule_is_reported_with_file_key_and_value(text, message):
    assert __import__("re").search(message, problems(text)), problems(text)


@pytest.mark.parametrize("study, message", [
    ('name = "a/b"', r'study.name: must match .*got "a/b"'),
    ('name = ".."', r'study.name: must match .*got "\.\."'),
    ('name = "ok"\nseeds = 0', r"study.seeds: must be a count from 1 to 100000 or a list of seeds, got 0"),
    ('name = "ok"\nseeds = [1, 1]', r"study.seeds: must be a list of distinct integers"),
    ('name = "ok"\nvalidation = 0.9', r'study.validation: must be a fraction in \(0, 0.5\] or "test", got 0.9'),
    ('name = "ok"\ndataset = "svhn"', r'study.dataset: must be one of "fashion-mnist", "mnist", "kmnist", '
                                       r'"cifar10", a dataset registered from '
                                        r'Python \(tunebook.Dataset.from_arrays\), a data file \(.csv, .parquet, .npz, '
                                        r'.npy\) or one of scikit-learn\'s shipped ones \(sklearn:iris, sklearn:wine, '
                                        r'sklearn:breast_cancer, sklearn:digits, sklearn:diabetes\), got "svhn"'),
    ('name = "ok"\nmetric = "f1"', r'study.metric: must be one of .*got "f1"'),
    ('name = "ok"\nseedz = 3', r"study.seedz: unknown key"),
    ('name = "ok"\nbudget = "ten minutes"', r'study.budget: must be a number and a unit — s, m, h \(wall time\) or '
                                            r'me \(model-epochs\), e.g. 10m or 2000me \(the run\'s budget when no '
                                            r'--budget is given\), got "ten minutes"'),
    ('name = "ok"\nbudget = "0s"', r'study.budget: must be positive \(at least 1 model-epoch\)'),
    ('name = "ok"\nbudget = 600', r'study.budget: must be a number and a unit.*got 600'),
    ('title = "no name"', r"study.name: is required"),
])
def test_study_section_rules(study, message):
    import re
    text = problems("", base=f"[study]\n{study}\n")
    assert re.search(message, text), text


def test_every_problem_is_reported_at_once():
    text = problems("[defaults]\nlr = 0\nepochs = 0\n[grid]\nunits1 = [-1]\n")
    assert "defaults.lr" in text and "defaults.epochs" in text and "grid.units1[0]" in text


def test_missing_study_section_and_bad_toml():
    with pytest.raises(SpecError, match=r"t.toml: \[study\]: section is required"):
        parse_spec("[defaults]\nlr = 0.1\n", where="t.toml")
    with pytest.raises(SpecError, match=r"t.toml: not valid TOML"):
        parse_spec("[study\nname=", where="t.toml")


def test_load_spec_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"nope.toml: no such file"):
        load_spec(tmp_path / "nope.toml")


def test_validation_test_and_subset_change_train_size():
    s = spec("[defaults]\nbatch_size = 60000\n", base='[study]\nname = "t"\nvalidation = "test"\n')
    assert s.configs()[0].validation == "test"
    with pytest.raises(SpecError, match=r"must be at most the training split size 500"):
        spec("[defaults]\nbatch_size = 1000\n", base='[study]\nname = "t"\ntrain_subset = 500\n')


def test_overrides_are_revalidated():
    s = spec("[defaults]\nbatch_size = 256\n")
    assert s.with_overrides(seeds=1, epochs=1).configs()[0].epochs == 1
    with pytest.raises(SpecError, match=r"\(with overrides\): defaults.batch_size: must be at most the training split size 100"):
        s.with_overrides(train_subset=100)


def test_the_spec_layer_does_not_import_analysis():
    """Parsing a study file (hypotheses included) needs no analysis code: no import cycle."""
    import subprocess
    import sys

    code = ("import sys, tunebook.spec, tunebook.hypotheses; "
            "assert not [m for m in sys.modules if m.startswith('tunebook.analysis')], sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_margin_and_decide_plan():
    from tunebook.spec import DecidePlan

    s = parse_spec('[study]\nname = "x"\nseeds = 5\nmargin = 0.003\n[study.decide]\nmax_seeds = 20\nround = 5\n')
    assert s.margin == 0.003 and s.decide == DecidePlan(20, 5) and s.decide.looks(5) == [5, 10, 15, 20]
    d = parse_spec('[study]\nname = "x"\nseeds = 3\n')
    assert d.margin == 0.0 and d.decide == DecidePlan(100, 3) and d.decide.looks(3)[-2:] == [99, 100]


def test_margin_and_decide_plan_errors_are_all_named():
    with pytest.raises(SpecError) as e:
        parse_spec('[study]\nname = "x"\nseeds = 5\nmargin = -1\n[study.decide]\nmax_seeds = 3\nround = 0\nrond = 2\n',
                   where="d.toml")
    assert e.value.problems == [
        "d.toml: study.margin: must be a non-negative number in the metric's units (0.003 = 0.3 points of "
        "accuracy), got -1",
        "d.toml: study.decide.rond: unknown key (expected max_seeds, round)",
        "d.toml: study.decide.max_seeds: must be an integer from the study's 5 seeds (at least 2) to 10000, got 3",
        "d.toml: study.decide.round: must be a positive integer (seeds added per round), got 0"]
    with pytest.raises(SpecError, match=r"study.decide: must be a table"):
        parse_spec('[study]\nname = "x"\ndecide = 3\n')


def test_every_problem_in_one_pass_hypotheses_included():
    text = ('[study]\nname = "x"\nseeds = 0\n[grid]\nunits1 = [32, 64]\n'
            '[[hypothesis]]\nid = "H1"\nsays = "s"\nkind = "comparison"\n')
    with pytest.raises(SpecError) as exc:
        parse_spec(text, where="x.toml")
    problems = exc.value.problems
    assert any("study.seeds" in m for m in problems)
    assert any('hypothesis[0] (H1).kind: must be one of "compare", "trend", "best", "threshold"' in m for m in problems)


def test_a_selector_that_matches_nothing_lists_the_values_that_exist():
    text = ('[study]\nname = "x"\n[grid]\nunits1 = [32, 64, 128]\n'
            '[[hypothesis]]\nid = "H1"\nsays = "s"\nkind = "best"\nselect = { units1 = 100 }\n')
    with pytest.raises(SpecError) as exc:
        parse_spec(text, where="x.toml")
    assert exc.value.problems == ["x.toml: hypothesis[0] (H1).select: matches no configuration of the study "
                                  "(units1 takes 32, 64, 128), got {'units1': 100}"]


@pytest.mark.parametrize("hid", ["../../../../tmp/x/PWNED", "a/b", "<script>x</script>", "-dash-first", "x" * 65])
def test_a_hypothesis_id_follows_the_naming_rule(hid):
    text = ('[study]\nname = "x"\n[grid]\nunits1 = [32, 64]\n'
            f'[[hypothesis]]\nid = {hid!r}\nsays = "s"\nkind = "best"\nselect = {{ units1 = 32 }}\n')
    with pytest.raises(SpecError) as exc:
        parse_spec(text.replace("'", '"'), where="x.toml")
    assert any(".id: must be 1–64 letters, digits, '_', '-' or '.', starting with a letter or digit" in m
               for m in exc.value.problems)


def test_toml_nested_a_thousand_deep_is_a_clear_error():
    with pytest.raises(SpecError) as exc:
        parse_spec("x = " + "[" * 1000 + "]" * 1000, where="deep.toml")
    assert exc.value.problems == ["deep.toml: not valid TOML: nested too deeply (tables or arrays inside one "
                                  "another beyond what can be read)"]


def test_a_grid_too_large_is_counted_and_refused_before_it_is_expanded():
    big = list(range(8, 1008))
    text = f'[study]\nname = "x"\nseeds = 5\n[grid]\nunits1 = {big}\nunits2 = {big}\nlr = {[1e-3] * 1 + [2e-3]}\n'
    with pytest.raises(SpecError) as exc:
        parse_spec(text, where="big.toml")
    assert exc.value.problems == ["big.toml: grid: 1000 units1 × 1000 units2 × 2 lr × 5 seeds = 10,000,000 trials, "
                                  "more than the 100,000 a study may have: split it, or search the space with a "
                                  "[search] table instead"]
