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
# A 3-node KRaft cluster in its own folder, beside the default broker (each node broker
# and controller; replication factor 3, min.insync.replicas 2; docs/reliability.md):
#   kafka.sh start-cluster DIR BASE_PORT  nodes 1..3 listen on BASE_PORT+N-1 (clients)
#                                         and BASE_PORT+N+2 (controllers); data, config
#                                         and log of node N under DIR/node-N; waits
#                                         until all three answer, prints the bootstrap
#   kafka.sh stop-cluster DIR             SIGTERM to every node, SIGKILL after 30 s
#   kafka.sh stop-node DIR N              SIGTERM: a controlled shutdown of node N (its
#                                         partitions get other leaders first)
#   kafka.sh kill-node DIR N              SIGKILL of node N
#   kafka.sh start-node DIR N             start node N again on its data, wait for it
#   kafka.sh controller DIR               the node id of the active controller
#   kafka.sh elect-leaders DIR            preferred leader election on every partition
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

# --- the 3-node cluster --------------------------------------------------------------------

cluster_nodes="1 2 3"

node_dir() { echo "$1/node-$2"; }

node_running() { local pf; pf="$(node_dir "$1" "$2")/kafka.pid"; [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; }

cluster_bootstrap() {
  local base n out=""; base=$(cat "$1/base_port")
  for n in $cluster_nodes; do out="$out${out:+,}127.0.0.1:$((base + n - 1))"; done
  echo "$out"
}

# Launch node N of the cluster in DIR (its configuration rendered and its storage
# formatted already) without waiting.
node_launch() {
  local nd; nd=$(node_dir "$1" "$2")
  : > "$nd/server.log"
  nohup java -Xms128m -Xmx384m -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$nd/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$nd/server.properties" \
    > "$nd/stdout.log" 2>&1 < /dev/null &
  echo $! > "$nd/kafka.pid"
}

# Wait until node N logged its start and its client port answers.
node_wait() {
  local nd port; nd=$(node_dir "$1" "$2"); port=$(( $(cat "$1/base_port") + $2 - 1 ))
  local wait_s=${LEADLOOP_KAFKA_START_S:-240}
  for _ in $(seq 1 $((wait_s * 2))); do
    if grep -q "Kafka Server started" "$nd/server.log" 2>/dev/null \
        && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    if ! node_running "$1" "$2"; then
      echo "kafka: node $2 exited; see $nd/stdout.log and $nd/server.log" >&2; exit 1
    fi
    sleep 0.5
  done
  echo "kafka: node $2 not ready after $wait_s s; see $nd/server.log" >&2; exit 1
}

cluster_start() {
  local dir="$1" base="$2" n nd voters=""
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  echo "$base" > "$dir/base_port"
  for n in $cluster_nodes; do voters="$voters${voters:+,}$n@127.0.0.1:$((base + n + 2))"; done
  [ -f "$dir/cluster.id" ] || java -cp "$libs/*" kafka.tools.StorageTool random-uuid > "$dir/cluster.id"
  for n in $cluster_nodes; do
    if node_running "$dir" "$n"; then continue; fi
    nd=$(node_dir "$dir" "$n")
    mkdir -p "$nd/data"
    sed -e "s#@NODE_ID@#$n#g" -e "s#@VOTERS@#$voters#g" -e "s#@PORT@#$((base + n - 1))#g" \
        -e "s#@CONTROLLER_PORT@#$((base + n + 2))#g" -e "s#@DATA@#$nd/data#g" \
        "$here/cluster.properties" > "$nd/server.properties"
    sed -e "s#@LOG@#$nd/server.log#g" "$here/log4j2.properties" > "$nd/log4j2.properties"
    if [ ! -f "$nd/data/meta.properties" ]; then
      java -cp "$libs/*" kafka.tools.StorageTool format --ignore-formatted \
        -t "$(cat "$dir/cluster.id")" -c "$nd/server.properties" >/dev/null
    fi
    node_launch "$dir" "$n"
  done
  # The nodes wait for each other (a quorum needs two voters), so all start first.
  for n in $cluster_nodes; do node_wait "$dir" "$n"; done
  echo "kafka: cluster ready on $(cluster_bootstrap "$dir")"
}

node_start() {
  if node_running "$1" "$2"; then echo "kafka: node $2 already running"; return 0; fi
  [ -f "$(node_dir "$1" "$2")/server.properties" ] || { echo "kafka: no node $2 in $1" >&2; exit 2; }
  node_launch "$1" "$2"
  node_wait "$1" "$2"
  echo "kafka: node $2 ready (pid $(cat "$(node_dir "$1" "$2")/kafka.pid"))"
}

node_stop() {
  local pf; pf="$(node_dir "$1" "$2")/kafka.pid"
  if node_running "$1" "$2"; then stop_pidfile "$pf"; else rm -f "$pf"; fi
}

node_kill() {
  local pf pid; pf="$(node_dir "$1" "$2")/kafka.pid"
  node_running "$1" "$2" || { echo "kafka: node $2 is not running" >&2; exit 1; }
  pid=$(cat "$pf")
  kill -KILL "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  rm -f "$pf"; echo "kafka: node $2 killed (pid $pid)"
}

# All nodes at once: stopped one after the other, the last ones would wait for a
# quorum that is already gone before giving up.
cluster_stop() {
  local n pids=() pid
  for n in $cluster_nodes; do
    if node_running "$1" "$n"; then
      pid=$(cat "$(node_dir "$1" "$n")/kafka.pid"); pids+=("$pid"); kill -TERM "$pid" 2>/dev/null || true
    fi
    rm -f "$(node_dir "$1" "$n")/kafka.pid"
  done
  for _ in $(seq 1 60); do
    local left=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && { echo "kafka: forcing stop of $pid"; kill -KILL "$pid" || true; }
  done
  echo "kafka: cluster stopped"
}

cluster_admin() {
  fetch
  java -cp "$libs/*" "$here/ClusterAdmin.java" "$2" "$(cluster_bootstrap "$1")"
}

status() { if running; then echo "kafka: running (pid $(cat "$pidfile"))"; else echo "kafka: stopped"; fi; }

case "${1:-}" in
  fetch) fetch ;; start) start ;; stop) stop ;; status) status ;;
  secure-certs) secure_certs "${2:?DIR}" ;;
  start-secure) secure_start "${2:?DIR}" "${3:?PORT}" "${4:?CONTROLLER_PORT}" ;;
  acls) secure_acls "${2:?DIR}" "${3:?SPEC_FILE}" ;;
  stop-secure) secure_stop "${2:?DIR}" ;;
  start-cluster) cluster_start "${2:?DIR}" "${3:?BASE_PORT}" ;;
  stop-cluster) cluster_stop "${2:?DIR}" ;;
  start-node) node_start "${2:?DIR}" "${3:?N}" ;;
  stop-node) node_stop "${2:?DIR}" "${3:?N}" ;;
  kill-node) node_kill "${2:?DIR}" "${3:?N}" ;;
  controller) cluster_admin "${2:?DIR}" controller ;;
  elect-leaders) cluster_admin "${2:?DIR}" elect-preferred ;;
  *) echo "usage: $0 fetch|start|stop|status|secure-certs|start-secure|acls|stop-secure|start-cluster|stop-cluster|start-node|stop-node|kill-node|controller|elect-leaders" >&2; exit 2 ;;
esac
