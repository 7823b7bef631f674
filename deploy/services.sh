#!/usr/bin/env bash
# The leadloop services as background processes (make up / make down).
#   services.sh start    start each service that is not already running (idempotent)
#   services.sh stop     SIGTERM each, wait for a clean shutdown, SIGKILL after 30 s
#   services.sh status
#   services.sh wait     wait until every service answers /readyz
# Environment comes from .state/env (written by deploy/env.sh); logs go to .state/logs.
# Each service connects to PostgreSQL as its own login when .state/env names one
# (LEADLOOP_INGEST_DATABASE_URL, LEADLOOP_ASSIGNMENT_DATABASE_URL,
# LEADLOOP_SLA_MONITOR_DATABASE_URL, LEADLOOP_METRICS_DATABASE_URL, LEADLOOP_HANDOFF_DATABASE_URL,
# LEADLOOP_NOTIFIER_DATABASE_URL), else as DATABASE_URL.
# Ingest's admin listener (POST /v1/admin/resume after the broken-producer guard halted
# it) is on LEADLOOP_PORT_BASE + 101 (18181) with LEADLOOP_DEMO_ADMIN_TOKEN from
# .state/env as its bearer token, unless LEADLOOP_ADMIN_TOKEN / LEADLOOP_ADMIN__PORT are
# set: a local stack an operator cannot resume would stay halted until restarted.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
state=${LEADLOOP_STATE_DIR:-$root/.state}
run=$state/run
logs=$state/logs
py=${LEADLOOP_PYTHON:-$root/.venv/bin/python}
# name:package:port (ports are LEADLOOP_PORT_BASE + 1..6; 18080 unless set)
base=${LEADLOOP_PORT_BASE:-18080}
services="ingest:leadloop_ingest:$((base+1)) assignment:leadloop_assignment:$((base+2)) sla-monitor:leadloop_sla_monitor:$((base+3)) metrics:leadloop_metrics:$((base+4)) handoff:leadloop_handoff:$((base+5)) notifier:leadloop_notifier:$((base+6))"

# A process runs when it exists and is not a zombie (Z) or dead (X): a worker just
# killed stays in the process table, and answers kill -0, until its parent reaps it.
running() {
  local pid=$1 stat state
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/stat" ]; then
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    state=${stat##*) }; state=${state%% *}   # the field after "(comm)", which may hold spaces
  else
    state=$(ps -o stat= -p "$pid" 2>/dev/null) || return 1
    state=${state# }
  fi
  case "$state" in Z*|X*|"") return 1 ;; esac
}

alive() { [ -f "$run/$1.pid" ] && running "$(cat "$run/$1.pid")"; }

start() {
  mkdir -p "$run" "$logs"
  # shellcheck disable=SC1091
  . "$state/env"
  for s in $services; do
    IFS=: read -r name pkg port <<<"$s"
    if alive "$name"; then echo "$name: already running (pid $(cat "$run/$name.pid"))"; continue; fi
    own=LEADLOOP_$(echo "$name" | tr 'a-z-' 'A-Z_')_DATABASE_URL
    extra=()
    if [ "$name" = ingest ] && [ -n "${LEADLOOP_ADMIN_TOKEN:-${LEADLOOP_DEMO_ADMIN_TOKEN:-}}" ]; then
      extra=("LEADLOOP_ADMIN_TOKEN=${LEADLOOP_ADMIN_TOKEN:-$LEADLOOP_DEMO_ADMIN_TOKEN}"
             "LEADLOOP_ADMIN__PORT=${LEADLOOP_ADMIN__PORT:-$((base+101))}")
    fi
    (cd "$root" && exec env ${extra[@]+"${extra[@]}"} DATABASE_URL="${!own:-$DATABASE_URL}" LEADLOOP_HTTP__PORT="$port" LEADLOOP_DATA_DIR="$state/data" setsid "$py" -m "$pkg" >>"$logs/$name.log" 2>&1 </dev/null) &
    echo $! > "$run/$name.pid"
    echo "$name: started (pid $!, http://127.0.0.1:$port)"
  done
}

stop() {
  for s in $services; do
    IFS=: read -r name _ _ <<<"$s"
    alive "$name" && kill -TERM "$(cat "$run/$name.pid")" 2>/dev/null || true
  done
  for s in $services; do
    IFS=: read -r name _ _ <<<"$s"
    [ -f "$run/$name.pid" ] || continue
    pid=$(cat "$run/$name.pid")
    for _ in $(seq 1 60); do running "$pid" || break; sleep 0.5; done
    if running "$pid"; then echo "$name: forcing stop"; kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$run/$name.pid"; echo "$name: stopped"
  done
}

status() {
  for s in $services; do
    IFS=: read -r name _ port <<<"$s"
    if alive "$name"; then echo "$name: running (pid $(cat "$run/$name.pid"), port $port)"; else echo "$name: stopped"; fi
  done
}

wait_ready() {
  for s in $services; do
    IFS=: read -r name _ port <<<"$s"
    for i in $(seq 1 120); do
      if "$py" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/readyz', timeout=2)" 2>/dev/null; then
        echo "$name: ready"; break
      fi
      alive "$name" || { echo "$name: exited; see $logs/$name.log" >&2; tail -n 20 "$logs/$name.log" >&2; exit 1; }
      [ "$i" = 120 ] && { echo "$name: not ready after 60 s; see $logs/$name.log" >&2; exit 1; }
      sleep 0.5
    done
  done
}

case "${1:-}" in
  start) start ;; stop) stop ;; status) status ;; wait) wait_ready ;;
  *) echo "usage: $0 start|stop|status|wait" >&2; exit 2 ;;
esac
