"""Render report.html in real headless Chromium: not blank, no console errors."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .test_report import study_folder  # noqa: F401  (the fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed")
def test_report_renders_in_headless_chromium(study_folder, tmp_path):  # noqa: F811
    assert CHROMIUM, "CI must install chromium (scripts/system-deps.sh --with-browser)"
    from tunebook.report import write_report

    _, html = write_report(study_folder)
    png = tmp_path / "page.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--hide-scrollbars", "--window-size=1200,2400", f"--screenshot={png}", html.resolve().as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [line for line in p.stderr.splitlines() if "CONSOLE" in line or "Failed to load resource" in line
               or "net::ERR" in line]
    assert console == [], console
    import matplotlib.image

    img = matplotlib.image.imread(str(png))
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    gray = img[..., :3].mean(axis=2)
    assert gray.std() > 0.05, "the page rendered blank"
    assert (gray < 0.5).mean() > 0.005, "no dark pixels: no text or figures drawn"
