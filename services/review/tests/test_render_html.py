"""The HTML report: self-contained, every section under both headings, the charts as
inline SVG, everything escaped."""

from __future__ import annotations

import re

from services.review.tests.sample_report import NOV, UNTIL, sample_report

from leadloop_review.domain.build import build_report
from leadloop_review.domain.model import SECTIONS
from leadloop_review.domain.tally import Tally
from leadloop_review.render import formats, renderer
from leadloop_review.render_html import render


def test_self_contained_bilingual_with_charts() -> None:
    html = render(sample_report())
    assert "html" in formats()
    assert renderer("html") is render
    assert not re.search(r"https?:", html)
    assert not re.search(r"<(script|img|iframe|link)\b[^>]*\b(src|href)=", html, re.I)
    assert "<link" not in html
    assert "@import" not in html
    assert not re.search(r"url\(\s*[^#\s]", html)  # only url(#id) within the page
    for _, zh, en in SECTIONS:
        assert f'<span class="zh">{zh}</span><span class="en">{en}</span>' in html
    assert html.count("<svg") >= 4
    assert html.count("</svg>") == html.count("<svg")
    # Chart text is drawn as paths: no <text> and no font the reader must have.
    assert "<text" not in html
    assert "font-family" not in html.split("</style>", 1)[1]


def test_everything_is_escaped() -> None:
    html = render(sample_report())
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script>") == 1  # the readiness check, inline


def test_an_empty_period_still_renders_every_chart() -> None:
    html = render(build_report(Tally(NOV), UNTIL))
    assert html.count("<svg") >= 4
    assert "(none 无)" in html
