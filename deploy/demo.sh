#!/usr/bin/env bash
# make demo (after make up): simulated traffic in the background, the live funnel in the
# foreground. Ctrl-C stops the traffic, the services and the stack, and prints a summary.
#   DEMO_LEADS (default 20000), DEMO_RATE leads/s (default 50), DEMO_SEED (default: the
#   current time, so a second demo sends new leads rather than duplicates of the first)
#   DEMO_SECONDS: run headless for that long instead of the live view (used by tests)
#   DEMO_T0: when `make demo` started (epoch seconds), to report time to first lead
# `make demo` starts assignment and sla-monitor with LEADLOOP_CALENDARS_FILE set to
# config/demo/calendars.yaml (every team round the clock, no holidays), so the SLA ladder
# escalates at any hour; services already running keep the calendars they started with.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
state=${LEADLOOP_STATE_DIR:-$root/.state}
base=${LEADLOOP_PORT_BASE:-18080}
bin=$root/.venv/bin
t0=${DEMO_T0:-$(date +%s)}
# shellcheck disable=SC1091
. "$state/env"
export LEADLOOP_METRICS_URL="http://127.0.0.1:$((base + 4))/metrics"
mkdir -p "$state/logs"

assigned() {
  "$bin/python" - "$LEADLOOP_METRICS_URL" <<'PY' 2>/dev/null
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()
print(int(sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
              if l.startswith("leadloop_leads_assigned_total"))))
PY
}
before=$(assigned); before=${before:-0}
calendars=$(tr '\0' '\n' < "/proc/$(cat "$state/run/sla-monitor.pid" 2>/dev/null || echo 0)/environ" \
  2>/dev/null | sed -n 's/^LEADLOOP_CALENDARS_FILE=//p')
echo "business calendars: ${calendars:-config/calendars.yaml}"
seed=${DEMO_SEED:-$(date +%s)}
echo "simulating ${DEMO_LEADS:-20000} leads at ${DEMO_RATE:-50}/s with seed $seed"
"$bin/leadloop" simulate --leads "${DEMO_LEADS:-20000}" --rate "${DEMO_RATE:-50}" \
  --seed "$seed" > "$state/logs/simulate.log" 2>&1 &
sim=$!

finish() {
  trap - EXIT INT TERM
  # The simulator prints its own summary when stopped (a background job of this
  # script ignores SIGINT, so it gets SIGTERM).
  kill -TERM "$sim" 2>/dev/null; wait "$sim" 2>/dev/null
  echo; echo "── simulated traffic ──"; tail -n 40 "$state/logs/simulate.log"
  echo; echo "── stopping leadloop ──"
  "$here/services.sh" stop
  "$here/observe.sh" stop
  "$here/kafka/kafka.sh" stop
  "$here/postgres/pg.sh" stop
}
trap finish EXIT
trap 'exit 130' INT TERM

# Report when the first new lead has gone all the way to an owner.
for _ in $(seq 1 240); do
  n=$(assigned)
  if [ "${n:-0}" -gt "$before" ]; then
    echo "leads flowing: first lead assigned $(( $(date +%s) - t0 )) s after make demo started"
    break
  fi
  sleep 0.5
done

if [ -n "${DEMO_SECONDS:-}" ]; then
  sleep "$DEMO_SECONDS"
  "$bin/python" - "$LEADLOOP_METRICS_URL" <<'PY'
import sys, urllib.request
from rich.console import Console
from leadloop.watch import render_summary, summarize
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
Console(width=100).print(render_summary(summarize(text)))
PY
else
  "$bin/leadloop" watch
fi
