#!/usr/bin/env bash
# Benchmark: upgrade-report ingestion. POST upgrades with Idempotency-Keys from CREDENTIALS plugin
# credentials (each its own merchant, each under its throttle), all reporting on one rollout,
# through the production server (granian). Afterwards every report must be stored once and the
# rollout aggregates must equal a recount from the raw rows (manage.py rebuild_aggregates --verify).
# Knobs: THREADS CONNS DURATION WARMUP WORKERS GTHREADS CREDENTIALS AS_DEPLOYED
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2} CONNS=${CONNS:-50} DURATION=${DURATION:-20s} WARMUP=${WARMUP:-5s}
WORKERS=${WORKERS:-2} GTHREADS=${GTHREADS:-4} CREDENTIALS=${CREDENTIALS:-200}
BIN=.venv/bin
OUT=${OUT:-var/bench/ingest-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
./bin/ensure-services >/dev/null

DB=${INGEST_DB:-molam_ingest}
export DEBUG=0 SECRET_KEY=bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz METRICS_TOKEN=bench-metrics ALLOWED_HOSTS=127.0.0.1,localhost
export SECURE_SSL_REDIRECT=0 SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0 LOG_LEVEL=WARNING
# AS_DEPLOYED=1: the JSON access log and the multiprocess request metrics on, as bin/start-web runs.
if [ "${AS_DEPLOYED:-0}" = 1 ]; then
  export LOG_LEVEL=INFO LOG_FORMAT=json PROMETHEUS_MULTIPROC_DIR="$OUT/prometheus"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
fi
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/8} CACHE_KEY_PREFIX=ingest-bench CREDENTIALS
export PYTHONPATH=$PWD METRICS_TOKEN=ingest-bench-metrics-token
psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
$BIN/python manage.py migrate --noinput -v0
ROLLOUT_ID=$($BIN/python benchmarks/setup_ingest.py "$OUT/credentials.txt" | tail -1)
PORT=$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

$BIN/granian --interface wsgi --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" \
  --blocking-threads "$GTHREADS" --runtime-mode st --log-level warning --no-access-log \
  molam_upgrades.wsgi:application > "$OUT/server.log" 2>&1 &
GPID=$!
trap 'kill $GPID 2>/dev/null; wait $GPID 2>/dev/null' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
sleep 2

wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s benchmarks/ingest.lua "http://127.0.0.1:$PORT" -- "$OUT/credentials.txt" \
  > "$OUT/warmup.txt"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s benchmarks/ingest.lua "http://127.0.0.1:$PORT" \
  -- "$OUT/credentials.txt" | tee "$OUT/wrk.txt"
sleep 1
kill $GPID; wait $GPID 2>/dev/null || true
trap - EXIT

grep -h RESULT "$OUT/warmup.txt" "$OUT/wrk.txt" | sed 's/^/  /'
errors=$(grep -h RESULT "$OUT/warmup.txt" "$OUT/wrk.txt" | sed -n 's/.*non2xx=\([0-9]*\) socket_errors=\([0-9]*\).*/\1 \2/p' | awk '{s+=$1+$2} END {print s+0}')
read -r reports keys < <(psql -h 127.0.0.1 -U postgres -d "$DB" -Atc \
  "SELECT (SELECT count(*) FROM plugin_upgrade_logs), (SELECT count(*) FROM api_idempotency_records)" | tr '|' ' ')
echo "errors (non-2xx + socket) = $errors; reports stored = $reports; idempotency keys stored = $keys" | tee -a "$OUT/wrk.txt"
status=0
[ "$errors" = 0 ] || { echo "FAIL: $errors errors" >&2; status=1; }
[ "$reports" = "$keys" ] || { echo "FAIL: $reports reports for $keys keys" >&2; status=1; }
if $BIN/python manage.py help rebuild_aggregates >/dev/null 2>&1; then
  $BIN/python manage.py rebuild_aggregates --verify | tee -a "$OUT/wrk.txt" || { echo "FAIL: aggregates differ from a recount" >&2; status=1; }
else
  echo "(no aggregates to verify: manage.py rebuild_aggregates is not there)" | tee -a "$OUT/wrk.txt"
fi
echo "raw output in $OUT"
exit $status
