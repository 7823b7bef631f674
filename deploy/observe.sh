#!/usr/bin/env bash
# What watches and stands in around the local stack (make up / make down): Prometheus
# scraping the metrics service (and assignment's and sla-monitor's calendar gauge),
# Alertmanager receiving the SLA monitor's pages, and three local stand-ins for the
# outside world from the test harness (tests/fakes/), each recording what it received
# and forwarding nothing:
#   chat-sink   (tests/fakes/chat_sink.py) the chat webhook Alertmanager notifies
#   crm-sink    (tests/fakes/local_crm.py) the CRM webhook the hand-off delivers to
#   wecom-sink  (tests/fakes/local_wecom.py) the WeCom the notifier sends to
# Each lists what it received on GET /received. deploy/alertmanager/examples/production.yml
# shows real receivers; config/crm.yaml and config/notify.yaml real targets and channels.
# `start` also writes .state/observe/crm.yaml and notify.yaml: config/demo/'s files with
# these ports, which `make up` hands to the hand-off and the notifier.
#   observe.sh start | stop | status
# Ports: LEADLOOP_PROM_PORT (19090), LEADLOOP_AM_PORT (19094), LEADLOOP_CHAT_SINK_PORT
# (19095), LEADLOOP_CRM_SINK_PORT (19096), LEADLOOP_WECOM_SINK_PORT (19097); the metrics
# service is scraped at LEADLOOP_PORT_BASE + 4 (18084), assignment and sla-monitor at + 2
# and + 3, the hand-off and the notifier at + 5 and + 6.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
state=${LEADLOOP_STATE_DIR:-$root/.state}
obs=$state/observe
py=${LEADLOOP_PYTHON:-$root/.venv/bin/python}
base=${LEADLOOP_PORT_BASE:-18080}
sink_port=${LEADLOOP_CHAT_SINK_PORT:-19095}
crm_port=${LEADLOOP_CRM_SINK_PORT:-19096}
wecom_port=${LEADLOOP_WECOM_SINK_PORT:-19097}
export LEADLOOP_PROM_TARGET=${LEADLOOP_PROM_TARGET:-127.0.0.1:$((base + 4))}
export LEADLOOP_PROM_ASSIGNMENT_TARGET=${LEADLOOP_PROM_ASSIGNMENT_TARGET:-127.0.0.1:$((base + 2))}
export LEADLOOP_PROM_SLA_TARGET=${LEADLOOP_PROM_SLA_TARGET:-127.0.0.1:$((base + 3))}
export LEADLOOP_PROM_HANDOFF_TARGET=${LEADLOOP_PROM_HANDOFF_TARGET:-127.0.0.1:$((base + 5))}
export LEADLOOP_PROM_NOTIFIER_TARGET=${LEADLOOP_PROM_NOTIFIER_TARGET:-127.0.0.1:$((base + 6))}
export LEADLOOP_AM_WEBHOOK=${LEADLOOP_AM_WEBHOOK:-http://127.0.0.1:$sink_port/alerts}
# name:port of the stand-ins, in start order
standins="chat-sink:$sink_port crm-sink:$crm_port wecom-sink:$wecom_port"

alive() { [ -f "$obs/$1.pid" ] && kill -0 "$(cat "$obs/$1.pid")" 2>/dev/null; }

# Start one stand-in in the background (secrets come from .state/env, not arguments).
launch() {
  local args
  case "$1" in
    chat-sink) args=(tests.fakes.chat_sink --port "$2" --record "$obs/chat.jsonl") ;;
    crm-sink) args=(tests.fakes.local_crm --port "$2" --record "$obs/crm.jsonl") ;;
    wecom-sink) args=(tests.fakes.local_wecom --port "$2" --record "$obs/wecom.jsonl"
      --rules "${LEADLOOP_RULES_FILE:-config/rules.yaml}") ;;
  esac
  (cd "$root" && exec setsid "$py" -m "${args[@]}" >>"$obs/$1.log" 2>&1 </dev/null) &
  echo $! > "$obs/$1.pid"
}

# config/demo/<file> with the stand-ins' ports, for the services `make up` starts.
render_configs() {
  sed "s#127\.0\.0\.1:19096#127.0.0.1:$crm_port#g" "$root/config/demo/crm.yaml" > "$obs/crm.yaml"
  sed "s#127\.0\.0\.1:19097#127.0.0.1:$wecom_port#g" "$root/config/demo/notify.yaml" > "$obs/notify.yaml"
}

start() {
  "$here/prometheus/prom.sh" start
  mkdir -p "$obs"
  render_configs
  if [ -f "$state/env" ]; then
    # shellcheck disable=SC1091
    . "$state/env"  # the stand-ins' secrets (deploy/env.sh)
  fi
  for s in $standins; do
    IFS=: read -r name port <<<"$s"
    if alive "$name"; then
      echo "$name: already running (pid $(cat "$obs/$name.pid"))"
      continue
    fi
    launch "$name" "$port"
    echo "$name: started (pid $(cat "$obs/$name.pid"), http://127.0.0.1:$port/received)"
  done
  "$here/alertmanager/am.sh" start
}

stop() {
  "$here/alertmanager/am.sh" stop
  for s in $standins; do
    IFS=: read -r name _ <<<"$s"
    if alive "$name"; then
      pid=$(cat "$obs/$name.pid")
      kill -TERM "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
      echo "$name: stopped"
    fi
    rm -f "$obs/$name.pid"
  done
  "$here/prometheus/prom.sh" stop
}

status() {
  "$here/prometheus/prom.sh" status || true
  "$here/alertmanager/am.sh" status || true
  for s in $standins; do
    IFS=: read -r name port <<<"$s"
    if alive "$name"; then echo "$name: running (pid $(cat "$obs/$name.pid"), port $port)"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
