"""The HTML report's Jinja2 template (a string, so no package data to ship).

Self-contained: the style and the readiness check are inline, the charts are inline SVG
whose text is drawn as paths, and nothing names a URL. Everything a report carries is
escaped by autoescape; only the SVG (made here, from numbers and escaped labels) is
marked safe.
"""

from __future__ import annotations

__all__ = ["REPORT_HTML"]

REPORT_HTML = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>复盘 Review {{ r.period }} — {{ scope }}</title>
<style>
body { font-family: "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "PingFang SC",
       "Microsoft YaHei", "Hiragino Sans GB", sans-serif; margin: 2rem auto; max-width: 1200px;
       color: #1f2328; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
h2 .en, h1 .en { color: #57606a; font-weight: normal; margin-left: .4rem; }
h3 { font-size: 1rem; margin: 1.2rem 0 .4rem; }
.summary { color: #57606a; }
.chart svg { max-width: 100%; height: auto; display: block; }
.tablewrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: .82rem; margin: .3rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .2rem .45rem; text-align: right; white-space: nowrap; }
th { background: #f6f8fa; }
td.t, th.t { text-align: left; }
tr.total td { font-weight: bold; }
.none { color: #57606a; font-style: italic; }
ul.suggestions li { margin: .3rem 0; }
</style>
</head>
<body>
<h1>复盘<span class="en">Review</span> {{ r.period }} — {{ scope }}</h1>
<p class="summary">{{ "%s – %s"|format(r.start.strftime("%Y-%m-%d"), r.end.strftime("%Y-%m-%d")) }}
(UTC, end exclusive); facts up to {{ r.until.strftime("%Y-%m-%d %H:%M") }} UTC;
baseline period {{ r.previous_period }}. {{ r.leads }} leads accepted, {{ r.funnel.total.won }}
won ({{ won_amount }}), {{ r.losses.lost }} lost.</p>
{% for s in sections %}
<section id="{{ s.key }}">
<h2><span class="zh">{{ s.zh }}</span><span class="en">{{ s.en }}</span></h2>
{% for line in s.lines %}<p>{{ line }}</p>{% endfor %}
{% for chart in s.charts %}<figure class="chart">{{ chart }}</figure>{% endfor %}
{% if s.items is not none %}
  {% if s.items %}<ul class="suggestions">
  {% for item in s.items %}<li>{{ item }}</li>{% endfor %}
  </ul>
  {% else %}<p class="none">(none 无)</p>{% endif %}
{% endif %}
{% for t in s.tables %}
<h3>{{ t.title }}</h3>
{% if t.rows %}
<div class="tablewrap"><table>
<thead><tr>{% for h in t.head %}
<th{{ ' class="t"'|safe if loop.index0 < t.text_cols }}>{{ h }}</th>
{%- endfor %}</tr></thead>
<tbody>
{% for row in t.rows %}<tr{{ ' class="total"'|safe if row.total }}>{% for c in row.cells %}
<td{{ ' class="t"'|safe if loop.index0 < t.text_cols }}>{{ c }}</td>
{%- endfor %}</tr>
{% endfor %}
</tbody></table></div>
{% else %}<p class="none">(none 无)</p>{% endif %}
{% endfor %}
</section>
{% endfor %}
<script>
(function () {
  var svgs = document.querySelectorAll("svg");
  var drawn = 0;
  for (var i = 0; i < svgs.length; i++) {
    var box = svgs[i].getBoundingClientRect();
    if (box.width > 0 && box.height > 0 && svgs[i].querySelector("path")) { drawn++; }
  }
  // Tofu check: every missing glyph draws the same box, so the heading's characters
  // must draw differently from each other and from an unassigned code point.
  var font = "32px " + getComputedStyle(document.body).fontFamily;
  function ink(text) {
    var c = document.createElement("canvas");
    c.width = 64 * text.length; c.height = 48;
    var ctx = c.getContext("2d");
    ctx.font = font; ctx.fillText(text, 0, 36);
    return c.toDataURL();
  }
  var zh = document.querySelector("h2 .zh").textContent;
  var glyphs = {};
  for (var k = 0; k < zh.length; k++) { glyphs[ink(zh[k])] = true; }
  var distinct = Object.keys(glyphs).length;
  var tofu = ink("\u0378");
  document.body.dataset.zhDistinct = String(distinct) + "/" + String(zh.length);
  document.body.dataset.zhTofu = (distinct < zh.length || glyphs[tofu]) ? "yes" : "no";
  document.body.dataset.svgs = String(svgs.length);
  document.body.dataset.drawn = String(drawn);
  document.body.dataset.ready = drawn === svgs.length ? "yes" : "no";
})();
</script>
</body>
</html>
"""
