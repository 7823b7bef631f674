#!/usr/bin/env bash
# PostgreSQL for the demo, the tests and the benchmarks.
#   pg.sh install   install Debian's PostgreSQL server binaries when missing
#   pg.sh start     create (once) and start a private cluster on 127.0.0.1:$port
#   pg.sh stop      fast shutdown
#   pg.sh url       print the DATABASE_URL of the private cluster
#   pg.sh roles     create (once) the services' group roles and a LOGIN user per service
#   pg.sh service-url SERVICE   print the URL of SERVICE's own LOGIN user
#   pg.sh status
# When DATABASE_URL is set, that server is used and start/stop do nothing.
# The cluster lives under .state/postgres (git-ignored), owned by the "postgres" system
# user because PostgreSQL refuses to run as root; authentication is scram-sha-256 with a
# generated password kept in .state/postgres/password. That owner runs the migrations;
# each service logs in as its own user (leadloop_<service>_app, a member of the group
# role leadloop_<service> that migration 0008 grants exactly that service's tables),
# with a generated password in .state/postgres/<service>.password.
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

# ingest assignment sla-monitor metrics handoff notifier, as role names spell them.
role_services="ingest assignment sla_monitor metrics handoff notifier"

role_name() { local s=${1//-/_}; case " $role_services " in *" $s "*) echo "leadloop_$s" ;; *) return 1 ;; esac; }

service_url() {
  local group
  group=$(role_name "${1:-}") || { echo "usage: $0 service-url ingest|assignment|sla-monitor|metrics|handoff|notifier" >&2; exit 2; }
  echo "postgresql://${group}_app:$(cat "$state/${group#leadloop_}.password")@127.0.0.1:$port/leadloop"
}

# Idempotent: creates what is missing and (re)sets each login's password from its file.
# The group roles are created here too because the logins are made members before the
# migrations run; migration 0008 creates them the same way where this script does not
# run (a test database, a server of your own) and grants them their tables.
roles() {
  if external; then echo "postgres: using DATABASE_URL; service logins are yours to create"; return 0; fi
  running || { echo "postgres: not running; run '$0 start' first" >&2; return 1; }
  local bin pwd_ s group file
  bin=$(bindir); pwd_=$(cat "$state/password")
  for s in $role_services; do
    group=leadloop_$s; file=$state/$s.password
    if [ ! -f "$file" ]; then
      (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$file")
    fi
    # psql variables keep the password out of the command line (ps shows that).
    PGPASSWORD=$pwd_ "$bin/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -qX \
      -v ON_ERROR_STOP=1 -v group="$group" -v login="${group}_app" >/dev/null <<SQL
\\set pw \`cat '$file'\`
SET password_encryption = 'scram-sha-256';
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I NOLOGIN', :'group')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'group') \\gexec
SELECT format('CREATE ROLE %I LOGIN', :'login')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login') \\gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %L', :'login', :'pw') \\gexec
SELECT format('GRANT %I TO %I', :'group', :'login') \\gexec
SQL
  done
  echo "postgres: service logins ready (leadloop_<service>_app)"
}

stop() {
  if external || ! bindir >/dev/null || ! running; then return 0; fi
  as_owner "$(bindir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null && echo "postgres: stopped"
}

status() { if running; then echo "postgres: running on 127.0.0.1:$port"; else echo "postgres: stopped"; fi; }

case "${1:-}" in
  install) install ;; start) start ;; stop) stop ;; status) status ;; url) url ;;
  roles) roles ;; service-url) service_url "${2:-}" ;;
  *) echo "usage: $0 install|start|stop|status|url|roles|service-url SERVICE" >&2; exit 2 ;;
esac
