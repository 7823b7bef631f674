#!/usr/bin/env bash
# What watches the local stack (make up / make down): Prometheus scraping the metrics
# service (and assignment's and sla-monitor's calendar gauge), Alertmanager receiving the
# SLA monitor's pages, and the chat webhook sink Alertmanager notifies: a local stand-in
# from the test harness (tests/fakes/chat_sink.py) that records what on-call would see and
# forwards nothing. deploy/alertmanager/examples/production.yml shows real receivers.
#   observe.sh start | stop | status
# Ports: LEADLOOP_PROM_PORT (19090), LEADLOOP_AM_PORT (19094), LEADLOOP_CHAT_SINK_PORT
# (19095); the metrics service is scraped at LEADLOOP_PORT_BASE + 4 (18084), assignment
# and sla-monitor at + 2 and + 3, the hand-off and the notifier at + 5 and + 6.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
state=${LEADLOOP_STATE_DIR:-$root/.state}
py=${LEADLOOP_PYTHON:-$root/.venv/bin/python}
base=${LEADLOOP_PORT_BASE:-18080}
sink_port=${LEADLOOP_CHAT_SINK_PORT:-19095}
sink_pid=$state/observe/chat-sink.pid
export LEADLOOP_PROM_TARGET=${LEADLOOP_PROM_TARGET:-127.0.0.1:$((base + 4))}
export LEADLOOP_PROM_ASSIGNMENT_TARGET=${LEADLOOP_PROM_ASSIGNMENT_TARGET:-127.0.0.1:$((base + 2))}
export LEADLOOP_PROM_SLA_TARGET=${LEADLOOP_PROM_SLA_TARGET:-127.0.0.1:$((base + 3))}
export LEADLOOP_PROM_HANDOFF_TARGET=${LEADLOOP_PROM_HANDOFF_TARGET:-127.0.0.1:$((base + 5))}
export LEADLOOP_PROM_NOTIFIER_TARGET=${LEADLOOP_PROM_NOTIFIER_TARGET:-127.0.0.1:$((base + 6))}
export LEADLOOP_AM_WEBHOOK=${LEADLOOP_AM_WEBHOOK:-http://127.0.0.1:$sink_port/alerts}

sink_alive() { [ -f "$sink_pid" ] && kill -0 "$(cat "$sink_pid")" 2>/dev/null; }

start() {
  "$here/prometheus/prom.sh" start
  mkdir -p "$state/observe"
  if sink_alive; then
    echo "chat-sink: already running (pid $(cat "$sink_pid"))"
  else
    (cd "$root" && exec setsid "$py" -m tests.fakes.chat_sink --port "$sink_port" \
      --record "$state/observe/chat.jsonl" >>"$state/observe/chat-sink.log" 2>&1 </dev/null) &
    echo $! > "$sink_pid"
    echo "chat-sink: started (pid $!, http://127.0.0.1:$sink_port/received)"
  fi
  "$here/alertmanager/am.sh" start
}

stop() {
  "$here/alertmanager/am.sh" stop
  if sink_alive; then
    kill -TERM "$(cat "$sink_pid")"
    for _ in $(seq 1 50); do sink_alive || break; sleep 0.1; done
    sink_alive && kill -KILL "$(cat "$sink_pid")" 2>/dev/null || true
    echo "chat-sink: stopped"
  fi
  rm -f "$sink_pid"
  "$here/prometheus/prom.sh" stop
}

status() {
  "$here/prometheus/prom.sh" status || true
  "$here/alertmanager/am.sh" status || true
  if sink_alive; then echo "chat-sink: running (pid $(cat "$sink_pid"), port $sink_port)"; else echo "chat-sink: stopped"; fi
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
