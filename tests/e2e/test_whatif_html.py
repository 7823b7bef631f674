"""The what-if page in a real headless Chromium (Debian's package): it loads with no
console error, every chart has drawn, and the screenshot is not blank. Needs no stack:
the report comes from the hand-made history of the replay's unit tests, under the
configuration in force and a candidate with one rep of capacity 1 (a pool)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from services.whatif.tests.test_replay import ALWAYS, CONFIG, POLICIES, history

from leadloop_assignment.domain.rules import Rep, Rule, RuleSet, Team
from leadloop_whatif.domain.compare import compare
from leadloop_whatif.domain.replay import Configuration, replay
from leadloop_whatif.render import as_dict
from leadloop_whatif.render_html import render

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=120, check=True
    )


def report() -> dict[str, object]:
    one = RuleSet(
        version="candidate",
        teams=(Team(team_id="t", reps=(Rep(rep_id="a", capacity=1),)),),
        rules=(Rule(rule_id="all", team="t"),),
    )
    h = history()
    c = compare(replay(h, CONFIG), replay(h, Configuration(one, POLICIES, ALWAYS)), h, ["a note"])
    return as_dict(
        c,
        {
            "from": "2026-11-02T09:00:00+00:00",
            "to": "2026-11-02T10:00:00+00:00",
            "rule_version": "candidate",
        },
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed")
def test_page_renders_in_chromium(tmp_path: Path) -> None:
    page = tmp_path / "whatif.html"
    page.write_text(render(report()), encoding="utf-8")
    url = page.as_uri()

    dom = _chromium("--enable-logging=stderr", "--v=0", "--dump-dom", url)
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    body = re.search(r"<body([^>]*)>", dom.stdout)
    assert body is not None
    data = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body.group(1)))
    assert data["ready"] == "yes", data
    assert data["svgs"] == data["drawn"] == "3"
    assert "Pool over time" in dom.stdout
    assert "a note" in dom.stdout

    png = tmp_path / "whatif.png"
    _chromium(f"--screenshot={png}", "--window-size=1280,2400", url)
    image = Image.open(png).convert("L")
    ink = sum(image.histogram()[:200])
    assert ink > 0.01 * image.size[0] * image.size[1]
    colours = Image.open(png).convert("RGB").getcolors(1 << 20)
    assert colours is not None
    # The what-if's blue bars and lines are there.
    assert any(b > 180 and r < 80 and n > 500 for n, (r, g, b) in colours)
