"""A chat webhook sink: receives Alertmanager's webhook notifications and records them.

Run it from the repository root as ``python -m tests.fakes.chat_sink [--port 19095]
[--record FILE]`` (``make up`` does, through deploy/observe.sh). Alertmanager's
receivers (deploy/alertmanager/alertmanager.yml) post to
``http://127.0.0.1:19095/alerts?style=STYLE``, the chat tool of the alert's team
(Alertmanager routes by the ``team`` label). Each notification is kept with the message
in that style (``message``, ``render``: Slack, WeCom, DingTalk, Feishu webhook bodies;
no ``style``: Slack) and in every style (``messages``), appended to ``--record`` as
JSON lines, and listed by ``GET /received``. An unknown style is refused (400), so a
typo in a route shows at once. It stands in for the chat bridge locally and in tests;
it forwards nothing, which is why it lives with the test doubles and not in a service: a
production Alertmanager notifies a pager or a chat bridge
(deploy/alertmanager/examples/production.yml).
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlsplit

__all__ = ["STYLES", "ChatSink", "main", "render"]

Style = Literal["slack", "wecom", "dingtalk", "feishu"]
STYLES: tuple[Style, ...] = ("slack", "wecom", "dingtalk", "feishu")
_MAX_BODY = 1 << 20


def _line(alert: dict[str, Any]) -> str:
    labels = alert.get("labels", {})
    status = str(alert.get("status", "firing")).upper()
    return (
        f"[{status}] team {labels.get('team', '?')} · {labels.get('kind', '?')} "
        f"level {labels.get('level', '?')} {labels.get('action', '?')} · "
        f"lead {labels.get('lead_id', '?')}"
    )


def render(notification: dict[str, Any], style: Style) -> dict[str, Any]:
    """The webhook body the chat tool ``style`` expects, for one Alertmanager
    notification (labels are ids only, so the message carries no personal data)."""
    alerts = notification.get("alerts", [])
    title = f"leadloop SLA: {notification.get('status', 'firing')} ({len(alerts)})"
    text = "\n".join([title, *(_line(a) for a in alerts)])
    if style == "slack":
        return {"text": text}
    if style == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text}}
    if style == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}
    return {"msg_type": "text", "content": {"text": text}}


class ChatSink:
    """The sink as an HTTP server in a background thread (``start``/``stop``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 19095, record: Path | None = None):
        self._lock = threading.Lock()
        self._received: list[dict[str, Any]] = []
        self._record = record
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                style = parse_qs(urlsplit(self.path).query).get("style", ["slack"])[-1]
                if style not in STYLES:
                    self.send_error(400, "unknown style")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > _MAX_BODY:
                    self.send_error(413)
                    return
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self.send_error(400, "invalid JSON")
                    return
                sink._keep({"path": self.path, "style": style, "body": body})
                self.send_response(200)
                self.end_headers()

            def do_GET(self) -> None:
                payload = json.dumps(sink.received()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the record is what matters

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url(self, path: str = "/alerts") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _keep(self, entry: dict[str, Any]) -> None:
        if isinstance(entry["body"], dict):
            entry["message"] = render(entry["body"], cast(Style, entry["style"]))
            entry["messages"] = {s: render(entry["body"], s) for s in STYLES}
        with self._lock:
            self._received.append(entry)
            if self._record is not None:
                with self._record.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._received)

    def start(self) -> ChatSink:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description="Record Alertmanager webhook notifications.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=19095)
    parser.add_argument("--record", type=Path, default=None, help="append JSON lines here")
    args = parser.parse_args()
    ChatSink(args.host, args.port, args.record).serve_forever()


if __name__ == "__main__":
    main()
