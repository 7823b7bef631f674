#!/usr/bin/env bash
# Apache Kafka (KRaft, single node, loopback) for the demo, the tests and the benchmarks.
#   kafka.sh fetch   resolve the broker jars with Maven (cached under .state/kafka/libs)
#   kafka.sh start   format storage once, start the broker, wait until it answers
#   kafka.sh stop    stop it cleanly (SIGTERM, then SIGKILL after 30 s)
#   kafka.sh status
# A user with their own Kafka sets LEADLOOP_KAFKA__BOOTSTRAP_SERVERS to its address;
# then start/stop do nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${LEADLOOP_STATE_DIR:-$root/.state}/kafka
port=${LEADLOOP_KAFKA_PORT:-19092}
controller_port=${LEADLOOP_KAFKA_CONTROLLER_PORT:-19093}
ours="127.0.0.1:$port"
# Jars can be shared between state folders (LEADLOOP_KAFKA_LIBS) so that a second
# stack, as in the lifecycle test, does not resolve them again.
libs=${LEADLOOP_KAFKA_LIBS:-$state/libs}
pidfile=$state/kafka.pid

external() {
  [ -n "${LEADLOOP_KAFKA__BOOTSTRAP_SERVERS:-}" ] && [ "$LEADLOOP_KAFKA__BOOTSTRAP_SERVERS" != "$ours" ]
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

fetch() {
  mkdir -p "$state"
  local stamp; stamp=$(sha256sum "$here/pom.xml" | cut -c1-16)
  if [ -f "$libs/.stamp" ] && [ "$(cat "$libs/.stamp")" = "$stamp" ]; then return 0; fi
  echo "kafka: resolving broker jars with Maven (first run only)"
  rm -rf "$libs.tmp"
  mvn -B -q -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs.tmp" -DincludeScope=runtime
  rm -rf "$libs" && mv "$libs.tmp" "$libs" && echo "$stamp" > "$libs/.stamp"
}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  if external; then echo "kafka: using $LEADLOOP_KAFKA__BOOTSTRAP_SERVERS"; return 0; fi
  if running; then echo "kafka: already running (pid $(cat "$pidfile"))"; return 0; fi
  fetch
  mkdir -p "$state/data"
  sed -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$controller_port#g" \
      -e "s#@DATA@#$state/data#g" "$here/server.properties" > "$state/server.properties"
  sed -e "s#@LOG@#$state/server.log#g" "$here/log4j2.properties" > "$state/log4j2.properties"
  if [ ! -f "$state/data/meta.properties" ]; then
    java -cp "$libs/*" kafka.tools.StorageTool format --ignore-formatted \
      -t "$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)" \
      -c "$state/server.properties" >/dev/null
  fi
  : > "$state/server.log"
  nohup java -Xms256m -Xmx1g -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$state/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$state/server.properties" \
    > "$state/stdout.log" 2>&1 < /dev/null &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if grep -q "Kafka Server started" "$state/server.log" 2>/dev/null && answers; then
      echo "kafka: ready on $ours (pid $(cat "$pidfile"))"; return 0
    fi
    if ! running; then echo "kafka: broker exited; see $state/stdout.log and $state/server.log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "kafka: not ready after 60 s; see $state/server.log" >&2; exit 1
}

stop() {
  if external || ! running; then rm -f "$pidfile"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && { echo "kafka: forcing stop"; kill -KILL "$pid" || true; }
  rm -f "$pidfile"; echo "kafka: stopped"
}

status() { if running; then echo "kafka: running (pid $(cat "$pidfile"))"; else echo "kafka: stopped"; fi; }

case "${1:-}" in
  fetch) fetch ;; start) start ;; stop) stop ;; status) status ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
