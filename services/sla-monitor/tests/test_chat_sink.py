"""The chat webhook sink: chat-tool message bodies, and what it records."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from leadloop_sla_monitor.chat_sink import STYLES, ChatSink, render

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
