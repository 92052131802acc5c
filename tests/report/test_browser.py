"""Render report.html in real headless Chromium: not blank, no console errors."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .test_report import study_folder  # noqa: F401  (the fixture)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _render(html, tmp_path, window="1200,2400"):
    """Screenshot ``html`` in headless Chromium; returns the image, after checking the
    console stayed clean."""
    assert CHROMIUM, "CI must install chromium (scripts/system-deps.sh --with-browser)"
    png = tmp_path / "page.png"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-quic", f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
           "--hide-scrollbars", f"--window-size={window}", f"--screenshot={png}", html.resolve().as_uri()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    console = [line for line in p.stderr.splitlines() if "CONSOLE" in line or "Failed to load resource" in line
               or "net::ERR" in line]
    assert console == [], console
    import matplotlib.image

    return matplotlib.image.imread(str(png))


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed")
def test_report_renders_in_headless_chromium(study_folder, tmp_path):  # noqa: F811
    from tunebook.report import write_report

    _, html = write_report(study_folder)
    img = _render(html, tmp_path)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    gray = img[..., :3].mean(axis=2)
    assert gray.std() > 0.05, "the page rendered blank"
    assert (gray < 0.5).mean() > 0.005, "no dark pixels: no text or figures drawn"


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Chromium is not installed")
def test_combined_page_renders_with_coloured_verdicts_and_links(study_folder, tmp_path):  # noqa: F811
    """The programme page: every verdict coloured as on the study pages, each study linked."""
    import re

    import numpy as np

    from tunebook.report import write_combined_report, write_report

    root = study_folder.parent
    write_report(study_folder)
    md, html = write_combined_report([study_folder], root)
    text = html.read_text()
    assert '<span class="tag supported">SUPPORTED</span>' in text or '<span class="tag refuted">' in text
    links = re.findall(r'<a href="([^"]+)">', text)
    assert links and all((html.parent / link).resolve() == (study_folder / "report" / "report.html").resolve()
                         for link in links)
    assert "](../tiny/report/report.md)" in md.read_text()
    img = _render(html, tmp_path, window="1200,1400")
    rgb = img[..., :3]
    green = (rgb[..., 1] > 0.5) & (rgb[..., 0] < 0.3) & (rgb[..., 2] < 0.35)  # #2a9d3b, the supported border
    red = (rgb[..., 0] > 0.6) & (rgb[..., 1] < 0.3) & (rgb[..., 2] < 0.3)     # #c9302c, the refuted border
    assert green.sum() > 20 and red.sum() > 20, (int(green.sum()), int(red.sum()))
    assert np.asarray(rgb).std() > 0.05
