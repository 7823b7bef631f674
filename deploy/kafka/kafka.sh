#!/usr/bin/env bash
# Apache Kafka (KRaft, single node, loopback) for the demo, the tests and the benchmarks.
#   kafka.sh fetch   resolve the broker jars with Maven (cached under .state/kafka/libs)
#   kafka.sh start   format storage once, start the broker, wait until it answers
#   kafka.sh stop    stop it cleanly (SIGTERM, then SIGKILL after 30 s)
#   kafka.sh status
# A locked-down broker (SASL/SCRAM-SHA-512 over TLS, ACLs, no access without an ACL) in
# its own folder and on its own ports, beside the default one (docs/security.md):
#   kafka.sh secure-certs DIR             a CA and the broker's certificate (openssl)
#   kafka.sh start-secure DIR PORT CONTROLLER_PORT
#                                         DIR/users holds "name password" lines (one must
#                                         be admin, the super user); SCRAM credentials
#                                         for each are written at format time
#   kafka.sh acls DIR SPEC_FILE           create the ACL entries in SPEC_FILE as admin
#   kafka.sh stop-secure DIR
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
  # A test's own broker may add settings (a second listener): the lines of the file
  # LEADLOOP_KAFKA_EXTRA_CONFIG names are appended, and a key given again there wins.
  if [ -n "${LEADLOOP_KAFKA_EXTRA_CONFIG:-}" ]; then
    cat "$LEADLOOP_KAFKA_EXTRA_CONFIG" >> "$state/server.properties"
  fi
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
  # A broker that kept many topics (every test run creates its own) loads each
  # partition before it answers: a minute or more on a long-used state folder.
  local wait_s=${LEADLOOP_KAFKA_START_S:-240}
  for _ in $(seq 1 $((wait_s * 2))); do
    if grep -q "Kafka Server started" "$state/server.log" 2>/dev/null && answers; then
      echo "kafka: ready on $ours (pid $(cat "$pidfile"))"; return 0
    fi
    if ! running; then echo "kafka: broker exited; see $state/stdout.log and $state/server.log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "kafka: not ready after $wait_s s; see $state/server.log" >&2; exit 1
}

# SIGTERM the broker whose pid is in $1, SIGKILL after 30 s.
stop_pidfile() {
  local pid; pid=$(cat "$1")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && { echo "kafka: forcing stop"; kill -KILL "$pid" || true; }
  rm -f "$1"; echo "kafka: stopped"
}

stop() {
  if external || ! running; then rm -f "$pidfile"; return 0; fi
  stop_pidfile "$pidfile"
}

# --- the locked-down broker -------------------------------------------------------------

# A private CA and a broker certificate for 127.0.0.1/localhost, usable as server (client
# listener) and as client (the broker's own controller channel, which demands one).
secure_certs() {
  local tls="$1/tls"
  [ -f "$tls/broker.p12" ] && return 0
  mkdir -p "$tls" && chmod 700 "$tls"
  (
    cd "$tls"
    umask 077
    openssl rand -hex 24 > store.pass
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=leadloop-test-ca" \
      -keyout ca.key -out ca.pem \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=leadloop-broker" \
      -keyout broker.key -out broker.csr 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" > broker.ext
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
      -extfile broker.ext -out broker.pem 2>/dev/null
    openssl pkcs12 -export -name broker -inkey broker.key -in broker.pem -certfile ca.pem \
      -passout "file:store.pass" -out broker.p12
    rm -f broker.csr broker.ext ca.srl
  )
  echo "kafka: CA and broker certificate in $tls"
}

secure_start() {
  local dir="$1" sport="$2" scport="$3"
  local spid="$dir/kafka.pid" users="$dir/users"
  if [ -f "$spid" ] && kill -0 "$(cat "$spid")" 2>/dev/null; then
    echo "kafka: secure broker already running (pid $(cat "$spid"))"; return 0
  fi
  [ -f "$users" ] || { echo "kafka: $users is missing (lines: name password)" >&2; exit 2; }
  local admin_password
  admin_password=$(awk '$1 == "admin" { print $2 }' "$users")
  [ -n "$admin_password" ] || { echo "kafka: $users has no admin line" >&2; exit 2; }
  fetch
  secure_certs "$dir"
  mkdir -p "$dir/data"
  (
    umask 077
    sed -e "s#@PORT@#$sport#g" -e "s#@CONTROLLER_PORT@#$scport#g" -e "s#@DATA@#$dir/data#g" \
        -e "s#@TLS@#$dir/tls#g" -e "s#@STOREPASS@#$(cat "$dir/tls/store.pass")#g" \
        -e "s#@ADMIN_PASSWORD@#$admin_password#g" \
        "$here/server-secure.properties" > "$dir/server.properties"
    # The admin's client configuration, for `kafka.sh acls` (Java Admin client).
    printf '%s\n' "bootstrap.servers=127.0.0.1:$sport" "security.protocol=SASL_SSL" \
      "sasl.mechanism=SCRAM-SHA-512" \
      "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"$admin_password\";" \
      "ssl.truststore.type=PEM" "ssl.truststore.location=$dir/tls/ca.pem" > "$dir/admin.properties"
  )
  sed -e "s#@LOG@#$dir/server.log#g" "$here/log4j2.properties" > "$dir/log4j2.properties"
  if [ ! -f "$dir/data/meta.properties" ]; then
    local scram=() name password
    while read -r name password; do
      [ -n "$name" ] && scram+=(--add-scram "SCRAM-SHA-512=[name=$name,password=\"$password\"]")
    done < "$users"
    java -cp "$libs/*" kafka.tools.StorageTool format --ignore-formatted \
      -t "$(java -cp "$libs/*" kafka.tools.StorageTool random-uuid)" \
      -c "$dir/server.properties" "${scram[@]}" >/dev/null
  fi
  : > "$dir/server.log"
  nohup java -Xms128m -Xmx512m -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$dir/server.properties" \
    > "$dir/stdout.log" 2>&1 < /dev/null &
  echo $! > "$spid"
  for _ in $(seq 1 120); do
    if grep -q "Kafka Server started" "$dir/server.log" 2>/dev/null \
        && (exec 3<>"/dev/tcp/127.0.0.1/$sport") 2>/dev/null; then
      echo "kafka: secure broker ready on 127.0.0.1:$sport (pid $(cat "$spid"))"; return 0
    fi
    if ! kill -0 "$(cat "$spid")" 2>/dev/null; then
      echo "kafka: secure broker exited; see $dir/stdout.log and $dir/server.log" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "kafka: secure broker not ready after 60 s; see $dir/server.log" >&2; exit 1
}

secure_acls() {
  fetch
  java -cp "$libs/*" "$here/Acls.java" "$1/admin.properties" "$2"
}

secure_stop() {
  if [ -f "$1/kafka.pid" ]; then stop_pidfile "$1/kafka.pid"; fi
}

status() { if running; then echo "kafka: running (pid $(cat "$pidfile"))"; else echo "kafka: stopped"; fi; }

case "${1:-}" in
  fetch) fetch ;; start) start ;; stop) stop ;; status) status ;;
  secure-certs) secure_certs "${2:?DIR}" ;;
  start-secure) secure_start "${2:?DIR}" "${3:?PORT}" "${4:?CONTROLLER_PORT}" ;;
  acls) secure_acls "${2:?DIR}" "${3:?SPEC_FILE}" ;;
  stop-secure) secure_stop "${2:?DIR}" ;;
  *) echo "usage: $0 fetch|start|stop|status|secure-certs|start-secure|acls|stop-secure" >&2; exit 2 ;;
esac
