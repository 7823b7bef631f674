#!/usr/bin/env bash
# Alertmanager for the local stack and the tests: Debian's prometheus-alertmanager
# (installed by deploy/system.sh) on loopback, with its data under .state/ (git-ignored).
#   am.sh start    write the config, start, wait until ready (idempotent)
#   am.sh stop     stop it (SIGTERM, then SIGKILL after 20 s)
#   am.sh status
# Environment (all optional):
#   LEADLOOP_AM_PORT            listen port on 127.0.0.1 (default 19094)
#   LEADLOOP_AM_DIR             config, data, pid and log directory
#                               (default .state/alertmanager)
#   LEADLOOP_AM_WEBHOOK         the chat webhook sink every receiver posts to (default
#                               that of alertmanager.yml, 127.0.0.1:19095/alerts: the
#                               local stand-in tests/fakes/chat_sink.py); each receiver
#                               keeps its ?style=... query after it
#   LEADLOOP_AM_GROUP_WAIT      route group_wait (default that of alertmanager.yml)
#   LEADLOOP_AM_GROUP_INTERVAL  route group_interval (default that of alertmanager.yml)
# The config written is deploy/alertmanager/alertmanager.yml with those values.
# Clustering is off (a single local instance).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${LEADLOOP_AM_DIR:-${LEADLOOP_STATE_DIR:-$root/.state}/alertmanager}
port=${LEADLOOP_AM_PORT:-19094}
pidfile=$dir/alertmanager.pid
config=$dir/alertmanager.yml
log=$dir/alertmanager.log
bin=/usr/bin/prometheus-alertmanager

name=alertmanager
. "$here/../lib/daemon.sh"

write_config() {
  local hook=${LEADLOOP_AM_WEBHOOK:-} wait=${LEADLOOP_AM_GROUP_WAIT:-}
  local interval=${LEADLOOP_AM_GROUP_INTERVAL:-}
  sed -e "" ${hook:+-e "s#url: http://127.0.0.1:19095/alerts#url: $hook#"} \
      ${wait:+-e "s#^  group_wait: .*#  group_wait: $wait#"} \
      ${interval:+-e "s#^  group_interval: .*#  group_interval: $interval#"} \
      "$here/alertmanager.yml" > "$config.tmp"
  mv "$config.tmp" "$config"
}

start() {
  [ -x "$bin" ] || { echo "alertmanager: not installed; run make system" >&2; exit 1; }
  mkdir -p "$dir/data"
  write_config
  if running; then
    # Pick up a changed config without a restart.
    kill -HUP "$(cat "$pidfile")"
    echo "alertmanager: running on 127.0.0.1:$port (pid $(cat "$pidfile")), config reloaded"
    return 0
  fi
  setsid "$bin" \
    --config.file="$config" \
    --storage.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" \
    --cluster.listen-address= \
    >>"$log" 2>&1 </dev/null &
  await_ready $!
}

status() {
  if running && ready; then echo "alertmanager: ready on 127.0.0.1:$port (pid $(cat "$pidfile"))"
  elif running; then echo "alertmanager: running, not ready (pid $(cat "$pidfile"))"; return 1
  else echo "alertmanager: stopped"; return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
