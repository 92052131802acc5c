from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    # pytest-xdist's workers share the machine's cores: each (and what it starts) gets its
    # share of threads, not all of them — torch's threads spin, and four on two cores wait
    # on each other. Tests whose numbers need a thread count set it themselves.
    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    os.environ["OMP_NUM_THREADS"] = str(_share)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(_share)


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


@pytest.fixture
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www: yields (folder, base URL, the
    paths asked for, in order)."""
    root = tmp_path / "www"
    root.mkdir()
    asked: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a, **k):
            pass

        def do_GET(self):
            asked.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/", asked
    httpd.shutdown()
    httpd.server_close()
