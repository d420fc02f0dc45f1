"""Rollback benchmark of the safe-upgrade agent on a WooCommerce-sized plugin with MariaDB.

Measures, on the same host and in the same run:

* **swap rollback** -- the agent's own path: a real upgrade to 4.0.0 whose third migration
  fails after the first two changed the tables (MariaDB DDL is not transactional), then the
  automatic rollback: directory exchange back (``renameat2``), one ``RENAME TABLE`` of every
  plugin table, drop of the table the new version created, smoke test. The figure is the
  agent's ``rollback_seconds``: from the failure being detected to the smoke test passing.
* **copy restore (baseline)** -- what a copy-based backup does (the seed's PHP flow): delete
  the plugin directory, copy the backup directory back, and for every table ``DROP`` +
  ``CREATE TABLE ... LIKE backup`` + ``INSERT ... SELECT`` from the backup table, then the
  same smoke test.

Fixture: ~5,000 files / ~60 MB of plugin, ``wp_molam_orders`` with 100,000 rows, a settings
table and option rows. Needs MariaDB (default ``mysql://root@127.0.0.1:3306``).

    .venv/bin/python benchmarks/agent_rollback.py [--runs 15] [--mysql mysql://root@127.0.0.1:3306]
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from molam_agent.config import Config, OptionRows  # noqa: E402
from molam_agent.db import connect  # noqa: E402
from molam_agent.engine import Agent  # noqa: E402
from molam_agent.fsutil import count_files, tree_size  # noqa: E402
from molam_agent.release import Release  # noqa: E402
from molam_agent.smoke import run_smoke_test  # noqa: E402
from tests.agent.builders import (  # noqa: E402  (the same fixture the agent tests use)
    BROKEN_MIGRATIONS,
    CONFIG_TABLES,
    MYSQL_SEED,
    WOO_BYTES,
    WOO_FILES,
    WOO_ROWS,
    build_plugin,
    make_release,
    sign_release,
    signing_public_key,
)

TABLES = CONFIG_TABLES  # wp_molam_refunds: created by the 4.0.0 release
SMOKE = "grep -qx ok health"  # runs in the plugin dir: as cheap as a smoke test gets


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306")
    parser.add_argument("--workdir", default=None, help="where to build the fixture (default: a temp dir)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # expected failures are the point

    work = Path(tempfile.mkdtemp(prefix="molam-bench-", dir=args.workdir))
    dbname = f"molam_bench_{uuid.uuid4().hex[:8]}"
    admin = connect(f"{args.mysql}/mysql")
    admin.execute(f"CREATE DATABASE {dbname}")
    db_url = f"{args.mysql}/{dbname}"
    try:
        plugins = work / "wp-content" / "plugins"
        plugin_dir = plugins / "molam-form"
        build_plugin(plugin_dir, "3.9.0", files=WOO_FILES, total_bytes=WOO_BYTES, seed=7)
        zip_path = work / "molam-form-4.0.0.zip"
        # Third migration fails after the first two changed the tables: a half-migrated database.
        sha = make_release(zip_path, plugin_dir, "4.0.0", migrations=BROKEN_MIGRATIONS)
        with connect(db_url) as db:
            db._run_script(MYSQL_SEED.format(rows=WOO_ROWS))
        print(
            f"fixture: {count_files(plugin_dir)} files, {tree_size(plugin_dir) / (1 << 20):.1f} MiB; "
            f"wp_molam_orders {WOO_ROWS:,} rows; MariaDB {admin.query('SELECT VERSION()')[0][0]}"
        )
        cfg = Config(
            api_url="http://127.0.0.1:9/api/plugins/",  # nothing listens: reports stay queued
            token="bench",
            merchant_id=str(uuid.uuid4()),
            plugin_name="woocommerce",
            plugin_dir=plugin_dir,
            version_from="wp-header:molam-form.php",
            state_dir=work / "state",
            backup_key_file=work / "backup.key",
            db_url=db_url,
            db_tables=tuple(TABLES),
            db_options=OptionRows("wp_options", "option_name LIKE 'molam\\_%'"),
            smoke_command=SMOKE,
            api_timeout_s=0.5,
            public_key=signing_public_key(),
        )
        release = Release("4.0.0", zip_path.as_uri(), sha, sign_release(zip_path))

        swap: list[float] = []
        parts: dict[str, list[float]] = {}
        for i in range(args.runs):
            agent = Agent(cfg)
            agent.outbox.attempts = 1
            with agent.locked():
                out = agent._upgrade(release, "3.9.0", time.monotonic())
                assert out["rollback_status"] == "success", out
                assert out["files_restored"] >= WOO_FILES and out["db_restored"], out
                swap.append(out["rollback_seconds"] * 1000)
                for name, ms in (out.get("rollback_breakdown_ms") or {}).items():
                    parts.setdefault(name, []).append(ms)
                # Reset between runs, outside the measurement: kept tables, archives, queue.
                db = agent.db()
                db.drop_tables(t for t in db.tables() if "_kept_" in t)
            shutil.rmtree(work / "state")
            print(f"  swap rollback run {i + 1:2d}: {swap[-1]:7.1f} ms", flush=True)

        # Copy-based baseline: a plain copy of the plugin and backup tables made beforehand.
        backup_dir = work / "backup" / "molam-form"
        shutil.copytree(plugin_dir, backup_dir, symlinks=True)
        copy: list[float] = []
        with connect(db_url) as db:
            for t in TABLES[:2]:
                db.copy_table(t, f"{t[:40]}_backup_390")
            for i in range(args.runs):
                start = time.perf_counter()
                shutil.rmtree(plugin_dir)
                shutil.copytree(backup_dir, plugin_dir, symlinks=True)
                for t in TABLES[:2]:
                    db.execute(f"DROP TABLE {db.q(t)}")
                    db.execute(f"CREATE TABLE {db.q(t)} LIKE {db.q(t[:40] + '_backup_390')}")
                    db.execute(f"INSERT INTO {db.q(t)} SELECT * FROM {db.q(t[:40] + '_backup_390')}")
                run_smoke_test(SMOKE, None, plugin_dir, "3.9.0", 10)
                copy.append((time.perf_counter() - start) * 1000)
                print(f"  copy restore run {i + 1:2d}: {copy[-1]:7.1f} ms", flush=True)

        print()
        print(f"rollback of {WOO_ROWS:,} rows + {WOO_FILES:,} files, {args.runs} runs each (ms)")
        print(f"{'method':<28}{'median':>10}{'p95':>10}{'min':>10}{'max':>10}")
        for name, values in (("swap rollback (agent)", swap), ("copy restore (baseline)", copy)):
            print(
                f"{name:<28}{statistics.median(values):>10.1f}{pct(values, 0.95):>10.1f}"
                f"{min(values):>10.1f}{max(values):>10.1f}"
            )
        print(f"speed-up (median): {statistics.median(copy) / statistics.median(swap):.0f}x")
        if parts:
            print(
                "swap rollback, median per phase (ms): "
                + ", ".join(f"{name} {statistics.median(values):.1f}" for name, values in parts.items())
            )
        return 0
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {dbname}")
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
