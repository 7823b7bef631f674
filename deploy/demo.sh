#!/usr/bin/env bash
# make demo (after make up): simulated traffic in the background, the live funnel in the
# foreground. Ctrl-C stops the traffic, the services and the stack, and prints a summary.
#   DEMO_LEADS (default 20000), DEMO_RATE leads/s (default 50), DEMO_SEED (default: the
#   current time, so a second demo sends new leads rather than duplicates of the first)
#   DEMO_SECONDS: run headless for that long instead of the live view (used by tests)
#   DEMO_T0: when `make demo` started (epoch seconds), to report time to first lead
# `make demo` starts assignment, sla-monitor and the notifier with LEADLOOP_CALENDARS_FILE
# set to config/demo/calendars.yaml (every team round the clock, no holidays), so the SLA
# ladder escalates and reminders go out at any hour; services already running keep the
# calendars they started with.
# The simulator first publishes the roster of config/rules.yaml on crm.reps (every rep
# and manager with a demo address, LEADLOOP_SIMULATE_ROSTER), so the notifier can reach
# them in the local WeCom; the hand-off delivers every assignment to the local CRM
# receiver (`make up` starts both stand-ins, deploy/observe.sh).
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
export LEADLOOP_HANDOFF_METRICS_URL="http://127.0.0.1:$((base + 5))/metrics"
export LEADLOOP_NOTIFIER_METRICS_URL="http://127.0.0.1:$((base + 6))/metrics"
crm_sink="http://127.0.0.1:${LEADLOOP_CRM_SINK_PORT:-19096}/received"
wecom_sink="http://127.0.0.1:${LEADLOOP_WECOM_SINK_PORT:-19097}/received"
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
# What a running service was started with (its environment), or the default.
started_with() {
  tr '\0' '\n' < "/proc/$(cat "$state/run/$1.pid" 2>/dev/null || echo 0)/environ" 2>/dev/null \
    | sed -n "s/^$2=//p"
}
calendars=$(started_with sla-monitor LEADLOOP_CALENDARS_FILE)
echo "business calendars: ${calendars:-config/calendars.yaml}" \
  "(notifier: $(started_with notifier LEADLOOP_CALENDARS_FILE || true))"
crm_file=$(started_with handoff LEADLOOP_CRM_FILE)
notify_file=$(started_with notifier LEADLOOP_NOTIFY_FILE)
echo "hand-off targets: ${crm_file:-config/crm.yaml}; local CRM receiver: $crm_sink"
echo "notifier channels: ${notify_file:-config/notify.yaml}; local WeCom: $wecom_sink"
seed=${DEMO_SEED:-$(date +%s)}
echo "simulating ${DEMO_LEADS:-20000} leads at ${DEMO_RATE:-50}/s with seed $seed," \
  "after publishing the roster of ${LEADLOOP_RULES_FILE:-config/rules.yaml} on crm.reps"
LEADLOOP_SIMULATE_ROSTER=${LEADLOOP_SIMULATE_ROSTER-${LEADLOOP_RULES_FILE:-config/rules.yaml}} \
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
  "$bin/python" - "$LEADLOOP_METRICS_URL" "$LEADLOOP_HANDOFF_METRICS_URL" \
    "$LEADLOOP_NOTIFIER_METRICS_URL" "$crm_sink" "$wecom_sink" <<'PY'
import json, sys, urllib.request
from rich.console import Console
from leadloop.watch import render_summary, summarize, summarize_deliveries
def get(url: str) -> str:
    try:
        return urllib.request.urlopen(url, timeout=5).read().decode()
    except OSError as exc:
        print(f"{url}: {exc}")
        return ""
metrics, handoff, notifier, crm, wecom = (get(u) for u in sys.argv[1:])
funnel, edges = summarize(metrics), summarize_deliveries(handoff, notifier)
Console(width=120).print(render_summary(funnel, edges))
print(f"sla escalations {funnel.breaches:.0f}, hand-offs delivered {edges.handed_off:.0f},"
      f" notifications delivered {edges.notified:.0f}")
crm_writes, messages = json.loads(crm or "[]"), json.loads(wecom or "[]")
print(f"local CRM received {len(crm_writes)} writes ({sys.argv[4]})")
print(f"local WeCom received {len(messages)} messages ({sys.argv[5]}); the last ones:")
for m in messages[-3:]:
    lines = [line for line in m["text"].splitlines() if line.strip()]
    print(f"  {m['kind']} → {m['address']}: {' · '.join(lines[:2])[:100]}…")
PY
else
  "$bin/leadloop" watch
fi
