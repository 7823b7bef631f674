#!/usr/bin/env bash
# PostgreSQL for the demo, the tests and the benchmarks.
#   pg.sh install   install Debian's PostgreSQL server binaries when missing
#   pg.sh start     create (once) and start a private cluster on 127.0.0.1:$port
#   pg.sh stop      fast shutdown
#   pg.sh url       print the DATABASE_URL of the private cluster
#   pg.sh status
# When DATABASE_URL is set, that server is used and start/stop do nothing.
# The cluster lives under .state/postgres (git-ignored), owned by the "postgres" system
# user because PostgreSQL refuses to run as root; authentication is scram-sha-256 with a
# generated password kept in .state/postgres/password.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
state=${LEADLOOP_STATE_DIR:-$root/.state}/postgres
port=${LEADLOOP_PG_PORT:-15432}
data=$state/data
user=leadloop

bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install() {
  if bindir >/dev/null; then return 0; fi
  echo "postgres: installing Debian's PostgreSQL server"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql >/dev/null
  # The package starts a system cluster on 5432; leadloop uses its own, so stop that one.
  command -v pg_ctlcluster >/dev/null && pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
    pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true
  done
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "postgresql://$user:$(cat "$state/password")@127.0.0.1:$port/leadloop"; }

# A DATABASE_URL that points at this private cluster (as .state/env does) is ours.
external() {
  [ -n "${DATABASE_URL:-}" ] || return 1
  [ -f "$state/password" ] && [ "$DATABASE_URL" = "$(url)" ] && return 1
  return 0
}

running() { [ -f "$data/postmaster.pid" ] && as_owner "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; }

start() {
  if external; then echo "postgres: using DATABASE_URL"; return 0; fi
  install
  local bin; bin=$(bindir)
  mkdir -p "$state"
  if [ "$(id -u)" = 0 ]; then
    # The postgres user must be able to reach the state folder: give every ancestor the
    # traverse bit (x) only, which a private temporary checkout may lack.
    local d=$state
    while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
    chown postgres "$state"
  fi
  if [ ! -f "$data/PG_VERSION" ]; then
    [ -f "$state/password" ] || head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$state/password"
    chmod 600 "$state/password"
    local pw; pw=$(mktemp); cp "$state/password" "$pw"; chmod 644 "$pw"
    as_owner "$bin/initdb" -D "$data" -U "$user" --pwfile="$pw" --auth=scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pw"
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$state'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
log_min_messages = warning
CONF
  fi
  if running; then echo "postgres: already running on 127.0.0.1:$port"; return 0; fi
  as_owner "$bin/pg_ctl" -D "$data" -l "$state/server.log" -w -t 60 start >/dev/null
  local pwd_; pwd_=$(cat "$state/password")
  if ! PGPASSWORD=$pwd_ "$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname='leadloop'" | grep -q 1; then
    PGPASSWORD=$pwd_ "$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -qc "CREATE DATABASE leadloop"
  fi
  echo "postgres: ready on 127.0.0.1:$port"
}

stop() {
  if external || ! bindir >/dev/null || ! running; then return 0; fi
  as_owner "$(bindir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null && echo "postgres: stopped"
}

status() { if running; then echo "postgres: running on 127.0.0.1:$port"; else echo "postgres: stopped"; fi; }

case "${1:-}" in
  install) install ;; start) start ;; stop) stop ;; status) status ;; url) url ;;
  *) echo "usage: $0 install|start|stop|status|url" >&2; exit 2 ;;
esac
