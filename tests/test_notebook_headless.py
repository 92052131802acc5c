"""The shipped notebook (examples/notebook.ipynb), executed headless by a real Jupyter
kernel (nbclient): it trains a study with live progress, shows the spec, the outcome and
the analysis as HTML, a DataFrame, and draws a figure inline."""

from __future__ import annotations

import shutil

import nbformat
from nbclient import NotebookClient

from tests.conftest import ROOT


def test_the_example_notebook_runs_headless_and_shows_what_a_user_sees(tmp_path):
    shutil.copy(ROOT / "examples" / "notebook.ipynb", tmp_path / "notebook.ipynb")
    nb = nbformat.read(tmp_path / "notebook.ipynb", as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # kept without outputs
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [[o for o in c.outputs] for c in code]
    assert not [o for out in outputs for o in out if o.output_type == "error"]
    html = [[o["data"]["text/html"] for o in out if "text/html" in o.get("data", {})] for out in outputs]
    spec_html, run_html, analysis_html, frame_html = html[0], html[1], html[2], html[3]
    assert any("notebook-widths" in h and "8" in h for h in spec_html)  # the spec: its trials
    progress = [h for h in run_html if "trials stored" in h]  # the live table, as it was left
    assert progress and "8 of 8 trials stored" in progress[0] and "8 trained, 0 already done" in progress[0]
    assert any("<table" in h and "notebook-widths" in h for h in run_html[1:])  # the outcome's own table
    assert any("<td style='padding:2px 8px'>wider</td>" in h for h in analysis_html)  # its hypothesis, judged
    assert any(word in h for h in analysis_html for word in ("SUPPORTED", "REFUTED", "INCONCLUSIVE"))
    assert frame_html and "<table" in frame_html[0] and "units1" in frame_html[0]  # a pandas DataFrame
    figure = [o for o in outputs[4] if "image/png" in o.get("data", {})]
    assert len(figure) == 1  # drawn inline, once
    assert len(list((tmp_path / "modellogs" / "notebook-widths" / "runs").iterdir())) == 8
