#!/usr/bin/env bash
# Benchmark: the should-upgrade decision under concurrent load through the production server
# (granian, WSGI) on loopback, with bearer-token auth, a new random merchant per request.
# Needs PostgreSQL and Redis (started if down) and wrk (apt-get install wrk).
# Knobs: THREADS CONNS DURATION WARMUP SERVER=granian|gunicorn WORKERS GTHREADS WORKER_CLASS PORT
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2} CONNS=${CONNS:-50} DURATION=${DURATION:-20s} WARMUP=${WARMUP:-5s}
WORKERS=${WORKERS:-2} GTHREADS=${GTHREADS:-4} WORKER_CLASS=${WORKER_CLASS:-sync} PORT=${PORT:-8765}
BIN=.venv/bin
OUT=${OUT:-var/bench/should-upgrade-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
./bin/ensure-services >/dev/null

export DEBUG=0 SECRET_KEY=bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz METRICS_TOKEN=bench-metrics ALLOWED_HOSTS=127.0.0.1,localhost
export SECURE_SSL_REDIRECT=0 SESSION_COOKIE_SECURE=0 CSRF_COOKIE_SECURE=0
# As deployed (bin/start-web): one JSON access line per request, request metrics shared by the
# workers through a multiprocess folder. LOG_LEVEL=WARNING measures without the access log.
export LOG_LEVEL=${LOG_LEVEL:-INFO} LOG_FORMAT=${LOG_FORMAT:-json}
export PROMETHEUS_MULTIPROC_DIR="$OUT/prometheus"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/molam_bench}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/9}
psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='molam_bench'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE molam_bench"
$BIN/python manage.py migrate --noinput -v0
TOKEN=$(LOG_LEVEL=WARNING $BIN/python benchmarks/setup_should_upgrade.py | tail -1)

case "${SERVER:-granian}" in
  gunicorn)  # for comparison; needs `pip install gunicorn`
    $BIN/gunicorn molam_upgrades.wsgi --bind "127.0.0.1:$PORT" --workers "$WORKERS" \
      --worker-class "$WORKER_CLASS" --threads "$GTHREADS" --keep-alive 30 --log-level warning \
      > "$OUT/server.log" 2>&1 & ;;
  granian)
    $BIN/granian --interface wsgi --host 127.0.0.1 --port "$PORT" --workers "$WORKERS" \
      --blocking-threads "$GTHREADS" --runtime-mode st --log-level warning --no-access-log \
      molam_upgrades.wsgi:application > "$OUT/server.log" 2>&1 & ;;
  *) echo "SERVER must be gunicorn or granian" >&2; exit 64 ;;
esac
GPID=$!
trap 'kill $GPID 2>/dev/null; wait $GPID 2>/dev/null' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
curl -sf -H "Authorization: Bearer $TOKEN" \
  "http://127.0.0.1:$PORT/api/plugins/rollouts/woocommerce/should-upgrade?merchant_id=123e4567-e89b-12d3-a456-426614174000" \
  | tee "$OUT/sample.json"; echo

cpu() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
worker_cpu() { local t=0; for p in $GPID $(pgrep -P $GPID); do t=$((t + $(cpu $p))); done; echo $t; }

wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s benchmarks/should_upgrade.lua "http://127.0.0.1:$PORT" -- "$TOKEN" >/dev/null
before=$(worker_cpu)
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s benchmarks/should_upgrade.lua "http://127.0.0.1:$PORT" -- "$TOKEN" \
  | tee "$OUT/wrk.txt"
after=$(worker_cpu)
requests=$(sed -n 's/.*RESULT .*requests=\([0-9]*\).*/\1/p' "$OUT/wrk.txt")
ticks=$(getconf CLK_TCK)
echo "server_cpu_ms_per_req=$(awk -v a="$after" -v b="$before" -v r="$requests" -v t="$ticks" 'BEGIN{printf "%.3f", (a-b)*1000/t/r}')" | tee -a "$OUT/wrk.txt"
echo "raw output in $OUT"
