#!/usr/bin/env bash
# Runs every benchmark in turn. See docs/benchmarks.md for the method and the latest figures.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== should-upgrade decision under load (wrk -t2 -c50, granian) =="
bash benchmarks/should_upgrade.sh
echo "== Sira auto-check over 1,000,000 upgrade reports and 200 active rollouts =="
.venv/bin/python benchmarks/auto_check.py
echo "== ops reads over 100 k and 10 M upgrade reports, 1,000 rollouts, 1 M rollbacks =="
.venv/bin/python benchmarks/scale.py
if [ -f benchmarks/agent_rollback.py ]; then
  echo "== agent rollback on a WooCommerce-sized plugin with MariaDB =="
  .venv/bin/python benchmarks/agent_rollback.py
fi
echo "== agent checkout pause by orders-table size (10,000 and 1,000,000 rows, MariaDB) =="
.venv/bin/python benchmarks/agent_pause.py
echo "== agent lost-write soak: 200 randomized upgrades with shop writers (prints lost=0) =="
.venv/bin/python benchmarks/agent_soak.py
