"""Loaded by every Python process whose PYTHONPATH starts here (worker processes
included): makes groups whose first layer is TUNEBOOK_TEST_FAIL_WIDTH units wide raise
inside the engine, as a real bug in training would. Test-only; never on a user's path."""

import os

_WIDTH = os.environ.get("TUNEBOOK_TEST_FAIL_WIDTH")
if _WIDTH:
    from tunebook import engine

    _real = engine.ENGINES["stacked"]

    def _faulty(group, data, **kwargs):
        if any(c.layers[0] == int(_WIDTH) for c in group):
            raise RuntimeError(f"injected fault for width {_WIDTH}")
        return _real(group, data, **kwargs)

    engine.ENGINES["stacked"] = _faulty
