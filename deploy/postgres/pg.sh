#!/usr/bin/env bash
# PostgreSQL for the demo, the tests and the benchmarks.
#   pg.sh install   install Debian's PostgreSQL server binaries when missing
#   pg.sh start     create (once) and start a private cluster on 127.0.0.1:$port
#   pg.sh stop      fast shutdown
#   pg.sh url       print the DATABASE_URL of the private cluster
#   pg.sh roles     create (once) the services' group roles and a LOGIN user per service
#   pg.sh service-url SERVICE   print the URL of SERVICE's own LOGIN user
#   pg.sh status
#   pg.sh standby start [sync|async]   a streaming standby of the private cluster on
#                   127.0.0.1:$standby_port (pg_basebackup -R as the replication login);
#                   sync: the primary acknowledges a commit only once the standby has it
#   pg.sh standby promote   the standby becomes the primary (after the primary died)
#   pg.sh standby rejoin    the old primary comes back as a read-only standby of the
#                   promoted one (pg_rewind first), never as a second primary
#   pg.sh standby stop|status|url   url: the multi-host DATABASE_URL of both servers,
#                   target_session_attrs=read-write (clients pick whichever is primary)
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
standby_port=${LEADLOOP_PG_STANDBY_PORT:-15433}
standby=$state/standby
replicator=leadloop_replicator

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
# pg_rewind needs it to bring a failed primary back as a standby (pg.sh standby rejoin).
wal_log_hints = on
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

# --- a streaming standby on loopback and failover ---------------------------------------

psql_at() { PGPASSWORD=$(cat "$state/password") "$(bindir)/psql" -h 127.0.0.1 -p "$1" -U "$user" -d postgres -qXtA -v ON_ERROR_STOP=1 "${@:2}"; }
standby_running() { [ -f "$standby/postmaster.pid" ] && as_owner "$(bindir)/pg_ctl" -D "$standby" status >/dev/null 2>&1; }
# What a walreceiver (or pg_rewind) connects with; passwords come from a passfile, so
# neither a command line nor a config file holds one.
conninfo() { echo "host=127.0.0.1 port=$1 user=$2 application_name=$3 passfile=$state/pgpass"; }

# Settings that must win over what a copied data directory carries: ALTER SYSTEM's file
# (postgresql.auto.conf) is read last, and its last line for a name wins.
override() { as_owner tee -a "$1/postgresql.auto.conf" >/dev/null; }

# A standby of the private cluster: the replication login (REPLICATION, no other
# privilege; initdb's pg_hba.conf already admits replication connections from
# 127.0.0.1 with scram-sha-256), a base backup streamed with its WAL, and the primary's
# synchronous_standby_names set (sync) or cleared (async).
standby_start() {
  if external; then echo "postgres: using DATABASE_URL; a standby is yours to run" >&2; return 1; fi
  running || { echo "postgres: the primary is not running; run '$0 start' first" >&2; return 1; }
  local mode=${1:-async} bin names
  bin=$(bindir)
  case $mode in sync) names="'leadloop_standby'" ;; async) names="''" ;;
    *) echo "usage: $0 standby start [sync|async]" >&2; return 2 ;; esac
  [ -f "$state/replicator.password" ] || (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' > "$state/replicator.password")
  printf '127.0.0.1:*:*:%s:%s\n127.0.0.1:*:*:%s:%s\n' "$replicator" "$(cat "$state/replicator.password")" \
    "$user" "$(cat "$state/password")" | as_owner tee "$state/pgpass" >/dev/null
  as_owner chmod 600 "$state/pgpass"
  psql_at "$port" -v login="$replicator" >/dev/null <<SQL
\\set pw \`cat '$state/replicator.password'\`
SET password_encryption = 'scram-sha-256';
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I', :'login')
  WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'login') \\gexec
SELECT format('ALTER ROLE %I LOGIN REPLICATION NOSUPERUSER PASSWORD %L', :'login', :'pw') \\gexec
ALTER SYSTEM SET synchronous_standby_names = $names;
-- pg_rewind (standby rejoin) reads the failed primary's own WAL back to the checkpoint
-- before the fork; keep that much through its crash recovery's checkpoint.
ALTER SYSTEM SET wal_keep_size = '1GB';
SELECT pg_reload_conf();
SQL
  if [ ! -f "$standby/PG_VERSION" ]; then
    as_owner env PGPASSFILE="$state/pgpass" "$bin/pg_basebackup" -h 127.0.0.1 -p "$port" \
      -U "$replicator" -D "$standby" -X stream -c fast -R
    # Its own port, a conninfo naming it for synchronous_standby_names, and none of the
    # primary's: once promoted it acknowledges alone until another standby joins.
    override "$standby" <<CONF
port = $standby_port
primary_conninfo = '$(conninfo "$port" "$replicator" leadloop_standby)'
synchronous_standby_names = ''
CONF
  fi
  standby_running || as_owner "$bin/pg_ctl" -D "$standby" -l "$state/standby.log" -w -t 60 start >/dev/null
  # Streaming (and so, with sync, the synchronous standby) before we say ready.
  local i
  for i in $(seq 1 60); do
    [ -n "$(psql_at "$port" -c "SELECT 1 FROM pg_stat_replication WHERE application_name = 'leadloop_standby' AND state = 'streaming'")" ] && break
    sleep 0.5
  done
  [ "$i" -lt 60 ] || { echo "postgres: the standby does not stream" >&2; return 1; }
  echo "postgres: standby ($mode) streaming on 127.0.0.1:$standby_port"
}

standby_promote() {
  as_owner "$(bindir)/pg_ctl" -D "$standby" -w -t 60 promote >/dev/null
  echo "postgres: standby on 127.0.0.1:$standby_port promoted"
}

# The fence: the old primary's data directory is never started as a primary again. It
# is rewound to the promoted server's timeline (discarding what it had that the standby
# never got: with async replication, commits it had acknowledged) and comes back with
# standby.signal, read-only, which target_session_attrs=read-write skips.
standby_rejoin() {
  local bin; bin=$(bindir)
  standby_running || { echo "postgres: the promoted standby is not running" >&2; return 1; }
  # Asked, not pg_ctl status: a killed postmaster may linger as a zombie nobody reaps.
  if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; [ $? != 2 ]; then
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
  rm -f "$data/postmaster.pid"  # a killed postmaster's; pg_rewind recovers the data first
  # A just-promoted server records its new timeline in pg_control only at its next
  # checkpoint; before that pg_rewind sees one timeline and rewinds nothing.
  psql_at "$standby_port" -c "CHECKPOINT" >/dev/null
  as_owner "$bin/pg_rewind" -D "$data" \
    --source-server="$(conninfo "$standby_port" "$user" pg_rewind) dbname=postgres" \
    >"$state/rewind.log" 2>&1 || { tail -n 5 "$state/rewind.log" >&2; echo "postgres: pg_rewind failed" >&2; return 1; }
  as_owner touch "$data/standby.signal"
  # pg_rewind copied the promoted server's configuration: put back this one's port.
  override "$data" <<CONF
port = $port
primary_conninfo = '$(conninfo "$standby_port" "$replicator" leadloop_old_primary)'
synchronous_standby_names = ''
CONF
  as_owner "$bin/pg_ctl" -D "$data" -l "$state/server.log" -w -t 60 start >/dev/null
  echo "postgres: old primary back on 127.0.0.1:$port as a standby of 127.0.0.1:$standby_port"
}

standby_stop() {
  if bindir >/dev/null && standby_running; then
    as_owner "$(bindir)/pg_ctl" -D "$standby" -m fast -w stop >/dev/null && echo "postgres: standby stopped"
  fi
}

standby_status() { if standby_running; then echo "postgres: standby running on 127.0.0.1:$standby_port"; else echo "postgres: standby stopped"; fi; }

standby_url() { echo "postgresql://$user:$(cat "$state/password")@127.0.0.1:$port,127.0.0.1:$standby_port/leadloop?target_session_attrs=read-write"; }

standby() {
  case "${1:-}" in
    start) standby_start "${2:-async}" ;; promote) standby_promote ;; rejoin) standby_rejoin ;;
    stop) standby_stop ;; status) standby_status ;; url) standby_url ;;
    *) echo "usage: $0 standby start [sync|async]|promote|rejoin|stop|status|url" >&2; exit 2 ;;
  esac
}

status() { if running; then echo "postgres: running on 127.0.0.1:$port"; else echo "postgres: stopped"; fi; }

case "${1:-}" in
  install) install ;; start) start ;; stop) stop ;; status) status ;; url) url ;;
  roles) roles ;; service-url) service_url "${2:-}" ;; standby) standby "${@:2}" ;;
  *) echo "usage: $0 install|start|stop|status|url|roles|service-url SERVICE|standby ..." >&2; exit 2 ;;
esac
