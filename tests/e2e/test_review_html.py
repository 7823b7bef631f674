"""The HTML review in a real headless Chromium (Debian's package): the page loads with no
console error, every chart has drawn, Chinese is drawn in a real font (no tofu), and the
screenshot is not blank. Needs no stack: the report comes from hand-made facts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from services.review.tests.sample_report import sample_report

from leadloop_review.render_html import render

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=120, check=True
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_report_renders_in_chromium(tmp_path: Path) -> None:
    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True)
    assert fonts.stdout.strip(), "no Chinese font for Chromium (fonts-noto-cjk)"
    page = tmp_path / "review.html"
    page.write_text(render(sample_report()), encoding="utf-8")
    url = page.as_uri()

    dom = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", url)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None
    data = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1)))
    assert data["ready"] == "yes", data  # every SVG drew a non-empty box
    assert int(data["svgs"]) >= 4
    assert data["drawn"] == data["svgs"]
    assert data["zh-tofu"] == "no", data

    png = tmp_path / "review.png"
    _chromium(f"--screenshot={png}", "--window-size=1280,4000", url)
    image = Image.open(png).convert("L")
    assert image.size == (1280, 4000)
    histogram = image.histogram()
    ink = sum(histogram[:200])  # pixels clearly darker than the white page
    assert ink > 0.02 * image.size[0] * image.size[1]
    # The first chart (the funnel, below the summary and the suggestions) has coloured bars.
    colours = Image.open(png).convert("RGB").crop((0, 0, 1280, 1200)).getcolors(1 << 20)
    assert colours is not None
    assert any(
        abs(r - 76) < 8 and abs(g - 120) < 8 and abs(b - 168) < 8 for _, (r, g, b) in colours
    )
