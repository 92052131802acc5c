"""The example studies cannot rot: they validate, and each runs with a tiny override."""

from __future__ import annotations

import subprocess

from conftest import ROOT, tunebook_cmd

EXAMPLES = ROOT / "examples" / "fashion-mnist"


def test_examples_validate(cli_env):
    p = subprocess.run(tunebook_cmd("validate", str(EXAMPLES)), env=cli_env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count(": ok — study") == 9 and "search of depth, width" in p.stdout and "programme:" in p.stdout
    q = subprocess.run(tunebook_cmd("validate", str(ROOT / "examples" / "quickstart.toml")), env=cli_env,
                       capture_output=True, text=True)
    assert q.returncode == 0, q.stderr


def test_every_example_runs_with_a_tiny_override(tmp_path, cli_env):
    """1 seed, 1 epoch, 512 training images: the whole folder, reports included."""
    out = tmp_path / "logs"
    p = subprocess.run(tunebook_cmd("run", str(EXAMPLES), "--out", str(out), "--quiet", "--seeds", "1",
                                    "--epochs", "1", "--subset", "512"),
                       env=cli_env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout + p.stderr
    names = sorted(f.stem for f in EXAMPLES.glob("*.toml"))
    for name in names:  # a smoke test lives apart from the full study, in <study>.smoke/
        assert not (out / name).exists(), name
        runs = list((out / f"{name}.smoke" / "runs").glob("[0-9]*"))
        assert runs and all((r / "result.toml").is_file() for r in runs), name
        assert (out / f"{name}.smoke" / "report" / "report.html").is_file(), name
    assert not (out / "report").exists()  # a smoke run never replaces the programme's page
    combined = (out / "report.smoke" / "report.md").read_text()
    assert "Smoke tests (--seeds 1 --epochs 1 --subset 512)" in combined
    assert "Final summary" in combined and "Documented optimal configuration" in combined
    for name in names:  # the programme's notebook holds the grid studies; a search has its own page
        assert (name in combined) == (name != "08-search"), name


def test_the_tabular_examples_run_whole_and_decide(tmp_path, cli_env):
    """A CSV of our own (examples/tabular/shapes.csv, made by make_shapes.py) and
    scikit-learn's shipped wine table: no download, every seed and epoch."""
    tabular = ROOT / "examples" / "tabular"
    out = tmp_path / "logs"
    p = subprocess.run(tunebook_cmd("run", str(tabular), "--out", str(out), "--quiet", "--device", "cpu"),
                       env=cli_env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    shapes = (out / "shapes" / "report" / "report.md").read_text()
    assert "| circle |" in shapes and "| triangle |" in shapes and "texture=rough" in shapes
    wine = (out / "wine" / "report" / "report.md").read_text()
    assert "scikit-learn" in wine and wine.count("**Verdict: SUPPORTED**") == 2


def test_shapes_csv_is_what_make_shapes_writes(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_shapes", ROOT / "examples" / "tabular" / "make_shapes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["size", "area", "perimeter", "corners", "texture", "shape"])
    w.writerows(module.rows())
    assert buf.getvalue() == (ROOT / "examples" / "tabular" / "shapes.csv").read_bytes().decode()
