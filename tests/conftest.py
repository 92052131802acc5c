from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def small_data():
    """Real Fashion-MNIST, 3 000 training samples, on the CPU."""
    from tunebook.data import load_dataset
    from tunebook.engine.common import DeviceData

    return DeviceData.from_dataset(load_dataset(train_subset=3000), "cpu")


@pytest.fixture
def cli_env(tmp_path):
    """Environment for running `python -m tunebook` in a subprocess."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def tunebook_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tunebook", *args]
