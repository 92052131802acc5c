"""Device names, checked and told apart without importing torch: a driver decides where
its workers train (and starts them) before it loads torch itself, which its workers are
loading meanwhile. Whether a named device exists is :func:`tunebook.engine.common.resolve_device`'s
question (it needs torch)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

DEVICE_RULE = re.compile(r"auto|cpu|cuda(:\d+)?")


def device_form_problem(name) -> str | None:
    """What is wrong with the form of a device name, or None (whether it exists here is
    :func:`~tunebook.engine.common.resolve_device`'s question; a Ray cluster's devices are
    not here)."""
    if not isinstance(name, str) or not DEVICE_RULE.fullmatch(name):
        return f"--device: must be auto, cpu, cuda or cuda:N, got {name!r}"
    return None


def torch_built_without_cuda() -> bool:
    """Whether the installed torch is a CPU-only build, read from its ``version.py`` (where
    a build records ``cuda = None``) without importing it; False when that cannot be told."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text(encoding="utf-8")
    except OSError:
        return False
    return re.search(r"^cuda(?:\s*:[^=\n]*)?\s*=\s*None\s*$", text, re.MULTILINE) is not None


def device_type(name: str) -> str:
    """``"cpu"`` or ``"cuda"`` for a well-formed device name; ``auto`` is CUDA when torch
    sees a GPU — asked of torch unless it is a CPU-only build (then without loading it)."""
    if name == "cpu" or (name == "auto" and "torch" not in sys.modules and torch_built_without_cuda()):
        return "cpu"
    if name.startswith("cuda"):
        return "cuda"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
