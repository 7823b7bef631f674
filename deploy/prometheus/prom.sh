#!/usr/bin/env bash
# Prometheus for the local stack and the tests: Debian's `prometheus` binary (installed by
# deploy/system.sh) on loopback, with its data under .state/ (git-ignored).
#   prom.sh start    write the config, start, wait until ready (idempotent)
#   prom.sh stop     stop it (SIGTERM, then SIGKILL after 20 s)
#   prom.sh status
# Environment (all optional):
#   LEADLOOP_PROM_PORT      listen port on 127.0.0.1 (default 19090)
#   LEADLOOP_PROM_DIR       config, data, pid and log directory (default .state/prometheus)
#   LEADLOOP_PROM_TARGET    metrics service to scrape (default that of prometheus.yml,
#                           127.0.0.1:18084); the tests point it at their own service
#   LEADLOOP_PROM_ASSIGNMENT_TARGET, LEADLOOP_PROM_SLA_TARGET
#                           assignment and sla-monitor (their calendar gauge; defaults
#                           127.0.0.1:18082 and 127.0.0.1:18083)
#   LEADLOOP_PROM_HANDOFF_TARGET, LEADLOOP_PROM_NOTIFIER_TARGET
#                           the hand-off and the notifier (defaults 127.0.0.1:18085 and
#                           127.0.0.1:18086)
#   LEADLOOP_PROM_INTERVAL  scrape and rule evaluation interval (default that of
#                           prometheus.yml, 5s)
#   LEADLOOP_PROM_RULES     directory of rule files (default deploy/prometheus/rules); a
#                           test that must see an alert fire within seconds points it at
#                           the repository's rules with their windows shortened
# The config written is deploy/prometheus/prometheus.yml with those values and an
# absolute path to the rules, by default deploy/prometheus/rules, the repository's.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${LEADLOOP_PROM_DIR:-${LEADLOOP_STATE_DIR:-$root/.state}/prometheus}
port=${LEADLOOP_PROM_PORT:-19090}
pidfile=$dir/prometheus.pid
config=$dir/prometheus.yml
log=$dir/prometheus.log

name=prometheus
. "$here/../lib/daemon.sh"

write_config() {
  local target=${LEADLOOP_PROM_TARGET:-} interval=${LEADLOOP_PROM_INTERVAL:-}
  local assignment=${LEADLOOP_PROM_ASSIGNMENT_TARGET:-} sla=${LEADLOOP_PROM_SLA_TARGET:-}
  local handoff=${LEADLOOP_PROM_HANDOFF_TARGET:-} notifier=${LEADLOOP_PROM_NOTIFIER_TARGET:-}
  local rules=${LEADLOOP_PROM_RULES:-$here/rules}
  sed -e "s#^  - rules/\*\.yml#  - $rules/*.yml#" \
      ${target:+-e "s#\"127.0.0.1:18084\"#\"$target\"#"} \
      ${assignment:+-e "s#\"127.0.0.1:18082\"#\"$assignment\"#"} \
      ${sla:+-e "s#\"127.0.0.1:18083\"#\"$sla\"#"} \
      ${handoff:+-e "s#\"127.0.0.1:18085\"#\"$handoff\"#"} \
      ${notifier:+-e "s#\"127.0.0.1:18086\"#\"$notifier\"#"} \
      ${interval:+-e "s#^  scrape_interval: .*#  scrape_interval: $interval#"} \
      ${interval:+-e "s#^  evaluation_interval: .*#  evaluation_interval: $interval#"} \
      "$here/prometheus.yml" > "$config.tmp"
  mv "$config.tmp" "$config"
}

start() {
  command -v prometheus >/dev/null || { echo "prometheus: not installed; run make system" >&2; exit 1; }
  mkdir -p "$dir/data"
  write_config
  if running; then
    # Pick up a changed config or rules without a restart.
    kill -HUP "$(cat "$pidfile")"
    echo "prometheus: running on 127.0.0.1:$port (pid $(cat "$pidfile")), config reloaded"
    return 0
  fi
  # 35 days of data: the repurchase rate looks back 30 (rules/accountability.yml).
  setsid prometheus \
    --config.file="$config" \
    --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=35d \
    --web.listen-address="127.0.0.1:$port" \
    --web.enable-lifecycle \
    >>"$log" 2>&1 </dev/null &
  await_ready $!
}

status() {
  if running && ready; then echo "prometheus: ready on 127.0.0.1:$port (pid $(cat "$pidfile"))"
  elif running; then echo "prometheus: starting (pid $(cat "$pidfile"))"
  else echo "prometheus: stopped"; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
