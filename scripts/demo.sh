#!/usr/bin/env bash
# The demo behind `make demo`: a worker on the local services analyses examples/.
# Expects KAFKA_BOOTSTRAP_SERVERS and REDIS_URL (the Makefile sets them).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-$HOME/.cache/contentstream/venv}"
CS="$VENV/bin/contentstream"
PY="$VENV/bin/python"

run_id="demo-$(date +%s)"
export CONTENTSTREAM_APP_ID="$run_id"
export CONTENTSTREAM_INPUT_TOPIC="$run_id.raw"
export CONTENTSTREAM_OUTPUT_TOPIC="$run_id.analyzed"
export CONTENTSTREAM_DEAD_LETTER_TOPIC="$run_id.dlq"
export CONTENTSTREAM_TOPIC_PARTITIONS="${CONTENTSTREAM_TOPIC_PARTITIONS:-4}"
export CONTENTSTREAM_WEB_PORT="${CONTENTSTREAM_WEB_PORT:-16066}"
export CONTENTSTREAM_LOG_FORMAT="${CONTENTSTREAM_LOG_FORMAT:-text}"
mkdir -p .demo
log=".demo/worker.log"

valid=$(grep -c . examples/events.jsonl)
malformed=$(grep -c . examples/malformed.jsonl)

echo "== starting a worker (group $run_id), log in $log"
"$CS" worker >"$log" 2>&1 &
worker=$!
cleanup() {
  if kill -0 "$worker" 2>/dev/null; then
    kill -TERM "$worker" 2>/dev/null || true
    wait "$worker" 2>/dev/null || true
  fi
}
trap cleanup EXIT

for _ in $(seq 1 180); do
  if "$PY" - "$CONTENTSTREAM_WEB_PORT" <<'PYEOF' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=1)
PYEOF
  if ! kill -0 "$worker" 2>/dev/null; then
    echo "worker exited early:"; tail -30 "$log"; exit 1
  fi
  sleep 1
done

echo "== producing $valid events and $malformed malformed records"
"$CS" produce examples/events.jsonl --quiet
"$CS" produce examples/malformed.jsonl --quiet

echo "== results ($CONTENTSTREAM_OUTPUT_TOPIC)"
"$CS" tail --from-beginning --limit "$valid" --idle-timeout 60 > .demo/results.jsonl
"$PY" scripts/show_results.py results < .demo/results.jsonl

echo "== dead letters ($CONTENTSTREAM_DEAD_LETTER_TOPIC)"
"$CS" tail --dead-letters --from-beginning --limit "$malformed" --idle-timeout 60 > .demo/dead_letters.jsonl
"$PY" scripts/show_results.py dead-letters < .demo/dead_letters.jsonl

got_results=$(grep -c . .demo/results.jsonl || true)
got_dlq=$(grep -c . .demo/dead_letters.jsonl || true)
echo "== $got_results/$valid results, $got_dlq/$malformed dead letters"
cleanup
trap - EXIT
[[ "$got_results" -eq "$valid" && "$got_dlq" -eq "$malformed" ]]
