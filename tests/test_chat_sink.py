"""The chat webhook sink: chat-tool message bodies, and what it records."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.fakes.chat_sink import STYLES, ChatSink, render

NOTIFICATION = {
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {
                "team": "north",
                "kind": "first_response",
                "level": "3",
                "action": "page_oncall",
                "lead_id": "lead-1",
            },
        }
    ],
}


def test_every_chat_style_carries_the_alert_line() -> None:
    line = "[FIRING] team north · first_response level 3 page_oncall · lead lead-1"
    bodies = {
        style: json.dumps(render(NOTIFICATION, style), ensure_ascii=False) for style in STYLES
    }
    assert all(line in body for body in bodies.values())
    assert render(NOTIFICATION, "slack").keys() == {"text"}
    assert render(NOTIFICATION, "wecom")["msgtype"] == "markdown"
    assert render(NOTIFICATION, "dingtalk")["markdown"]["title"].startswith("leadloop SLA")
    assert render(NOTIFICATION, "feishu")["msg_type"] == "text"


def test_the_sink_records_what_it_receives(tmp_path: Path) -> None:
    record = tmp_path / "sink.jsonl"
    sink = ChatSink(port=0, record=record).start()
    try:
        req = urllib.request.Request(
            sink.url("/alerts"),
            data=json.dumps(NOTIFICATION).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200
        with urllib.request.urlopen(sink.url("/received"), timeout=5) as r:
            listed = json.loads(r.read())
    finally:
        sink.stop()
    (entry,) = sink.received()
    assert entry["path"] == "/alerts"
    assert entry["body"] == NOTIFICATION
    assert listed == [entry]
    assert [json.loads(line) for line in record.read_text().splitlines()] == [entry]


def _post(url: str) -> int:
    req = urllib.request.Request(
        url, data=json.dumps(NOTIFICATION).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_style_in_the_url_picks_the_chat_template() -> None:
    sink = ChatSink(port=0).start()
    try:
        assert _post(sink.url("/alerts?style=wecom")) == 200
        assert _post(sink.url("/alerts")) == 200
        assert _post(sink.url("/alerts?style=feishu")) == 200
        assert _post(sink.url("/alerts?style=teams")) == 400
    finally:
        sink.stop()
    wecom, default, feishu = sink.received()  # the refused one is not recorded
    assert (wecom["style"], default["style"], feishu["style"]) == ("wecom", "slack", "feishu")
    assert wecom["message"] == render(NOTIFICATION, "wecom")
    assert wecom["message"]["msgtype"] == "markdown"
    assert default["message"] == render(NOTIFICATION, "slack")
    assert default["message"].keys() == {"text"}
    assert feishu["message"]["msg_type"] == "text"
