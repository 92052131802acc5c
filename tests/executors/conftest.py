"""Fixtures of the executor tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ray_address():
    """One local Ray instance (2 CPUs) for every test of the session; its address lets a
    driver in a subprocess join it."""
    ray = pytest.importorskip("ray", reason="the Ray extra is part of the test install (pip install -e '.[test]')")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    if started:
        ray.shutdown()


def pytest_collection_modifyitems(config, items):
    """Every test on the local Ray instance runs in one pytest-xdist worker (``make test``
    runs two, ``--dist loadgroup``): one instance for them all, and no other worker starts
    or ends a Ray session while a test counts the session folders."""
    for item in items:
        if "ray_address" in getattr(item, "fixturenames", ()) or item.path.name == "test_ray.py" \
                or "[ray]" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("ray"))
