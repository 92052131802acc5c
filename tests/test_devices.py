"""Device names told apart without torch: the form of a name, a CPU-only build read from
torch's own version file, and what ``auto`` means — the same answer torch gives."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tunebook import devices
from tunebook.options import ENGINE_NAMES


@pytest.mark.parametrize("name", ["gpu", "cuda:", "mps", "", None, 3, "CPU"])
def test_a_malformed_device_is_named(name):
    assert devices.device_form_problem(name) == f"--device: must be auto, cpu, cuda or cuda:N, got {name!r}"


def test_auto_is_what_torch_says():
    import torch

    assert devices.torch_built_without_cuda() == (torch.version.cuda is None)
    assert devices.device_type("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert devices.device_type("cpu") == "cpu" and devices.device_type("cuda:1") == "cuda"


def test_auto_on_a_cpu_only_build_is_decided_without_loading_torch():
    import torch

    if torch.version.cuda is not None:
        pytest.skip("a CUDA build of torch: auto asks torch")
    code = "import sys; from tunebook import devices; print(devices.device_type('auto'), 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["cpu", "False"]


def test_a_version_file_that_says_nothing_of_cuda_is_not_taken_for_a_cpu_build(tmp_path, monkeypatch):
    import importlib.util

    fake = tmp_path / "torch"
    fake.mkdir()
    spec = importlib.util.spec_from_loader("torch", loader=None, is_package=True)
    spec.submodule_search_locations = [str(fake)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    assert not devices.torch_built_without_cuda()  # no version.py
    (fake / "version.py").write_text("__version__ = '9.9'\ncuda: Optional[str] = '12.4'\n")
    assert not devices.torch_built_without_cuda()
    (fake / "version.py").write_text("__version__ = '9.9'\ncuda: Optional[str] = None\n")
    assert devices.torch_built_without_cuda()


def test_the_options_name_the_engines_there_are():
    from tunebook.engine import ENGINES

    assert tuple(ENGINES) == ENGINE_NAMES
