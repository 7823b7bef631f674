# Sourced by the scripts that run one local daemon of the Prometheus family with a pid
# file (Prometheus, Alertmanager). The caller sets `name`, `pidfile`, `log` and `port`.

ready() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/-/ready" 2>/dev/null; }

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

# After the daemon was started in the background: record its pid, wait up to 30 s for
# `ready`, and fail with the log's tail if it exits first.
await_ready() {
  echo "$1" > "$pidfile"
  for _ in $(seq 1 150); do
    if ready; then echo "$name: ready on 127.0.0.1:$port"; return 0; fi
    running || { echo "$name: exited; see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$name: not ready after 30 s; see $log" >&2
  exit 1
}

# SIGTERM, then SIGKILL after 20 s.
stop() {
  if ! running; then rm -f "$pidfile"; echo "$name: not running"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; echo "$name: stopped"; return 0; }
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "$name: killed after 20 s"
}
